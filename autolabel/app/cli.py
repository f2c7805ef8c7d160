"""The ``autolabel`` command line. It only parses arguments and calls the public API.

Errors caused by input (``AutolabelError``) print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from autolabel import config
from autolabel.core.errors import AutolabelError, ConfigError
from autolabel.core.settings import cli_settings

app = typer.Typer(
    name="autolabel",
    help="Label images or CCTV video with zero-shot teachers and distill them into small, fast detectors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: readable when piped or in a log (rich boxes wrap to a few words a line without a
    # terminal) and no `<bool>` metavars on flags
    rich_markup_mode=None,
)


def _parse_map(items: list[str] | None) -> dict[str, str]:
    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep or not k or not v:
            raise ConfigError(f"--map expects PRED=GT (e.g. vehicle=car), found '{it}'")
        out[k.strip()] = v.strip()
    return out


@app.command("label")
@cli_settings(config.LabelConfig, config.SourceConfig)
def label_cmd(
    sources: Annotated[list[Path], typer.Argument(help="Image files, video files or folders (recursive).")],
    ontology: Annotated[Path, typer.Option("--ontology", "-o", help="Ontology YAML (classes, prompts, thresholds).")],
    teacher: Annotated[list[str], typer.Option("--teacher", "-t", help="NAME[:WEIGHTS]; repeat to ensemble (WBF).")],
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder (resumed if it exists).")],
    overwrite: Annotated[bool, typer.Option(help="Delete an existing dataset in --out and start over.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    *,
    settings: dict,
) -> None:
    """Label SOURCES with a teacher into a YOLO dataset with soft scores (resumable)."""
    from autolabel.labeling.label import label

    cfg = config.LabelConfig(**settings[config.LabelConfig], overwrite=overwrite, progress=not quiet,
                             sources=config.SourceConfig(**settings[config.SourceConfig]))
    res = label(sources, ontology=ontology, teacher=teacher, out=out, config=cfg)
    s = res.summary
    typer.echo(f"labeled {s['images']} images ({s['train']} train / {s['val']} val, "
               f"{s['labeled_this_run']} this run) with {s['boxes']} boxes -> {res.out}")
    for name, n in s["boxes_per_class"].items():
        typer.echo(f"  {name:<16}{n:>8}")
    if s.get("uncertain_boxes"):
        typer.echo(f"  + {s['uncertain_boxes']} uncertain boxes (below their class threshold; soft-only, sidecar only)")
    if s["skipped"]:
        typer.echo(f"skipped {len(s['skipped'])} input(s) (listed in {res.out / 'summary.json'}):")
        for item in s["skipped"][:10]:
            typer.echo(f"  {item['path']}: {item['reason']}")
        if len(s["skipped"]) > 10:
            typer.echo(f"  ... and {len(s['skipped']) - 10} more")
    typer.echo(f"train it: yolo detect train data={res.data_yaml}")


@app.command("teachers")
def teachers_cmd() -> None:
    """List the available teachers and their default weights."""
    from autolabel.teachers import list_teachers

    for e in list_teachers():
        w = f" (default weights: {e.default_weights})" if e.default_weights else ""
        typer.echo(f"{e.name:<16}{e.help}{w}")


@app.command("evaluate")
def evaluate_cmd(
    pred: Annotated[Path, typer.Argument(help="Autolabel dataset folder, YOLO dataset or COCO results JSON.")],
    gt: Annotated[Path, typer.Option("--gt", help="Human labels: YOLO dataset folder / data.yaml or COCO JSON.")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="PRED=GT class name mapping (repeatable).")] = None,
    classes: Annotated[list[str] | None, typer.Option("--class", help="Score only these GT classes.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")] = None,
) -> None:
    """mAP50-95 and mAP50 per class of PRED against human labels."""
    import json

    from autolabel.metrics import evaluate, format_table

    r = evaluate(pred, gt, class_map=_parse_map(map_), classes=classes or None)
    typer.echo(format_table(r))
    if json_out:
        json_out.write_text(json.dumps(r.to_dict(), indent=2))


def _key_values(items: list[str], option: str) -> dict[str, object]:
    """``KEY=VALUE`` strings → a dict, each value read as YAML (numbers, booleans, lists)."""
    import yaml

    out: dict[str, object] = {}
    for it in items:
        key, sep, val = it.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} expects KEY=VALUE, found '{it}'")
        try:
            out[key.strip()] = yaml.safe_load(val)
        except yaml.YAMLError:
            out[key.strip()] = val
    return out


@app.command("train")
@cli_settings(config.TrainConfig, defaults={"imgsz": None})  # None: 640, or SSDLite's own square input (320)
def train_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder written by `autolabel label` (or data.yaml with --hard-only).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (weights/, metrics.json).")],
    student: Annotated[str, typer.Option("--student", "-s", help="YOLO checkpoint (.pt), model YAML, registered name, or ssdlite320_mobilenet_v3_large.")] = "yolov8n.pt",
    hyp: Annotated[list[str] | None, typer.Option("--hyp", help="Any Ultralytics train argument, KEY=VALUE (repeatable), e.g. lr0=0.001 nbs=16.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or training logs.")] = False,
    *,
    settings: dict,
) -> None:
    """Train a detection student on DATASET, distilling the teacher's soft scores (resumable)."""
    from autolabel.students import create_student

    family = create_student(student)  # yolo, ssdlite or classifier (a one-line error for anything else)
    cfg = family.config_from_train_options({**settings[config.TrainConfig], "progress": not quiet,
                                            "ultralytics": _key_values(hyp or [], "--hyp")})
    res = family.train(dataset, out, cfg)
    if family.name == "ssdlite":
        sm = res.metrics
        typer.echo(f"trained ssdlite320_mobilenet_v3_large ({res.pretrained} init) -> {res.best}")
        typer.echo(f"val (against the teacher's labels): mAP50-95 {float(sm.get('mAP50-95') or 0):.4f}  "
                   f"mAP50 {float(sm.get('mAP50') or 0):.4f}  ({res.metrics_path})")
        return

    m = res.metrics
    typer.echo(f"trained {res.settings['student']} -> {res.best}")
    typer.echo(f"val (against the teacher's labels): mAP50-95 {m['mAP50-95']:.4f}  mAP50 {m['mAP50']:.4f}  "
               f"({res.metrics_path})")
    if "against_human_labels" in m:
        h = m["against_human_labels"]
        typer.echo(f"val (against human labels, {h['images']} images): mAP50-95 {h['mAP50-95']:.4f}  mAP50 {h['mAP50']:.4f}")


@app.command("train-classifier")
@cli_settings(config.ClassifierConfig)
def train_classifier_cmd(
    dataset: Annotated[Path, typer.Argument(help="A detection dataset (trained on its box crops) or an image-level one.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (weights/best.pt, weights/last.pt, weights/metrics.json).")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    *,
    settings: dict,
) -> None:
    """Train a classification student with Hinton KD: a*CE(hard) + (1-a)*T^2*KL(teacher || student)."""
    from autolabel.students.classifier.train import train_classifier

    cfg = config.ClassifierConfig(**settings[config.ClassifierConfig], progress=not quiet)
    model = cfg.model
    res = train_classifier(dataset, out, cfg)
    t1 = res.top1_teacher
    typer.echo(f"trained {model} -> {res.best}")
    typer.echo(f"val top-1 against the teacher's labels: {t1:.4f}" if t1 is not None else "no val samples")


@app.command("run")
def run_cmd(
    sources: Annotated[list[Path], typer.Argument(help="Image files, video files or folders (recursive).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (resumed if it exists).")],
    ontology: Annotated[Path | None, typer.Option("--ontology", "-o", help="Ontology YAML (or 'ontology' in the pipeline file).")] = None,
    pipeline: Annotated[Path | None, typer.Option("--pipeline", "-p", help="Pipeline YAML (pipelines/*.yaml); defaults otherwise.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override one setting: SECTION.KEY=VALUE (repeatable).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Stage lines only, no progress bars.")] = False,
) -> None:
    """Label -> train (distill) -> prune + recover -> INT8 ONNX bundle -> HTML report, resumable."""
    from autolabel.app.pipeline import Pipeline

    p = Pipeline.from_yaml(pipeline, overrides=set_ or (), log=lambda m: typer.echo(m, err=True))
    res = p.run(sources, out, ontology=ontology, progress=not quiet)
    s = res.summary
    typer.echo(f"run folder: {res.run_dir}")
    if s.get("bundle"):
        acc = s.get("accuracy") or {}
        score = ", ".join(f"{k} {v:.4f}" for k, v in acc.items() if isinstance(v, float))
        typer.echo(f"bundle:     {s['bundle']} ({s.get('model')} model, {s.get('model_mb')} MB)")
        if score:
            typer.echo(f"accuracy:   {score} ({acc.get('against')})")
        if s.get("reference_accuracy") is not None:
            metric = (s.get("guard") or {}).get("metric", "mAP50-95")
            typer.echo(f"student:    {metric} {s['reference_accuracy']:.4f} (unpruned FP32, same val split and runtime)")
        for why in s.get("dropped") or []:
            typer.echo(f"guard:      {why}")
        if s.get("ms_per_image"):
            typer.echo(f"speed:      {s['ms_per_image']} ms/image on this CPU")
    if s.get("report"):
        typer.echo(f"report:     {s['report']}")


@app.command("prune")
@cli_settings(config.PruneConfig)
def prune_cmd(
    model: Annotated[Path, typer.Argument(help="YOLO or train-classifier checkpoint (.pt), or a training output folder.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (pruned.pt, weights/best.pt or recover/weights/best.pt, prune_report.json).")],
    data: Annotated[Path | None, typer.Option("--data", help="The auto-labeled dataset: recovery training and val mAP.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or training logs.")] = False,
    *,
    settings: dict,
) -> None:
    """Prune a student's channels (torch-pruning) and recover it by distillation from the unpruned model.

    YOLO detectors and train-classifier checkpoints (MobileNetV3 …); for classifiers --imgsz and --batch
    come from the checkpoint.
    """
    from autolabel.compress.pruning import prune

    opts = settings[config.PruneConfig]
    cfg = config.PruneConfig(**{**opts, "keep": tuple(opts["keep"] or ())}, progress=not quiet)
    res = prune(model, out, data=data, config=cfg)
    r = res.report

    def line(tag: str, d: dict) -> str:
        acc = f"  mAP50-95 {d['mAP50-95']:.4f}  mAP50 {d['mAP50']:.4f}" if "mAP50-95" in d else ""
        return f"  {tag:<10} params {d.get('params', r['pruned']['params']) / 1e6:6.2f}M  " \
               f"FLOPs {d.get('flops', r['pruned']['flops']) / 1e9:6.2f}G{acc}"

    typer.echo(f"pruned {r['model']} -> {res.pruned}")
    if r.get("task") == "classify":
        for k in ("original", "pruned", "recovered"):
            if k in r:
                top1 = r[k].get("val_top1_teacher")
                typer.echo(f"  {k:<10} params {r[k]['params'] / 1e6:6.2f}M  FLOPs {r[k]['flops'] / 1e9:6.3f}G"
                           + (f"  val top-1 {top1:.4f}" if top1 is not None else ""))
    else:
        typer.echo(line("original", r["original"]))
        typer.echo(line("pruned", r["pruned"]))
        if "recovered" in r:
            typer.echo(line("recovered", r["recovered"]) + f"  ({res.recovered})")
    typer.echo(f"export it: autolabel export {res.recovered or res.pruned} --int8 --data DATASET --out bundle/")


@app.command("export")
@cli_settings(config.ExportConfig)
def export_cmd(
    model: Annotated[Path, typer.Argument(help="Student checkpoint (.pt: YOLO, pruned ones too, SSDLite or classifier) or a training output folder.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    format_: Annotated[list[str], typer.Option("--format", help="onnx (always), openvino, tflite (repeatable).")] = ["onnx"],  # noqa: B006
    data: Annotated[Path | None, typer.Option("--data", help="Your dataset: INT8 calibration images and the val split scored.")] = None,
    target_precision: Annotated[list[str] | None, typer.Option(
        help="Ship per class the lowest threshold whose val precision reaches P: one value, or NAME=P (repeatable). "
             "Default: the threshold of maximum F1.")] = None,
    target_recall: Annotated[list[str] | None, typer.Option(
        help="Ship per class the highest threshold whose val recall reaches R: one value, or NAME=R (repeatable).")] = None,
    gt: Annotated[Path | None, typer.Option(
        "--gt", help="Human labels (YOLO folder / data.yaml or COCO JSON) to choose the thresholds against, matched to "
                     "the val images by file name (default: the dataset's val labels).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    *,
    settings: dict,
) -> None:
    """Export a student to an ONNX bundle (FP32, optional FP16/INT8) that autolabel.runtime runs without torch.

    Each class's threshold is chosen for the student on the val split of --data (max F1, or --target-precision /
    --target-recall), per model; bundle.json keeps the precision, recall and F1 it gives.
    """
    from autolabel.compress.bundle import export
    from autolabel.students import identify_student

    family = identify_student(model)  # classifiers and SSDLite students export to their own bundles
    extra = tuple(f.strip().lower() for f in format_ if f.strip().lower() != "onnx")
    cfg = config.ExportConfig(**settings[config.ExportConfig], formats=extra,
                              target_precision=_target(target_precision, "--target-precision"),
                              target_recall=_target(target_recall, "--target-recall"),
                              gt=str(gt) if gt is not None else None, progress=not quiet)
    res = export(model, out, data=data, config=cfg)
    res_out = res.bundle
    typer.echo(f"bundle -> {res_out}")
    for k, p in res.files.items():
        m = res.metrics.get(k, {})
        score = f"  val mAP50-95 {m['mAP50-95']:.4f} mAP50 {m['mAP50']:.4f}" if m.get("mAP50-95") is not None else ""
        typer.echo(f"  {k:<5} {p.name:<20} {p.stat().st_size / 1e6:7.2f} MB{score}")
    if family != "yolo":
        return
    for k, name in res.meta.get("extra_models", {}).items():
        typer.echo(f"  {k:<5} {name}")
    if (res.meta.get("operating_point") or {}).get("models"):
        from autolabel.compress.operating_point import format_points

        typer.echo(format_points(res.meta))
    elif (res.meta.get("operating_point") or {}).get("note"):
        typer.echo(f"thresholds: {res.meta['operating_point']['note']}")
    typer.echo(f"run it: autolabel predict {res_out} IMAGES_OR_VIDEOS --out preds/")


def _target(items: list[str] | None, option: str) -> float | dict[str, float] | None:
    """``--target-precision 0.95`` (all classes) or ``--target-precision person=0.95 --target-precision car=0.9``."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        try:
            return float(items[0])
        except ValueError:
            raise ConfigError(f"{option} expects a number in (0, 1] or NAME=VALUE, found '{items[0]}'") from None
    out: dict[str, float] = {}
    for it in items:
        name, sep, val = it.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(val)
        except ValueError:
            raise ConfigError(f"{option} expects one number for all classes or NAME=VALUE per class, found '{it}'") from None
    return out


@app.command("thresholds")
def thresholds_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `autolabel export`.")],
    gt: Annotated[Path, typer.Option("--gt", help="Your labeled frames: a YOLO folder (data.yaml, images/, labels/) or a COCO JSON beside its images.")],
    target_precision: Annotated[list[str] | None, typer.Option(
        help="Per class the lowest threshold whose precision reaches P: one value, or NAME=P (repeatable). Default: max F1.")] = None,
    target_recall: Annotated[list[str] | None, typer.Option(
        help="Per class the highest threshold whose recall reaches R: one value, or NAME=R (repeatable).")] = None,
    min_boxes: Annotated[int, typer.Option(help="Fewest labeled boxes to choose a class's threshold; fewer keep the current one.")] = 10,
    threads: Annotated[int | None, typer.Option(help="onnxruntime threads.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Re-pick a bundle's per-class thresholds on your own labeled frames; rewrites bundle.json (no re-export, no torch)."""
    from autolabel.compress.operating_point import format_points, retune_bundle

    meta = retune_bundle(bundle, gt, target_precision=_target(target_precision, "--target-precision"),
                         target_recall=_target(target_recall, "--target-recall"), min_boxes=min_boxes,
                         threads=threads, progress=not quiet)
    typer.echo(format_points(meta))
    typer.echo(f"bundle.json updated: {bundle} ({meta['operating_point']['shipped_model']} model ships with "
               + ", ".join(f"{n} {t:g}" for n, t in list(meta['postprocessing']['thresholds'].items())[:6]) + ")")


@app.command("predict")
def predict_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `autolabel export`.")],
    sources: Annotated[list[Path], typer.Argument(help="Images, folders (recursive) or videos.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: annotated images/videos, detections.coco.json.")],
    model: Annotated[str | None, typer.Option(help="int8, fp32 or fp16 (default: int8 when present).")] = None,
    conf: Annotated[float | None, typer.Option(help="One threshold for all classes (default: the bundle's per-class operating point).")] = None,
    threads: Annotated[int | None, typer.Option(help="onnxruntime threads.")] = None,
    video_fps: Annotated[float | None, typer.Option(help="Sample videos at this rate into images (default: every frame, annotated video).")] = None,
    no_save: Annotated[bool, typer.Option("--no-save", help="Write only the detections, no annotated media.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Detect with a bundle on images, folders or videos; annotated output, COCO detections, frames per second."""
    from autolabel.students.predict import PredictConfig, predict

    cfg = PredictConfig(model=model, conf=conf, threads=threads, save=not no_save, video_fps=video_fps,
                        progress=not quiet)
    res = predict(bundle, list(sources), out, cfg)
    s = res.summary
    typer.echo(f"{res.frames} frames, {res.detections} detections ({s['model']} model) at {s['fps_model']:.1f} fps "
               f"(model) / {s['fps_end_to_end']:.1f} fps (end to end) -> {res.out}")
    for name, n in s["per_class"].items():
        if n:
            typer.echo(f"  {name:<16}{n:>8}")
    if s["skipped"]:
        typer.echo(f"skipped {len(s['skipped'])} input(s): " + "; ".join(f"{x['path']}: {x['reason']}" for x in s["skipped"][:5]))


def _version(value: bool) -> None:
    if value:
        from autolabel import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="Show Ultralytics' own logs (training arguments, layer tables, per-epoch metrics)."
    )] = False,
    trust_checkpoint: Annotated[bool, typer.Option(
        "--trust-checkpoint",
        help="Load .pt files with full unpickling. Off by default: a .pt is a pickle and can run code, so only "
             "plain weights are loaded unless you vouch for the file (accepted after the command name too).",
    )] = False,
) -> None:
    if verbose:
        import os

        os.environ["YOLO_VERBOSE"] = "true"
    if trust_checkpoint:
        from autolabel.core.checkpoints import trust_checkpoints

        trust_checkpoints(True)
        typer.echo("warning: --trust-checkpoint: .pt files are unpickled without restriction; a malicious file "
                   "can run code on this machine", err=True)


_GLOBAL_FLAGS = ("--trust-checkpoint", "--verbose")


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Accept the global flags after the command name too (``autolabel export m.pt --trust-checkpoint``)."""
    head = [f for f in _GLOBAL_FLAGS if f in argv]
    return [*head, *[a for a in argv if a not in _GLOBAL_FLAGS]] if head else argv


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; user errors become one line on stderr and exit status 2."""
    import warnings

    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    # before anything imports Ultralytics: no run-time pip installs, its logs only with --verbose
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "true" if "--verbose" in args else "false")
    from autolabel.core.checkpoints import private_ultralytics_config

    private_ultralytics_config()  # its settings file in a temporary folder, not ~/.config/Ultralytics
    try:
        app(args=_hoist_global_flags(args), standalone_mode=True)
    except AutolabelError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted; run the same command again to resume", err=True)
        return 130
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
