"""The per-frame helpers of the render's main thread (burn-ins on I420, thumbnails, the poster test) give the same
pixels and decisions as the straightforward code they replaced, on real decoded frames.

The reference implementations below are the code as it was before it was made cheaper (issue #14): each result
of the fast code must equal theirs bit for bit (the poster test: decision for decision). One deliberate change is
in the references too: a timecode is measured with every digit a "0", so its box keeps its place and size.
"""

from __future__ import annotations

import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from preview_desktop.render import compose
from preview_desktop.render.artifacts import Collector, _sample, looks_like_picture
from preview_desktop.render.scaler import Scaler
from tests.support.media import BLUE, make_clip
from tests.support.noise import make_noise_clip

FONT = cv2.FONT_HERSHEY_SIMPLEX


# the reference: the code before issue #14's per-frame work ------------------------------------------------
def _ref_box(width: int, height: int, measured: str, org: tuple[int, int], scale: float,
             thick: int) -> tuple[int, int, int, int]:
    (tw, th), base = cv2.getTextSize(measured, FONT, scale, thick)
    x, y = org
    pad = max(2, int(th * 0.35))
    return max(0, x - pad), max(0, y - th - pad), min(width, x + tw + pad), min(height, y + base + pad)


def _ref_text_box(image: np.ndarray, text: str, measured: str, org: tuple[int, int], scale: float, thick: int,
                  shift: tuple[int, int] = (0, 0)) -> None:
    sx, sy = shift
    x0, y0, x1, y1 = _ref_box(sx + image.shape[1], sy + image.shape[0], measured, org, scale, thick)
    if x1 > x0 and y1 > y0:
        region = image[y0 - sy:y1 - sy, x0 - sx:x1 - sx]
        region[:] = region // 4
    cv2.putText(image, text, (org[0] - sx, org[1] - sy), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)


def _ref_items(width: int, height: int, tc: str | None, clip: str | None,
               label: str | None) -> list[tuple[str, str, tuple[int, int], float, int]]:
    """(text, the text measured, origin, scale, thickness) of each burn-in."""
    scale = max(0.35, height / 360 * 0.55)
    thick = max(1, round(height / 360))
    margin = max(4, height // 40)
    items = []
    if tc:
        zeros = re.sub(r"\d", "0", tc)
        (tw, _th), _ = cv2.getTextSize(zeros, FONT, scale * 1.1, thick)
        items.append((tc, zeros, ((width - tw) // 2, height - margin - 2), scale * 1.1, thick))
    if clip:
        shown = (clip if len(clip) <= 40 else clip[:39] + "…").encode("ascii", "replace").decode()
        (_tw, th), _ = cv2.getTextSize(shown, FONT, scale, thick)
        items.append((shown, shown, (margin, margin + th), scale, thick))
    if label:
        shown = label.encode("ascii", "replace").decode()
        (tw, th), _ = cv2.getTextSize(shown, FONT, scale, thick)
        items.append((shown, shown, (width - tw - margin, margin + th), scale, thick))
    return items


def _ref_join(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    height, width = y.shape
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(height * 3 // 2, width)


def ref_burn_in(image: np.ndarray, **texts: str | None) -> np.ndarray:
    height, width = image.shape[:2]
    for text, measured, org, scale, thick in _ref_items(width, height, texts.get("tc"), texts.get("clip"),
                                                        texts.get("label")):
        _ref_text_box(image, text, measured, org, scale, thick)
    return image


def ref_burn_in_i420(image: np.ndarray, width: int, height: int, **texts: str | None) -> np.ndarray:
    y, u, v = compose.i420_planes(image, width, height)
    for text, measured, org, scale, thick in _ref_items(width, height, texts.get("tc"), texts.get("clip"),
                                                        texts.get("label")):
        x0, y0, x1, y1 = _ref_box(width, height, measured, org, scale, thick)
        x0, y0 = x0 & ~1, y0 & ~1
        x1, y1 = min(width, (x1 + 1) & ~1), min(height, (y1 + 1) & ~1)
        if x1 <= x0 or y1 <= y0:
            continue
        box = (slice(y0, y1), slice(x0, x1))
        half = (slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2))
        bgr = cv2.cvtColor(_ref_join(y[box], u[half], v[half]), cv2.COLOR_YUV2BGR_I420)
        _ref_text_box(bgr, text, measured, org, scale, thick, shift=(x0, y0))
        by, bu, bv = compose.i420_planes(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), x1 - x0, y1 - y0)
        y[box], u[half], v[half] = by, bu, bv
    return image


def ref_thumbnail(image: np.ndarray, width: int, height: int, size: tuple[int, int]) -> np.ndarray:
    tw, th = size
    y, u, v = compose.i420_planes(image, width, height)
    small = _ref_join(cv2.resize(y, (tw, th), interpolation=cv2.INTER_AREA),
                      cv2.resize(u, (tw // 2, th // 2), interpolation=cv2.INTER_AREA),
                      cv2.resize(v, (tw // 2, th // 2), interpolation=cv2.INTER_AREA))
    return cv2.cvtColor(small, cv2.COLOR_YUV2BGR_I420)


def ref_looks_like_picture(image: np.ndarray, step: int = 8) -> bool:
    small = image[::step, ::step]
    return float(small.mean()) > 12.0 and float(small.std()) > 4.0


# real decoded frames ------------------------------------------------------------------------------------------
def _test_pattern(path: Path, size: tuple[int, int], frames: int) -> Path:
    """ffmpeg's testsrc2 (gradients, saturated colour edges, text, motion) encoded to H.264."""
    graph = av.filter.Graph()
    source = graph.add("testsrc2", f"size={size[0]}x{size[1]}:rate=25")
    sink = graph.add("buffersink")
    source.link_to(sink)
    graph.configure()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for index in range(frames):
            frame = sink.pull()
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _decoded(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """Every frame of a file as the render sees it: decoded, area-scaled to `size` as I420 (render/scaler.py)."""
    scaler = Scaler(size, "i420")
    with av.open(str(path)) as container:
        return [scaler.scale(frame).copy() for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("equivalence")
    return {
        "pattern": _test_pattern(folder / "pattern.mp4", (1280, 720), 12),
        "noise": make_noise_clip(folder / "noise.mp4", seconds=0.4),
        "blocks": make_clip(folder / "blocks.mp4", seconds=0.4, size=(640, 360), colour=BLUE, flashes=[3],
                            audio=False),
    }


@pytest.fixture(scope="module")
def frames(sources: dict[str, Path]) -> list[np.ndarray]:
    """640x360 I420 frames of all three sources, plus a black and a near-black one."""
    out = [image for path in sources.values() for image in _decoded(path, (640, 360))]
    assert len(out) >= 30
    black = np.full_like(out[0], 128)
    black[:360] = 16  # video black
    dim = out[0].copy()
    dim[:360] = 16 + dim[:360] // 32
    dim[360:] = 128
    return [*out, black, dim]


# the tests --------------------------------------------------------------------------------------------------
BURN_INS = [
    {"tc": "00:00:00:00"},
    {"tc": "01:23:45:19", "clip": "B-roll 3", "label": "DRAFT"},
    {"tc": "23:59:59:24", "clip": "a clip with a very long name that gets cut short at forty", "label": "Ünïcode"},
    {"clip": "left only"},
    {"label": "right only"},
]


def test_burn_in_i420_is_bit_identical_to_the_reference(frames: list[np.ndarray]) -> None:
    for n, image in enumerate(frames):
        texts = BURN_INS[n % len(BURN_INS)] | {"tc": compose.timecode(90000 + n * 37, 25)}
        ours = compose.burn_in_i420(image.copy(), 640, 360, **texts)
        reference = ref_burn_in_i420(image.copy(), 640, 360, **texts)
        assert np.array_equal(ours, reference), (n, texts)
        assert not np.array_equal(ours, image)  # something was drawn


@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720), (320, 180), (642, 362)])
def test_burn_ins_at_other_sizes(frames: list[np.ndarray], width: int, height: int) -> None:
    """BGR and I420 burn-ins at sizes whose boxes land on odd pixels and at the frame's edges."""
    for n, image in enumerate(frames[::7]):
        bgr = cv2.resize(cv2.cvtColor(image, cv2.COLOR_YUV2BGR_I420), (width, height), interpolation=cv2.INTER_AREA)
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        texts = BURN_INS[n % len(BURN_INS)]
        assert np.array_equal(compose.burn_in(bgr.copy(), **texts), ref_burn_in(bgr.copy(), **texts))
        assert np.array_equal(compose.burn_in_i420(i420.copy(), width, height, **texts),
                              ref_burn_in_i420(i420.copy(), width, height, **texts))


@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720), (320, 180)])
def test_timecode_box_keeps_its_place(width: int, height: int) -> None:
    """OpenCV 5 measures each glyph's real descent ("0" and "1" differ), so a box sized by each frame's text
    would twitch by a pixel as the digits change. It is measured once, as zeros: every timecode of a render
    darkens the same rectangle, and the text is drawn as the reference draws it."""
    image = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    boxes = set()
    for tc in ("00:00:00:00", "11:11:11:11", "55:55:55:55", "17:48:29:03", "01:00:00:01"):
        ours = compose.burn_in_i420(image.copy(), width, height, tc=tc)
        assert np.array_equal(ours, ref_burn_in_i420(image.copy(), width, height, tc=tc))
        rows, cols = np.nonzero(ours[:height] != 128)
        boxes.add((rows.min(), rows.max(), cols.min(), cols.max()))
    assert len(boxes) == 1, boxes


def test_thumbnail_is_bit_identical_to_per_plane_inter_area(frames: list[np.ndarray]) -> None:
    for image in frames:
        assert np.array_equal(compose.Thumbnailer(640, 360, (160, 90))(image),
                              ref_thumbnail(image, 640, 360, (160, 90)))


@pytest.mark.parametrize(("width", "height", "size"), [
    (1280, 720, (160, 90)),  # 3 halvings
    (2560, 1440, (160, 90)),  # 4: sums of 256 pixels, the 16-bit limit
    (320, 180, (160, 90)),  # 1: OpenCV's own path
    (1920, 1080, (160, 90)),  # 12: not a power of two
    (854, 480, (160, 90)),
    (640, 360, (160, 88)),  # different factors each way
])
def test_thumbnail_at_other_sizes(sources: dict[str, Path], width: int, height: int,
                                  size: tuple[int, int]) -> None:
    images = _decoded(sources["pattern"], (width, height))[:4]
    white = np.full_like(images[0], 255)  # the largest sums
    for image in [*images, white]:
        assert np.array_equal(compose.Thumbnailer(width, height, size)(image),
                              ref_thumbnail(image, width, height, size))


def test_a_thumbnailer_reused_for_many_frames_keeps_nothing_between_them(frames: list[np.ndarray]) -> None:
    """One Thumbnailer per render reuses its buffers: each frame's thumbnail is still its own (a new array)."""
    thumbnailer = compose.Thumbnailer(640, 360, (160, 90))
    made = [thumbnailer(image) for image in [*frames, *reversed(frames)]]
    expected = [ref_thumbnail(image, 640, 360, (160, 90)) for image in [*frames, *reversed(frames)]]
    assert all(np.array_equal(a, b) for a, b in zip(made, expected, strict=True))
    assert len({id(image) for image in made}) == len(made)
    assert not np.shares_memory(made[0], made[1])


def test_poster_test_decides_as_the_float_formula(frames: list[np.ndarray]) -> None:
    collector = Collector(300, 25, 640, 360)
    decisions = []
    for image in frames:
        small = collector.thumbnail(image, True)
        bgr = cv2.cvtColor(image, cv2.COLOR_YUV2BGR_I420)
        for picture, step in ((small, 2), (bgr, 8), (small, 3), (bgr, 1)):
            decision = looks_like_picture(picture, step)
            assert decision == ref_looks_like_picture(picture, step)
            assert np.array_equal(_sample(picture, step), picture[::step, ::step])
            decisions.append(decision)
        assert collector.good(image, True, small) == ref_looks_like_picture(small, 2)
    assert any(decisions) and not all(decisions)  # both answers met: black/dim frames are not posters


@pytest.mark.parametrize(("values", "expected"), [
    ((16, 24), False),  # mean 20, standard deviation exactly 4: not above
    ((15, 25), True),  # deviation 5
    ((4, 20), False),  # mean exactly 12: not above
    ((5, 21), True),
    ((0, 0), False),
])
def test_poster_test_at_its_thresholds(values: tuple[int, int], expected: bool) -> None:
    image = np.empty((90, 160, 3), dtype=np.uint8)
    image[:, 0::4], image[:, 2::4] = values[0], values[1]  # every 2nd pixel sampled: half of each
    image[:, 1::2] = 200  # never sampled at step 2
    assert looks_like_picture(image, 2) is expected
    assert ref_looks_like_picture(image, 2) is expected
