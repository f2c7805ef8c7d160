"""The ``autolabel`` command line. It only parses arguments and calls the public API.

Errors caused by input (``AutolabelError``) print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from autolabel.errors import AutolabelError, ConfigError

app = typer.Typer(
    name="autolabel",
    help="Label images or CCTV video with zero-shot teachers and distill them into small, fast detectors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
def label_cmd(
    sources: Annotated[list[Path], typer.Argument(help="Image files, video files or folders (recursive).")],
    ontology: Annotated[Path, typer.Option("--ontology", "-o", help="Ontology YAML (classes, prompts, thresholds).")],
    teacher: Annotated[list[str], typer.Option("--teacher", "-t", help="NAME[:WEIGHTS]; repeat to ensemble (WBF).")],
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder (resumed if it exists).")],
    batch_size: Annotated[int, typer.Option(help="Images per teacher forward pass.")] = 8,
    conf: Annotated[Optional[float], typer.Option(help="Override every class threshold (e.g. 0.001).")] = None,
    val: Annotated[float, typer.Option(help="Fraction of images (video: 60-s blocks) in the val split.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Split seed.")] = 0,
    agnostic_nms: Annotated[bool, typer.Option(help="Suppress overlapping boxes across classes too.")] = False,
    agnostic_iou: Annotated[float, typer.Option(help="IoU of the class-agnostic NMS.")] = 0.7,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    fps: Annotated[float, typer.Option(help="Video frames sampled per second.")] = 1.0,
    stride: Annotated[Optional[int], typer.Option(help="Sample every Nth video frame instead of --fps.")] = None,
    dedup: Annotated[float, typer.Option(help="Skip video frames this similar to the last kept one (0 = off).")] = 2.0,
    max_side: Annotated[Optional[int], typer.Option(help="Downscale images whose longer side exceeds this.")] = None,
    tta: Annotated[bool, typer.Option(help="Test-time augmentation: horizontal flip, fused by WBF.")] = False,
    tile: Annotated[Optional[int], typer.Option(help="Sliced inference with tiles of this size (small objects).")] = None,
    rescore: Annotated[Optional[str], typer.Option(help="Re-score box crops with a CLIP teacher (clip[:WEIGHTS]).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete an existing dataset in --out and start over.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Label SOURCES with a teacher into a YOLO dataset with soft scores (resumable)."""
    from autolabel.label import LabelConfig, label
    from autolabel.sources import SourceConfig

    cfg = LabelConfig(
        batch_size=batch_size, val_fraction=val, seed=seed, conf=conf, agnostic_nms=agnostic_nms,
        agnostic_iou=agnostic_iou, device=device, tta=tta, tile=tile, rescore=rescore, overwrite=overwrite,
        progress=not quiet,
        sources=SourceConfig(video_fps=None if stride else fps, video_stride=stride, dedup_threshold=dedup,
                             max_side=max_side),
    )
    res = label(sources, ontology=ontology, teacher=teacher, out=out, config=cfg)
    s = res.summary
    typer.echo(f"labeled {s['images']} images ({s['train']} train / {s['val']} val, "
               f"{s['labeled_this_run']} this run) with {s['boxes']} boxes -> {res.out}")
    for name, n in s["boxes_per_class"].items():
        typer.echo(f"  {name:<16}{n:>8}")
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
    map_: Annotated[Optional[list[str]], typer.Option("--map", help="PRED=GT class name mapping (repeatable).")] = None,
    classes: Annotated[Optional[list[str]], typer.Option("--class", help="Score only these GT classes.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the numbers to this JSON file.")] = None,
) -> None:
    """mAP50-95 and mAP50 per class of PRED against human labels."""
    import json

    from autolabel.evaluate import evaluate, format_table

    r = evaluate(pred, gt, class_map=_parse_map(map_), classes=classes or None)
    typer.echo(format_table(r))
    if json_out:
        json_out.write_text(json.dumps(r.to_dict(), indent=2))


def _version(value: bool) -> None:
    if value:
        from autolabel import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; user errors become one line on stderr and exit status 2."""
    import warnings

    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        app(args=argv, standalone_mode=True)
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
