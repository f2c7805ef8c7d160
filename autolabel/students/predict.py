"""Run a bundle on images, folders or videos: annotated images / videos, a COCO results file, frames per second.

Example:
    >>> from autolabel.students.predict import PredictConfig, predict
    >>> res = predict("bundles/cam1", ["footage/"], "preds/cam1")      # doctest: +SKIP
    >>> res.frames, res.fps, res.results                               # doctest: +SKIP

Output folder::

    OUT/
      images/ID.jpg              # annotated images (and sampled video frames with --video-fps)
      VIDEO_annotated.mp4        # one annotated video per input video (every frame, unless --video-fps)
      detections.coco.json       # COCO file: images, categories and annotations, each with its "score"
                                 #   (usable as predictions for `autolabel evaluate`)
      summary.json               # frames, detections per class, model, fps, skipped inputs
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.core.errors import ConfigError, SourceError

__all__ = ["PredictConfig", "PredictResult", "predict"]


@dataclass(frozen=True)
class PredictConfig:
    """Settings of :func:`predict`.

    Attributes:
        model: bundle model to run: ``int8``, ``fp32``, ``fp16`` (default: int8 when the bundle has it).
        conf: one score threshold for all classes (default: the bundle's per-class thresholds).
        iou: NMS IoU (default: the bundle's).
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
        save: write annotated images / videos (the COCO file is always written).
        video_fps: sample videos at this rate and save frames as images (default: every frame, annotated video).
        batch: images per forward pass.
        progress: progress bar.
    """

    model: str | None = None
    conf: float | None = None
    iou: float | None = None
    threads: int | None = None
    save: bool = True
    video_fps: float | None = None
    batch: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.conf is not None and not 0 < float(self.conf) < 1:
            raise ConfigError(f"conf must be in (0, 1), found {self.conf}")
        if self.iou is not None and not 0 < float(self.iou) <= 1:
            raise ConfigError(f"iou must be in (0, 1], found {self.iou}")
        if int(self.batch) < 1:
            raise ConfigError(f"batch must be >= 1, found {self.batch}")


@dataclass
class PredictResult:
    """What :func:`predict` wrote and measured."""

    out: Path
    frames: int
    detections: int
    fps: float
    results: Path
    videos: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _annotate(image: np.ndarray, det: Any, names: list[str]) -> np.ndarray:
    import supervision as sv

    d = sv.Detections(xyxy=det.xyxy.astype(np.float32).reshape(-1, 4), confidence=det.scores,
                      class_id=det.class_ids.astype(int))
    labels = [f"{names[c]} {s:.2f}" for c, s in zip(det.class_ids, det.scores)]
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    thick = max(1, round(max(image.shape[:2]) / 640))
    bgr = sv.BoxAnnotator(thickness=thick).annotate(bgr, d)
    bgr = sv.LabelAnnotator(text_scale=0.4 * thick, text_thickness=thick, text_padding=2,
                             smart_position=True).annotate(bgr, d, labels=labels)
    return bgr


def predict(bundle: str | Path, sources: list[str | Path], out: str | Path,
            config: PredictConfig | None = None) -> PredictResult:
    """Detect objects with a bundle in images, folders (recursive) and videos.

    Raises:
        BundleError (a ConfigError): the bundle is missing or unreadable.
        SourceError: nothing readable in ``sources``.
    """
    import cv2

    from autolabel.core.progress import ProgressBar
    from autolabel.runtime import load_bundle
    from autolabel.sources import SourceConfig, SourceReport, discover, iter_frames

    config = config or PredictConfig()
    det = load_bundle(bundle, model=config.model, threads=config.threads)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if config.save:
        (out / "images").mkdir(exist_ok=True)
    report = SourceReport()
    items = list(discover(sources, report))  # file names only: cheap, and tells videos from images
    n_img, n_vid = len([m for m in items if m.kind == "image"]), len([m for m in items if m.kind == "video"])
    images = [m for m in items if m.kind == "image"]
    videos = [m for m in items if m.kind == "video"]
    coco_images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    per_class = dict.fromkeys(det.names, 0)
    infer_s = 0.0
    frames = 0
    written: list[Path] = []

    def record(frame_id: str, file_name: str, rgb: np.ndarray, d: Any) -> None:
        nonlocal frames
        iid = len(coco_images)
        h, w = rgb.shape[:2]
        coco_images.append({"id": iid, "file_name": file_name, "width": int(w), "height": int(h)})
        for b, s, c in zip(d.xyxy.tolist(), d.scores.tolist(), d.class_ids.tolist()):
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": int(c), "score": round(float(s), 5),
                         "bbox": [round(b[0], 2), round(b[1], 2), round(b[2] - b[0], 2), round(b[3] - b[1], 2)],
                         "area": round((b[2] - b[0]) * (b[3] - b[1]), 2), "iscrowd": 0})
            per_class[det.names[c]] += 1
        frames += 1

    def run(batch: list[tuple[str, str, np.ndarray]], writer: Any = None) -> None:
        nonlocal infer_s
        if not batch:
            return
        t0 = time.perf_counter()
        ds = det.predict_batch([b[2] for b in batch], conf=config.conf, iou=config.iou)
        infer_s += time.perf_counter() - t0
        for (fid, fname, rgb), d in zip(batch, ds):
            record(fid, fname, rgb, d)
            if config.save:
                ann = _annotate(rgb, d, det.names)
                if writer is not None:
                    writer.write(ann)
                else:
                    cv2.imwrite(str(out / "images" / f"{fid}.jpg"), ann)

    total = len(images) if (config.video_fps or not videos) else None
    bar = ProgressBar(total=total, desc="predicting", enabled=config.progress, unit="frame")
    t_start = time.perf_counter()
    try:
        still = [m.path for m in images]
        if config.video_fps:
            still += [m.path for m in videos]
        if still:
            scfg = SourceConfig(video_fps=config.video_fps or 1.0, dedup_threshold=0.0)
            batch: list[tuple[str, str, np.ndarray]] = []
            for f in iter_frames(still, scfg, report):
                name = Path(f.source).name if f.frame_index is None else f"{f.id}.jpg"
                batch.append((f.id, name, f.image))
                if len(batch) >= config.batch:
                    run(batch)
                    bar.update(len(batch))
                    batch = []
            run(batch)
            bar.update(len(batch))
        if not config.video_fps:
            for m in videos:
                cap = cv2.VideoCapture(str(m.path))
                if not cap.isOpened():
                    report.skipped.append((str(m.path), "video cannot be opened"))
                    continue
                fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
                writer = None
                idx = 0
                buf: list[tuple[str, str, np.ndarray]] = []
                while True:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    if writer is None and config.save:
                        dest = out / f"{m.id}_annotated.mp4"
                        writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                                 (bgr.shape[1], bgr.shape[0]))
                        written.append(dest)
                    buf.append((f"{m.id}_f{idx:07d}", f"{m.id}_f{idx:07d}.jpg", np.ascontiguousarray(bgr[:, :, ::-1])))
                    idx += 1
                    if len(buf) >= config.batch:
                        run(buf, writer)
                        bar.update(len(buf))
                        buf = []
                run(buf, writer)
                bar.update(len(buf))
                cap.release()
                if writer is not None:
                    writer.release()
                if idx == 0:
                    report.skipped.append((str(m.path), "no decodable frame"))
    finally:
        bar.close()
    wall = time.perf_counter() - t_start
    if frames == 0:
        reasons = "; ".join(f"{p}: {r}" for p, r in report.skipped[:3])
        raise SourceError(f"no image or video frame could be read from {[str(s) for s in sources]} "
                          f"({n_img} images, {n_vid} videos found{'; ' + reasons if reasons else ''})")
    coco = {"info": {"description": "autolabel predict", "bundle": str(Path(bundle).resolve()), "model": det.model},
            "images": coco_images, "annotations": anns,
            "categories": [{"id": i, "name": n, "supercategory": "object"} for i, n in enumerate(det.names)]}
    results = out / "detections.coco.json"
    results.write_text(json.dumps(coco))
    fps = frames / infer_s if infer_s > 0 else 0.0
    summary = {"frames": frames, "detections": len(anns), "per_class": per_class, "model": det.model,
               "fps_model": round(fps, 2), "fps_end_to_end": round(frames / wall, 2) if wall > 0 else None,
               "videos": [str(p) for p in written], "skipped": report.to_dict()["skipped"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return PredictResult(out=out, frames=frames, detections=len(anns), fps=fps, results=results, videos=written,
                         summary=summary)

