"""The run report: one self-contained HTML file (images and plots inlined) plus the same numbers as JSON.

Sections: summary (where the bundle is, size, accuracy, speed), the accuracy / size / latency table of
teacher → student → pruned → recovered → FP32 / INT8 bundle with plots, training curves, the bundle's operating
point (per class precision–recall and F1–confidence curves of the FP32 and INT8 models, chosen thresholds
marked), label statistics per class, skipped inputs, teacher samples with boxes, what the accuracy guard shipped and dropped, stage wall
times (the report's own included), and the configuration as the stages used it.

Text from the user (class names, file names) is shown as written: HTML-escaped in the page, and matplotlib's
math text is off in the plots (a class named ``cash$box`` is a label, not a formula).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ReportData", "accuracy_rows", "report_data", "write_report"]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _read_csv(path: str | None) -> list[dict[str, float]]:
    if not path or not Path(path).is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            try:
                rows.append({k.strip(): float(v) for k, v in r.items() if v not in (None, "")})
            except ValueError:
                continue
    return rows


def _size_mb(path: str | None) -> float | None:
    return round(Path(path).stat().st_size / 1e6, 2) if path and Path(path).is_file() else None


def _count(pt: str | None, imgsz: int) -> tuple[int | None, int | None]:
    if not pt or not Path(pt).is_file():
        return None, None
    try:
        from autolabel.compress.prune_engine import count_flops_params
        from autolabel.core.checkpoints import load_yolo

        m = load_yolo(pt, what="report").model.float()
        return count_flops_params(m, imgsz)
    except Exception:  # counting is informative only
        return None, None


def accuracy_rows(run: Path, config: dict[str, Any], art: dict[str, dict[str, Any]],
                  seconds: dict[str, Any]) -> list[dict[str, Any]]:
    """Teacher → student → pruned → recovered → bundle models: accuracy, size, FLOPs, latency."""
    rows: list[dict[str, Any]] = []
    imgsz = int(config["train"]["imgsz"])
    lab, tr, pr, ex = art.get("label") or {}, art.get("train") or {}, art.get("prune") or {}, art.get("export") or {}
    teacher = {"model": "teacher: " + " + ".join(config["label"]["teacher"]), "kind": "labels",
               "against": "human labels" if config["report"].get("gt") else None}
    gt = config["report"].get("gt")
    if gt and lab.get("dataset"):
        from autolabel.metrics import evaluate

        r = evaluate(lab["dataset"], gt)
        teacher.update({"mAP50-95": round(float(r.map50_95), 5), "mAP50": round(float(r.map50), 5)})
    if lab.get("images") and seconds.get("label"):
        teacher["ms_per_image"] = round(1000 * float(seconds["label"]) / max(1, int(lab["images"])), 1)
    rows.append(teacher)
    if config["task"] == "classify":
        if tr.get("best"):
            rows.append({"model": f"student: {config['train']['student']}", "kind": "PyTorch", "against": "teacher labels (val)",
                         "top1": tr.get("top1_teacher"), "size_mb": _size_mb(tr.get("best"))})
    else:
        if tr.get("best"):
            m = tr.get("metrics") or {}
            flops, params = _count(tr["best"], imgsz)
            rows.append({"model": f"student: {Path(str(config['train']['student'])).name}", "kind": "PyTorch",
                         "against": "teacher labels (val)", "mAP50-95": m.get("mAP50-95"), "mAP50": m.get("mAP50"),
                         "params": params, "flops": flops, "size_mb": _size_mb(tr["best"])})
        rep = pr.get("report") or {}
        if rep.get("pruned"):
            p = rep["pruned"]
            rows.append({"model": f"pruned {config['prune']['ratio']:.0%} {config['prune']['target']}, no recovery",
                         "kind": "PyTorch", "against": "teacher labels (val)", "mAP50-95": p.get("mAP50-95"),
                         "mAP50": p.get("mAP50"), "params": p.get("params"), "flops": p.get("flops"),
                         "size_mb": _size_mb(pr.get("pruned"))})
        if rep.get("recovered"):
            r = rep["recovered"]
            rounds = f", {r['rounds']} rounds" if r.get("rounds", 1) > 1 else ""
            rows.append({"model": f"pruned + {'KD ' if r.get('kd_from_unpruned') else ''}recovery ({r.get('epochs')} ep{rounds})",
                         "kind": "PyTorch", "against": "teacher labels (val)", "mAP50-95": r.get("mAP50-95"),
                         "mAP50": r.get("mAP50"), "params": r.get("params", rep["pruned"].get("params")),
                         "flops": r.get("flops", rep["pruned"].get("flops")), "size_mb": _size_mb(pr.get("recovered"))})
    if gt and config["task"] == "detect" and lab.get("dataset"):  # the PyTorch models against the human labels too
        from autolabel.students.yolo.train import evaluate_student

        weights = {"student": tr.get("best"), "pruned +": pr.get("recovered"), "pruned": pr.get("pruned")}  # longest first
        for r in rows:
            w = next((v for k, v in weights.items() if r["model"].startswith(k) and v), None)
            if r["kind"] == "PyTorch" and w:
                try:
                    h = evaluate_student(w, lab["dataset"], gt, imgsz=imgsz)
                except Exception as e:  # e.g. no val image has a human label: the column stays empty
                    r["human_note"] = str(e)[:120]
                    continue
                r["human mAP50-95"], r["human mAP50"] = h["mAP50-95"], h["mAP50"]
    g = ex.get("guard") or {}
    metric = g.get("metric") or ("top1" if config["task"] == "classify" else "mAP50-95")
    ref = g.get("reference") or {}
    if ref.get(metric) is not None and g.get("candidates"):  # scored by the runtime only when something was pruned
        rows.append({"model": "guard reference: unpruned student FP32 ONNX", "kind": "onnxruntime (not shipped)",
                     "against": "the dataset's labels (val split)", metric: ref[metric]})
    for c in g.get("candidates") or []:
        if any(c["model"].startswith(d["model"]) or (d["model"] == "int8" and "INT8" in c["model"])
               for d in g.get("dropped") or []):
            rows.append({"model": f"{c['model']} (dropped)", "kind": "onnxruntime (not shipped)",
                         "against": "the dataset's labels (val split)", metric: c.get(metric)})
    for key, f in (ex.get("files") or {}).items():
        m = (ex.get("metrics") or {}).get(key) or {}
        what = f" ({g['shipped_model']})" if g.get("shipped_model") else ""
        rows.append({"model": f"bundle {key.upper()} ONNX{what}", "kind": "onnxruntime", "against": m.get("against"),
                     "mAP50-95": m.get("mAP50-95"), "mAP50": m.get("mAP50"), "top1": m.get("top1"),
                     "size_mb": _size_mb(f), "ms_per_image": m.get("ms_per_image")})
    return rows


def _accuracy_plot(ax: Any, rows: list[dict[str, Any]], metric: str) -> None:
    """Two labeled series, never one unlabeled axis: scores against the teacher's labels (val split) and
    scores against human labels (``report.gt``) are different questions."""
    import numpy as np

    human = f"human {metric}"
    series = [("against the teacher's labels (val split)", [r.get(metric) if not _vs_human(r) else None for r in rows],
               "#4c72b0"),
              ("against human labels (report.gt)", [r.get(human) if not _vs_human(r) else r.get(metric) for r in rows],
               "#c44e52")]
    series = [(n, v, c) for n, v, c in series if any(x is not None for x in v)]
    y = np.arange(len(rows))
    h = 0.8 / max(1, len(series))
    for j, (name, vals, color) in enumerate(series):
        ax.barh(y + (j - (len(series) - 1) / 2) * h, [v if v is not None else 0 for v in vals], height=h,
                color=color, label=name)
    ax.set_yticks(y, [r["model"][:48] for r in rows])
    ax.set_xlabel(metric)
    ax.invert_yaxis()
    ax.set_title("accuracy")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8)  # below: never over a bar


def _vs_human(row: dict[str, Any]) -> bool:
    return row.get("against") == "human labels"


def _fmt(v: Any, kind: str = "") -> str:
    if v is None:
        return "—"
    if kind == "big":
        return f"{v / 1e6:.2f} M" if v < 1e9 else f"{v / 1e9:.2f} G"
    if kind == "short":
        return f"{v:.2f}" if v < 100 else f"{v:.0f}"
    if isinstance(v, float):
        return f"{v:.4f}" if v < 10 else f"{v:.1f}"
    return html.escape(str(v))


@dataclass
class ReportData:
    """Everything the report shows, computed and read (models counted and evaluated, files read) before any of
    it is drawn: :func:`report_data` makes it, the page is rendered from it alone."""

    rows: list[dict[str, Any]]  # the accuracy / size / latency table (see accuracy_rows)
    curves: list[tuple[str, list[dict[str, float]]]]  # (name, results.csv rows) of training and recovery
    label: dict[str, Any]  # the label stage's artifacts: images, boxes, boxes_per_class, skipped …
    export: dict[str, Any]  # the export stage's artifacts: bundle, files, metrics, guard
    operating_point: tuple[dict[str, Any], dict[str, Any]] | None  # the bundle's (operating_point, curves)
    preview: str  # the teacher samples as a data URL ("" without a preview)


def report_data(run: Path, config: dict[str, Any], art: dict[str, dict[str, Any]],
                seconds: dict[str, Any]) -> ReportData:
    """The report's numbers: the accuracy rows (which evaluate models against the human labels when
    ``report.gt`` is set, and count FLOPs), the training curves, the bundle's operating point, the preview."""
    lab = art.get("label") or {}
    ex = art.get("export") or {}
    curves = [("training", _read_csv((art.get("train") or {}).get("results_csv"))),
              ("pruned: recovery", _read_csv((art.get("prune") or {}).get("results_csv")))]
    preview = ""
    pv = Path(lab.get("dataset", "")) / "preview.jpg" if lab.get("dataset") else None
    if pv is not None and pv.is_file():
        preview = "data:image/jpeg;base64," + base64.b64encode(pv.read_bytes()).decode()
    return ReportData(rows=accuracy_rows(run, config, art, seconds), curves=[(n, c) for n, c in curves if c],
                      label=lab, export=ex, operating_point=_operating_point_data(ex), preview=preview)


def write_report(run: Path, config: dict[str, Any], art: dict[str, dict[str, Any]],
                 seconds: dict[str, Any], started: float | None = None) -> Path:
    """Write ``run/report.html`` and ``run/report.json``; returns the HTML path.

    Args:
        seconds: wall seconds per stage (``None`` for stages that did not run).
        started: ``time.perf_counter()`` when the report stage began: the stage-time table then has a row for
            the report itself (measured up to writing the page).
    """
    import matplotlib

    data = report_data(run, config, art, seconds)
    seconds = dict(seconds)
    matplotlib.use("Agg")
    with matplotlib.rc_context({"text.parse_math": False}):  # '$' in a class or file name is text
        doc = _render(data, run, config, seconds, started)
    out = run / "report.html"
    out.write_text(doc, encoding="utf-8")
    (run / "report.json").write_text(json.dumps({"rows": data.rows, "seconds": seconds,
                                                 "boxes_per_class": data.label.get("boxes_per_class") or {},
                                                 "skipped": data.label.get("skipped") or [],
                                                 "bundle": data.export.get("bundle"), "guard": data.export.get("guard")},
                                                indent=2, default=str))
    return out


def _render(data: ReportData, run: Path, config: dict[str, Any], seconds: dict[str, Any],
            started: float | None) -> str:
    """The HTML page of ``data`` (``seconds`` gains the report's own time when ``started`` is given)."""
    import matplotlib.pyplot as plt

    rows, lab, curves = data.rows, data.label, data.curves
    plots: list[tuple[str, str]] = []

    metric = "top1" if config["task"] == "classify" else "mAP50-95"
    scored = [r for r in rows if r.get(metric) is not None or r.get(f"human {metric}") is not None]
    if scored:
        fig, ax = plt.subplots(1, 2, figsize=(13, 0.9 + 0.42 * max(4, len(scored))), gridspec_kw={"wspace": 0.75})
        _accuracy_plot(ax[0], scored, metric)
        timed = [r for r in rows if r.get("ms_per_image") and r["kind"] == "onnxruntime"]
        if timed:
            ax[1].barh([r["model"] for r in timed], [r["ms_per_image"] for r in timed], color="#dd8452")
            ax[1].invert_yaxis()
        ax[1].set_xlabel("ms / image (this CPU)")
        ax[1].set_title("bundle latency")
        plots.append(("Accuracy and latency", _png(fig)))
    if curves:
        fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
        for name, c in curves:
            ep = [r.get("epoch", i + 1) for i, r in enumerate(c)]
            loss = [r.get("train/box_loss", 0) + r.get("train/cls_loss", 0) + r.get("train/dfl_loss", 0) for r in c]
            ax[0].plot(ep, loss, marker="o", label=name)
            ax[1].plot(ep, [r.get("metrics/mAP50-95(B)", 0) for r in c], marker="o", label=name)
        ax[0].set_title("train loss (box + cls + dfl)")
        ax[1].set_title("val mAP50-95 vs teacher labels")
        for a in ax:
            a.set_xlabel("epoch")
            a.legend()
        plots.append(("Training curves", _png(fig)))
    per_class = lab.get("boxes_per_class") or {}
    if per_class:
        fig, ax = plt.subplots(figsize=(11, 2.8))
        ax.bar(list(per_class), list(per_class.values()), color="#55a868")
        unc = int(lab.get("uncertain_boxes") or 0)
        ax.set_title("teacher boxes per class" + (f" (+ {unc} uncertain boxes, soft-only targets)" if unc else ""))
        ax.tick_params(axis="x", rotation=30)
        plots.append(("Label statistics", _png(fig)))

    op_plot, op_html = _operating_point_html(data.operating_point)
    if op_plot:
        plots.append(("Operating point", op_plot))

    preview = data.preview
    ex = data.export
    bundle = ex.get("bundle")
    final = next((r for r in reversed(rows) if r["kind"] == "onnxruntime" and "INT8" in r["model"]), None) or \
        next((r for r in reversed(rows) if r["kind"] == "onnxruntime"), None)
    cols = ["model", "kind", "against", "mAP50-95", "mAP50", "human mAP50-95", "human mAP50", "top1", "params", "flops",
            "size_mb", "ms_per_image"]
    cols = [c for c in cols if any(r.get(c) is not None for r in rows) or c == "model"]
    heads = {"size_mb": "size (MB)", "ms_per_image": "latency (ms/img)", "flops": "FLOPs"}
    table = "<table><tr>" + "".join(f"<th>{heads.get(c, c)}</th>" for c in cols) + "</tr>"
    for r in rows:
        kinds = {"params": "big", "flops": "big", "size_mb": "short", "ms_per_image": "short"}
        table += "<tr>" + "".join(f"<td>{_fmt(r.get(c), kinds.get(c, ''))}</td>" for c in cols) + "</tr>"
    table += "</table>"
    label_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in per_class.items())
    skipped = lab.get("skipped") or []
    skipped_html = ("<ul>" + "".join(f"<li><code>{html.escape(str(s.get('path')))}</code>: {html.escape(str(s.get('reason')))}</li>"
                                      for s in skipped[:200]) + "</ul>") if skipped else "<p>none</p>"
    guard_html = _guard_html(ex.get("guard") or {})
    summary = (f"<p><b>Bundle:</b> <code>{html.escape(str(bundle))}</code>" if bundle else "<p>No bundle (export disabled).")
    if final:
        size, ms = final.get("size_mb"), final.get("ms_per_image")
        summary += (f" — {final['model']}, {size:.2f} MB, " if size is not None else f" — {final['model']}, ")
        summary += f"{metric} {_fmt(final.get(metric))} ({html.escape(str(final.get('against') or ''))})"
        summary += f", {ms:.1f} ms/image on this machine's CPU" if ms is not None else ""
    summary += "</p>"
    dropped = (ex.get("guard") or {}).get("dropped") or []
    if dropped:
        summary += "<p><b>Accuracy guard:</b> " + " ".join(
            f"{'INT8 model left out' if d['model'] == 'int8' else 'pruned model not shipped'}: "
            f"{html.escape(d['reason'])}." for d in dropped) + "</p>"
    import yaml

    if started is not None:  # the report's own time, up to writing the page
        seconds["report"] = round(time.perf_counter() - started, 1)
    timed_stages = {k: v for k, v in seconds.items() if v is not None}
    stage_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(float(v))}</td></tr>" for k, v in timed_stages.items())
    if timed_stages:
        stage_rows += f"<tr><th>total</th><th>{_fmt(float(sum(timed_stages.values())))}</th></tr>"
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>autolabel report: {html.escape(config['name'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1180px;color:#222}}
table{{border-collapse:collapse;margin:8px 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}}
th{{background:#f3f3f3}}img{{max-width:100%}}code,pre{{background:#f6f6f6}}h2{{margin-top:28px}}</style></head><body>
<h1>autolabel run: {html.escape(config['name'])}</h1>
<p>{time.strftime('%Y-%m-%d %H:%M')} · task {config['task']} · run folder <code>{html.escape(str(run))}</code></p>
{summary}
<h2>Teacher → student → pruned → INT8</h2>{table}
<p>PyTorch rows: Ultralytics validation on the dataset's val split; ONNX rows: the bundle's runtime on the same split.
Both score against the teacher's labels; with <code>report.gt</code> set, the teacher row (all images) and the "human" columns
(val images) score against the human labels; the accuracy chart keeps the two as separately labeled series.
The teacher's latency is its labeling time per image.</p>
{guard_html}
{op_html}
{''.join(f'<h2>{t}</h2><img src="{src}" alt="{t}">' for t, src in plots)}
<h2>Labels per class</h2><table><tr><th>class</th><th>boxes</th></tr>{label_rows}</table>
<p>{lab.get('images', '—')} images labeled, {lab.get('boxes', '—')} boxes.</p>
<h2>Skipped inputs</h2>{skipped_html}
<h2>Teacher samples</h2>{f'<img src="{preview}" alt="teacher samples">' if preview else '<p>no preview</p>'}
<h2>Stage wall times (s)</h2><table>{stage_rows}</table>
<h2>Configuration</h2><pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>
</body></html>"""
    return doc


def _guard_html(g: dict[str, Any]) -> str:
    """What the accuracy guard compared, what shipped and what it dropped (and why)."""
    if not g:
        return ""
    metric = g.get("metric", "mAP50-95")
    if g.get("max_drop") is None:
        return f"<h2>Accuracy guard</h2><p>{html.escape(str(g.get('note') or 'off'))}</p>"
    ref = (g.get("reference") or {}).get(metric)
    shipped = g.get("shipped") or {}
    items = [f"<li>reference: the unpruned FP32 student, {metric} {_fmt(ref)} ({html.escape(str(g.get('against')))})</li>",
             f"<li>shipped: {html.escape(str(shipped.get('model')))}, {metric} {_fmt(shipped.get(metric))}</li>"]
    items += [f"<li><b>dropped</b> {'the INT8 model' if d['model'] == 'int8' else 'the pruned + recovered model'}: "
              f"{html.escape(d['reason'])}</li>" for d in g.get("dropped") or []]
    if g.get("note"):
        items.append(f"<li>{html.escape(str(g['note']))}</li>")
    return (f"<h2>Accuracy guard</h2><p>A pruned or INT8 model ships only if it scores within export.max_drop "
            f"= {g['max_drop']} {metric} of the unpruned FP32 student on the val split; otherwise the better model "
            f"ships.</p><ul>{''.join(items)}</ul>")


_MODEL_COLORS = {"fp32": "#4c72b0", "int8": "#c44e52", "fp16": "#55a868"}


def _operating_point_data(ex: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The exported bundle's ``(operating_point, curves)`` (``bundle.json``'s record and the curves file);
    None without a readable bundle."""
    if not ex.get("bundle"):
        return None
    from autolabel.compress.operating_point import CURVES_FILE

    root = Path(ex["bundle"])
    try:
        meta = json.loads((root / "bundle.json").read_text())
        curves = json.loads((root / CURVES_FILE).read_text()) if (root / CURVES_FILE).is_file() else {}
    except (OSError, ValueError):
        return None
    return meta.get("operating_point") or {}, curves


def _operating_point_html(data: tuple[dict[str, Any], dict[str, Any]] | None,
                          max_classes: int = 8) -> tuple[str | None, str]:
    """The bundle's chosen thresholds (:func:`_operating_point_data`): per class a precision–recall and an
    F1–confidence plot, one line per model (FP32 and INT8 confidences differ), the chosen point marked, the
    fallback threshold dotted; and a table of the numbers. Empty when the bundle has no operating point."""
    if data is None:
        return None, ""
    op, curves = data
    models = op.get("models") or {}
    if not models:
        return None, f"<h2>Operating point</h2><p>{html.escape(str(op.get('note') or 'none'))}</p>" if op else ""
    rows = ""
    for m, pts in models.items():
        for n, p in pts.items():
            if not p.get("boxes"):
                continue
            f = p.get("at_fallback") or {}
            rule = p["rule"] + (f" ({p['note']})" if p.get("note") else "")
            rows += (f"<tr><td>{m.upper()}</td><td>{html.escape(n)}</td><td>{p['boxes']}</td><td>{p['threshold']:.4f}</td>"
                     f"<td>{p['precision']:.3f}</td><td>{p['recall']:.3f}</td><td>{p['f1']:.3f}</td>"
                     f"<td>{_fmt(f.get('threshold'))}</td><td>{_fmt(f.get('f1'))}</td><td>{html.escape(rule)}</td></tr>")
    shipped = op.get("shipped_model", "")
    doc = (f"<h2>Operating point</h2><p>Per-class thresholds chosen for the student on {html.escape(str(op.get('source')))} "
           f"({op.get('images')} images, IoU {op.get('iou')}); each model has its own, the {html.escape(str(shipped).upper())} "
           f"model's ship in <code>postprocessing.thresholds</code>. &quot;was&quot;: the threshold before (the ontology's labeling threshold at export). "
           f"<code>autolabel predict --conf</code> overrides them; <code>autolabel thresholds BUNDLE --gt FRAMES</code> "
           f"re-picks them on your own labeled frames.</p>"
           "<table><tr><th>model</th><th>class</th><th>boxes</th><th>threshold</th><th>precision</th><th>recall</th>"
           f"<th>F1</th><th>was</th><th>F1 there</th><th>rule</th></tr>{rows}</table>")
    grid = curves.get("grid") or []
    cm = curves.get("models") or {}
    ref = models.get(shipped) or next(iter(models.values()))  # the classes with the most labeled boxes first
    classes = sorted((n for n, p in ref.items() if p.get("boxes") and any(n in per for per in cm.values())),
                     key=lambda n: -ref[n]["boxes"])[:max_classes]
    if not grid or not classes:
        return None, doc
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(classes), 2, figsize=(11, 3.1 * len(classes)), squeeze=False)
    for (ax_pr, ax_f1), n in zip(axes, classes):
        for m, per in cm.items():
            c = per.get(n)
            p = (models.get(m) or {}).get(n)
            if not c or not p:
                continue
            color = _MODEL_COLORS.get(m, None)
            ax_pr.plot(c["recall"], c["precision"], color=color, label=m.upper())
            ax_pr.plot([p["recall"]], [p["precision"]], "o", color=color, ms=8, mec="black",
                       label=f"{m.upper()} chosen {p['threshold']:.3f}")
            ax_f1.plot(grid, c["f1"], color=color, label=m.upper())
            ax_f1.plot([p["threshold"]], [p["f1"]], "o", color=color, ms=8, mec="black",
                       label=f"{m.upper()} chosen: F1 {p['f1']:.3f}")
            fb = (p.get("at_fallback") or {}).get("threshold")
            if fb is not None:
                ax_f1.axvline(fb, color=color, ls=":", lw=1)
        ax_pr.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=f"{n}: precision–recall")
        ax_f1.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="confidence threshold", ylabel="F1",
                  title=f"{n}: F1–confidence (dotted: the fallback threshold)")
        for a in (ax_pr, ax_f1):
            a.grid(alpha=0.3)
            a.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _png(fig), doc
