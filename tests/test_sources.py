"""Tests for autolabel.sources: discovery, ids, decoding of odd images, video sampling and de-duplication."""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import subprocess
import sys
import types
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from autolabel import sources
from autolabel.core.errors import ConfigError, SourceError
from autolabel.sources import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frame,
    MediaItem,
    SourceConfig,
    SourceReport,
    count_items,
    discover,
    estimate_total_frames,
    iter_frames,
    load_image,
)

SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")
RNG = np.random.default_rng(0)
NO_DEDUP = SourceConfig(video_fps=None, video_stride=1, dedup_threshold=0)


# ------------------------------------------------------------------------------------------------ helpers


def rgb(h: int = 12, w: int = 16) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, image: Image.Image | np.ndarray, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, format=fmt, **kw)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height but holds almost no data (a decompression bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def make_video(path: Path, n: int = 60, fps: float = 10, fourcc: str = "MJPG") -> Path:
    """n frames of a static gray background; a white square moves 2 px per frame during frames 20-39."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    assert writer.isOpened(), f"cannot write {fourcc} video"
    for i in range(n):
        frame = np.empty((48, 64, 3), np.uint8)
        frame[:] = (30, 60, 200)  # BGR: the RGB output must read (200, 60, 30)
        if 20 <= i < 40:
            x = 2 * (i - 20)
            frame[16:32, x : x + 16] = 255
        writer.write(frame)
    writer.release()
    return path


MOVING_KEPT = [0, *range(20, 41)]  # first frame, every moving frame, the first static frame after


# ---------------------------------------------------------------------------------------------- discovery


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    save(root / "a.jpg", rgb())
    save(root / "B.JPEG", rgb(), "JPEG")
    save(root / "sub" / "c.png", rgb())
    save(root / "sub" / "deeper" / "d.bmp", rgb())
    save(root / "e.webp", rgb())
    save(root / "f.tiff", rgb())
    save(root / "g.Png", rgb())
    save(root / ".hidden.jpg", rgb())
    save(root / ".cache" / "x.jpg", rgb())
    (root / "notes.txt").write_text("not media")
    make_video(root / "clips" / "cam.avi", n=12)
    return root


def test_extension_sets() -> None:
    for ext in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm"):
        assert ext in IMAGE_EXTENSIONS
    for ext in (".mp4", ".avi", ".mkv", ".mov"):
        assert ext in VIDEO_EXTENSIONS
    assert not IMAGE_EXTENSIONS & VIDEO_EXTENSIONS


def test_discover_is_recursive_sorted_and_skips_hidden(tree: Path) -> None:
    report = SourceReport()
    items = list(discover([tree], report))
    assert [(m.kind, m.id) for m in items] == [
        ("image", "B"),
        ("image", "a"),
        ("video", "clips__cam"),
        ("image", "e"),
        ("image", "f"),
        ("image", "g"),
        ("image", "sub__c"),
        ("image", "sub__deeper__d"),
    ]
    assert all(isinstance(m, MediaItem) and m.path.exists() for m in items)
    assert (report.images_found, report.videos_found, report.ignored_files) == (7, 1, 1)
    assert [m.id for m in discover([tree])] == [m.id for m in items]  # deterministic


def test_discover_is_lazy_and_accepts_a_single_path(tree: Path) -> None:
    gen = discover([tree])
    assert isinstance(gen, types.GeneratorType)
    assert next(gen).id == "B"
    assert [m.id for m in discover(str(tree / "sub"))] == ["c", "deeper__d"]


def test_missing_source_raises_at_call(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"source '.*nope' not found \(expected an image, a video"):
        discover([tmp_path / "nope"])
    with pytest.raises(SourceError, match="no sources given"):
        discover([])


def test_count_items_and_empty_folder(tree: Path, tmp_path: Path) -> None:
    report = SourceReport()
    assert count_items([tree], report) == (7, 1)
    assert report.images_found == 7 and report.ignored_files == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        SourceError, match=r"no images or videos found in \[.*empty'\] \(looked for .*\.jpg.*\.mp4"
    ):
        count_items([tmp_path / "empty"])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("x")
    with pytest.raises(SourceError, match="1 other file"):
        count_items([tmp_path / "docs"])
    with pytest.raises(SourceError, match="no images or videos"):
        estimate_total_frames([tmp_path / "empty"])


def test_report_shared_by_count_items_and_iter_frames_is_not_doubled(tree: Path) -> None:
    report = SourceReport()
    count_items([tree], report)
    frames = list(iter_frames([tree], SourceConfig(video_stride=4, dedup_threshold=0), report))
    assert (report.images_found, report.videos_found, report.ignored_files) == (7, 1, 1)
    assert len(frames) == 7 + 3
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d and d["frames_sampled"] == 3


def test_ids_multi_source_prefix_and_file_sources(tmp_path: Path) -> None:
    for cam in ("camA", "camB"):
        save(tmp_path / cam / "day1" / "x.jpg", rgb())
    single = [m.id for m in discover([tmp_path / "camA"])]
    multi = [m.id for m in discover([tmp_path / "camA", tmp_path / "camB/"])]
    assert single == ["day1__x"]
    assert multi == ["camA__day1__x", "camB__day1__x"]
    assert [m.id for m in discover([tmp_path / "camA" / "day1" / "x.jpg"])] == ["x"]


def test_ids_same_stem_and_unsafe_characters(tmp_path: Path) -> None:
    for name in ("a.jpg", "a.png", "a.JPG", "my photo (1).jpg", "my_photo__1_.png", "café.bmp", "cafè.bmp"):
        save(tmp_path / name, rgb(), "PNG")
    ids = [m.id for m in discover([tmp_path])]
    # Sorted by name: "a.JPG" < "a.jpg" < "a.png"; the later files of a stem get their extension appended.
    assert ids[:3] == ["a", "a_jpg", "a_png"]
    # Names that lose information when cleaned keep a readable head plus "___" and a hash of the raw name.
    lossy = [i for i in ids[3:]]
    assert sorted(i.rsplit("___", 1)[0] for i in lossy) == ["caf_", "caf_", "my_photo__1_", "my_photo__1_"]
    assert all(re.fullmatch(r".+___[0-9a-f]{12}", i) for i in lossy)
    assert len(set(ids)) == len(ids) == 7
    assert all(SAFE_ID.match(i) for i in ids)


def test_ids_unique_and_safe_across_a_tree(tree: Path, tmp_path: Path) -> None:
    save(tree / "sub" / "c.jpg", rgb())  # same stem as sub/c.png
    save(tree / "weird dir#1" / "ü ber.jpg", rgb())
    ids = [m.id for m in discover([tree, tmp_path / "data" / "sub"])]
    assert len(ids) == len(set(ids))
    assert all(SAFE_ID.match(i) for i in ids)
    assert any(i.startswith("data__weird_dir_1____ber___") for i in ids)  # "ü", " " and "#" become "_"


def test_very_long_ids_are_shortened_but_unique(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    save(deep / "x.jpg", rgb())
    save(deep / "y.jpg", rgb())
    ids = [m.id for m in discover([tmp_path])]
    assert len(set(ids)) == 2 and all(len(i) <= 200 for i in ids)


def test_symlink_loop_terminates(tmp_path: Path) -> None:
    save(tmp_path / "sub" / "x.jpg", rgb())
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    assert [m.id for m in discover([tmp_path])] == ["sub__x"]


# ------------------------------------------------------------------------------------------------ images


def test_plain_jpeg_and_png_are_copyable(tmp_path: Path) -> None:
    a = rgb(20, 30)
    img, copyable = load_image(save(tmp_path / "a.png", a))
    assert copyable and np.array_equal(img, a)
    assert img.dtype == np.uint8 and img.flags.c_contiguous and img.flags.writeable
    img, copyable = load_image(save(tmp_path / "b.jpg", a, quality=95))
    assert copyable and img.shape == (20, 30, 3)
    frames = {f.id: f for f in iter_frames([tmp_path])}
    assert (frames["a"].copyable, frames["a"].suffix) == (True, ".png")
    assert (frames["b"].copyable, frames["b"].suffix, frames["b"].group) == (True, ".jpg", "b")


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.fromarray(rgb(20, 40))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = save(tmp_path / "rot.jpg", im, exif=exif)
    img, copyable = load_image(p)
    assert img.shape == (40, 20, 3) and not copyable
    from PIL import ImageOps

    with Image.open(p) as ref:
        assert np.array_equal(img, np.asarray(ImageOps.exif_transpose(ref)))
    img, _ = load_image(p, SourceConfig(max_side=10))
    assert img.shape == (10, 5, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_exif_orientations_match_pil(tmp_path: Path, orientation: int) -> None:
    from PIL import ImageOps

    im = Image.fromarray(rgb(6, 9))
    exif = im.getexif()
    exif[0x0112] = orientation
    p = save(tmp_path / "o.png", im, exif=exif)
    with Image.open(p) as ref:
        expected = np.asarray(ImageOps.exif_transpose(ref).convert("RGB"))
    assert np.array_equal(load_image(p)[0], expected)


def test_cmyk_gray_and_bilevel(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))  # red
    img, copyable = load_image(save(tmp_path / "cmyk.jpg", cmyk, quality=100))
    assert img.shape == (6, 8, 3) and not copyable
    assert img[..., 0].mean() > 200 and img[..., 1].mean() < 60
    img, copyable = load_image(save(tmp_path / "gray.png", Image.new("L", (5, 4), 77)))
    assert img.shape == (4, 5, 3) and (img == 77).all() and not copyable
    img, _ = load_image(save(tmp_path / "bw.pbm", Image.new("1", (5, 4), 1)))
    assert (img == 255).all()
    img, _ = load_image(save(tmp_path / "g.pgm", Image.new("L", (5, 4), 9)))
    assert (img == 9).all()


def test_16bit_grayscale_is_scaled(tmp_path: Path) -> None:
    g = np.array([[0, 257, 65535]], np.uint16)
    img, copyable = load_image(save(tmp_path / "g16.png", Image.fromarray(g)))
    assert img.shape == (1, 3, 3) and not copyable
    assert img[0, :, 0].tolist() == [0, 1, 255]
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    low = np.array([[0, 100, 255]], np.uint16)  # max <= 255: kept as is, not darkened to 0
    img, _ = load_image(save(tmp_path / "low16.png", Image.fromarray(low)))
    assert img[0, :, 0].tolist() == [0, 100, 255]


def test_16bit_rgb_png_is_not_copyable(tmp_path: Path) -> None:
    bgr16 = np.zeros((4, 5, 3), np.uint16)
    bgr16[..., 2] = 65535
    p = tmp_path / "rgb16.png"
    cv2.imwrite(str(p), bgr16)
    img, copyable = load_image(p)
    assert not copyable and img[..., 0].min() == 255 and img[..., 1:].max() == 0


def test_float_and_32bit_tiff(tmp_path: Path) -> None:
    f = np.array([[0.0, 0.5, 1.0]], np.float32)
    img, _ = load_image(save(tmp_path / "f.tif", Image.fromarray(f)))
    assert img[0, :, 0].tolist() == [0, 128, 255]
    i32 = np.array([[0, 32768, 65535]], np.int32)
    img, _ = load_image(save(tmp_path / "i.tif", Image.fromarray(i32, "I")))
    assert img[0, :, 0].tolist() == [0, 128, 255]


def test_rgba_and_palette_transparency_composite_over_black(tmp_path: Path) -> None:
    a = np.zeros((2, 2, 4), np.uint8)
    a[..., :3] = (200, 100, 50)
    a[..., 3] = [[255, 0], [128, 255]]
    img, copyable = load_image(save(tmp_path / "rgba.png", Image.fromarray(a, "RGBA")))
    assert not copyable
    assert img[0, 0].tolist() == [200, 100, 50] and img[0, 1].tolist() == [0, 0, 0]
    assert img[1, 0].tolist() == [100, 50, 25]
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((1, 0), 1)
    img, _ = load_image(save(tmp_path / "p.png", p, transparency=0))
    assert img[0].tolist() == [[0, 0, 0], [0, 255, 0]]


def test_first_frame_of_gif_and_multipage_tiff(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "multi.tiff", save_all=True, append_images=frames[1:])
    for name in ("anim.gif", "multi.tiff"):
        img, _ = load_image(tmp_path / name)
        assert img.shape == (4, 4, 3) and img[..., 0].min() > 200 and img[..., 2].max() < 50


def test_png_named_jpg_decodes_by_content(tmp_path: Path) -> None:
    a = rgb()
    p = tmp_path / "fake.jpg"
    p.write_bytes(_encode(a, "PNG"))
    img, copyable = load_image(p)
    assert np.array_equal(img, a) and copyable
    (frame,) = iter_frames([p])
    assert frame.suffix == ".png"  # the copy must carry the real format's extension


def _encode(a: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", r"^empty file \(0 bytes\)$"),
        ("truncated.jpg", "half-jpeg", r"^truncated or corrupt image: "),
        ("text.png", b"hello, I am text\n" * 20, r"^not an image: "),
    ],
)
def test_unreadable_images_raise_one_line_source_error(
    tmp_path: Path, name: str, content: bytes | str, reason: str
) -> None:
    if content == "half-jpeg":
        data = _encode(rgb(64, 64), "JPEG")
        content = data[: len(data) // 2]
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(SourceError, match=reason) as info:
        load_image(p)
    assert "\n" not in str(info.value)


def test_truncated_detected_even_if_pil_flag_was_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(rgb(64, 64), "JPEG")
    p = tmp_path / "t.jpg"
    p.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(SourceError, match="truncated"):
        load_image(p)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_too_large_checked_from_header(tmp_path: Path) -> None:
    p = save(tmp_path / "big.png", rgb(80, 100))
    with pytest.raises(SourceError, match=r"^too large: 100x80 > max_pixels \(1000\)$"):
        load_image(p, SourceConfig(max_pixels=1000))
    bomb = png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(SourceError, match="^too large: "):
        load_image(bomb)
    with pytest.raises(SourceError, match="^too large: 20000x20000 > max_pixels"):
        load_image(bomb, SourceConfig(max_pixels=300_000_000))  # checked before the 1.2 GB decode


def test_max_side_downscales_keeping_aspect(tmp_path: Path) -> None:
    for name in ("wide.jpg", "wide.png"):
        img, copyable = load_image(save(tmp_path / name, rgb(200, 400)), SourceConfig(max_side=100))
        assert img.shape == (50, 100, 3) and not copyable and img.flags.c_contiguous
    img, copyable = load_image(tmp_path / "wide.png", SourceConfig(max_side=400))
    assert img.shape == (200, 400, 3) and copyable


def test_iter_frames_records_bad_files_and_continues(tmp_path: Path) -> None:
    save(tmp_path / "good1.jpg", rgb())
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    data = _encode(rgb(64, 64), "JPEG")
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "broken.mp4").write_bytes(RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "empty.avi").write_bytes(b"")
    png_header_only(tmp_path / "bomb.png", 20000, 20000)
    save(tmp_path / "zgood2.png", rgb())
    report = SourceReport()
    frames = list(iter_frames([tmp_path], SourceConfig(max_pixels=10_000), report))
    assert [f.id for f in frames] == ["good1", "zgood2"]
    reasons = {Path(p).name: r for p, r in report.skipped}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["empty.avi"] == "empty file (0 bytes)"
    assert reasons["text.png"].startswith("not an image")
    assert reasons["trunc.jpg"].startswith("truncated or corrupt image")
    assert reasons["bomb.png"] == "too large: 20000x20000 > max_pixels (10000)"
    assert reasons["broken.mp4"] in ("cannot open video", "video has no decodable frames")
    assert len(report.skipped) == 6 and (report.images_found, report.videos_found) == (6, 2)


def test_skip_images_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        save(tmp_path / f"{name}.png", rgb())
    calls: list[Path] = []
    real = sources._load_image

    def counting(path: Path, config: SourceConfig):
        calls.append(path)
        return real(path, config)

    monkeypatch.setattr(sources, "_load_image", counting)
    frames = list(iter_frames([tmp_path], skip=lambda i: i in {"a", "c"}))
    assert [f.id for f in frames] == ["b"] and [p.name for p in calls] == ["b.png"]


# ------------------------------------------------------------------------------------------------- video


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "cam1.avi")


def _indices(frames: list[Frame]) -> list[int | None]:
    return [f.frame_index for f in frames]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (SourceConfig(video_fps=1, dedup_threshold=0), list(range(0, 60, 10))),
        (SourceConfig(video_fps=2.5, dedup_threshold=0), list(range(0, 60, 4))),
        (SourceConfig(video_fps=3, dedup_threshold=0), [0, 4, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40, 44, 47, 50, 54, 57]),
        (SourceConfig(video_fps=100, dedup_threshold=0), list(range(60))),
        (SourceConfig(video_fps=1, video_stride=7, dedup_threshold=0), list(range(0, 60, 7))),
    ],
)  # fmt: skip
def test_video_sampling(video: Path, config: SourceConfig, expected: list[int]) -> None:
    report = SourceReport()
    frames = list(iter_frames([video], config, report))
    assert _indices(frames) == expected
    assert report.frames_sampled == len(expected) and report.frames_deduplicated == 0
    assert estimate_total_frames([video], config) == len(expected)
    for f in frames:
        assert f.id == f"cam1_f{f.frame_index:07d}" and SAFE_ID.match(f.id)
        assert f.timestamp == pytest.approx(f.frame_index / 10)
        assert f.source == str(video) and not f.copyable and f.suffix == ".jpg"


def test_video_frames_are_rgb_and_grouped(video: Path) -> None:
    config = SourceConfig(video_fps=1, dedup_threshold=0, video_group_seconds=2)
    frames = list(iter_frames([video], config))
    assert [f.group for f in frames] == [f"cam1_t{b:05d}" for b in (0, 0, 1, 1, 2, 2)]
    img = frames[0].image
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert np.abs(img[0, 0].astype(int) - (200, 60, 30)).max() < 12  # BGR (30, 60, 200) written
    small = next(iter_frames([video], SourceConfig(video_fps=1, max_side=32)))
    assert small.image.shape == (24, 32, 3)


def test_dedup_drops_static_frames_keeps_moving_ones(video: Path) -> None:
    report = SourceReport()
    config = SourceConfig(video_fps=None, video_stride=1, dedup_threshold=2.0)
    frames = list(iter_frames([video], config, report))
    assert _indices(frames) == MOVING_KEPT
    assert report.frames_sampled == 60 and report.frames_deduplicated == 60 - len(MOVING_KEPT)
    assert len(list(iter_frames([video], NO_DEDUP))) == 60


def test_skip_video_frames_keeps_dedup_decisions(video: Path) -> None:
    config = SourceConfig(video_fps=None, video_stride=1)
    done = {f"cam1_f{i:07d}" for i in MOVING_KEPT[:10]}  # as if a first run stopped half way
    resumed = list(iter_frames([video], config, skip=done.__contains__))
    assert _indices(resumed) == MOVING_KEPT[10:]
    resumed = list(iter_frames([video], NO_DEDUP, skip=lambda i: i < "cam1_f0000050"))
    assert _indices(resumed) == list(range(50, 60))


def test_mp4_and_early_stop(tmp_path: Path) -> None:
    try:
        p = make_video(tmp_path / "c.mp4", n=20, fourcc="mp4v")
    except AssertionError:
        pytest.skip("this OpenCV build cannot write mp4v")
    frames = iter_frames([p], SourceConfig(video_fps=5, dedup_threshold=0))
    assert next(frames).frame_index == 0
    frames.close()  # releases the capture
    again = iter_frames([p], SourceConfig(video_fps=5, dedup_threshold=0))
    assert _indices(list(again)) == list(range(0, 20, 2))


class _FakeCap:
    def __init__(self, fps: float) -> None:
        self.fps = fps

    def get(self, prop: int) -> float:
        return self.fps


@pytest.mark.parametrize(("reported", "used"), [(0.0, 25.0), (math.nan, 25.0), (90000.0, 25.0), (12.5, 12.5)])
def test_unusable_fps_metadata_assumes_25(reported: float, used: float) -> None:
    assert sources._video_fps(_FakeCap(reported)) == used


def test_mixed_images_and_video_in_one_run(tree: Path) -> None:
    config = SourceConfig(video_stride=5, dedup_threshold=0)
    frames = list(iter_frames([tree], config))
    assert estimate_total_frames([tree], config) == len(frames) == 7 + 3
    ids = [f.id for f in frames]
    assert len(set(ids)) == len(ids)
    assert ids[2:5] == ["clips__cam_f0000000", "clips__cam_f0000005", "clips__cam_f0000010"]


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"video_fps": 0}, "video_fps must be a positive"),
        ({"video_fps": -1.0}, "video_fps must be a positive"),
        ({"video_fps": math.nan}, "video_fps must be a positive"),
        ({"video_fps": "1"}, "video_fps must be a positive"),
        ({"video_stride": 0}, "video_stride must be an integer >= 1"),
        ({"video_stride": 2.5}, "video_stride must be an integer >= 1"),
        ({"video_stride": True}, "video_stride must be an integer >= 1"),
        ({"video_fps": None}, "set video_fps .* or video_stride"),
        ({"dedup_threshold": -0.1}, r"dedup_threshold must be a number in \[0, 255\]"),
        ({"dedup_threshold": 300}, r"dedup_threshold must be a number in \[0, 255\]"),
        ({"max_pixels": 0}, "max_pixels must be an integer >= 1"),
        ({"max_side": 0}, "max_side must be an integer >= 1"),
        ({"video_group_seconds": 0}, "video_group_seconds must be a positive"),
    ],
)
def test_bad_config_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        SourceConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_good_config_values() -> None:
    SourceConfig(video_fps=None, video_stride=3, dedup_threshold=0, max_side=640, video_group_seconds=0.5)
    SourceConfig(video_fps=np.float32(2.0), video_stride=np.int64(4))


# ------------------------------------------------------------------------------------------------ memory


@pytest.mark.slow
def test_memory_does_not_grow_with_number_of_files(tmp_path: Path) -> None:
    tiny = _encode(rgb(8, 8), "PNG")
    dirs = []
    for d in range(20):  # 2,000 images, 100 per folder
        folder = tmp_path / f"d{d:02d}"
        folder.mkdir()
        for i in range(100):
            (folder / f"img{i:03d}.png").write_bytes(tiny)
        dirs.append(folder)

    # Measured in a fresh interpreter: tracemalloc counts every thread, and threads or finalizers left by
    # earlier tests would otherwise add their allocations to the peak.
    script = (
        "import gc, json, sys, tracemalloc\n"
        "from pathlib import Path\n"
        "from autolabel.sources import iter_frames\n"
        "dirs = [Path(p) for p in json.loads(sys.argv[1])]\n"
        "def peak(srcs):\n"
        "    gc.collect(); tracemalloc.start()\n"
        "    try:\n"
        "        return sum(1 for _ in iter_frames(srcs)), tracemalloc.get_traced_memory()[1]\n"
        "    finally:\n"
        "        tracemalloc.stop()\n"
        "peak(dirs[:1])\n"  # warm up lazy imports and caches outside the measurement
        "print(json.dumps([peak(dirs[:2]), peak(dirs)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, json.dumps([str(d) for d in dirs])],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (n_small, small), (n_big, big) = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (n_small, n_big) == (200, 2000)
    # A list of 2,000 paths or frames would add hundreds of KiB; the bound leaves room for allocator noise.
    assert big <= 1.5 * small + 64 * 1024, (small, big)


def test_sources_with_the_same_name_get_distinct_ids(tmp_path):
    from PIL import Image

    for d in ("a/cam", "b/cam"):
        (tmp_path / d).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / d / "x.jpg")
    ids = [m.id for m in discover([tmp_path / "a/cam", tmp_path / "b/cam"])]
    assert ids == ["cam__x", "cam_2__x"]
    files = [m.id for m in discover([tmp_path / "a/cam/x.jpg", tmp_path / "b/cam/x.jpg"])]
    assert files == ["x", "x_2"]
