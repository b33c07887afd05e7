"""OpenCV compositing on BGR uint8 frames: fit with letter/pillar-boxing, cross-fades, burn-ins, the slate.

Burn-ins are sized from the output height so they stay legible at 640×360 and do not swamp 1080p.
"""

from __future__ import annotations

import re
from functools import lru_cache

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT = (255, 255, 255)


def fit(src_w: int, src_h: int, out_w: int, out_h: int) -> tuple[int, int, int, int]:
    """(width, height, x, y) of the source scaled to fit inside the output, centred, aspect kept.

    Sizes are even so swscale's chroma stays aligned; a source within 1 % of the output aspect fills it.
    """
    if src_w <= 0 or src_h <= 0:
        return out_w, out_h, 0, 0
    scale = min(out_w / src_w, out_h / src_h)
    width = min(out_w, max(2, round(src_w * scale / 2) * 2))
    height = min(out_h, max(2, round(src_h * scale / 2) * 2))
    if abs(width - out_w) <= out_w * 0.01:
        width = out_w
    if abs(height - out_h) <= out_h * 0.01:
        height = out_h
    return width, height, (out_w - width) // 2, (out_h - height) // 2


def black(width: int, height: int) -> np.ndarray:
    return np.zeros((height, width, 3), dtype=np.uint8)


def place(picture: np.ndarray, width: int, height: int) -> np.ndarray:
    """The picture centred on a black canvas (a copy, so burn-ins never touch a cached source frame)."""
    h, w = picture.shape[:2]
    if w == width and h == height:
        return picture.copy()
    canvas = black(width, height)
    x, y = (width - w) // 2, (height - h) // 2
    canvas[y: y + h, x: x + w] = picture[: min(h, height), : min(w, width)]
    return canvas


def resize_fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A still (any size, grey or BGRA too) scaled into the output box with cv2 (INTER_AREA when shrinking)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        image = (image[:, :, :3].astype(np.float32) * alpha).astype(np.uint8)  # over black
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1.0, float(image.max())))
    w, h, _x, _y = fit(image.shape[1], image.shape[0], width, height)
    shrinking = w < image.shape[1]
    scaled = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return place(scaled, width, height)


def blend(layers: list[tuple[np.ndarray, float]], width: int, height: int) -> np.ndarray:
    """Weighted sum of full-canvas pictures (a dissolve); weights summing below 1 fade towards black."""
    if len(layers) == 1:
        image, weight = layers[0]
        if weight >= 0.999:
            return image
        return cv2.convertScaleAbs(image, alpha=weight)
    (a, wa), (b, wb) = layers[0], layers[1]
    out = cv2.addWeighted(a, wa, b, wb, 0.0)
    for image, weight in layers[2:]:
        out = cv2.addWeighted(out, 1.0, image, weight, 0.0)
    return out


def _scale(height: int) -> tuple[float, int]:
    """Font scale and thickness for a frame height: 0.55/1 at 360 lines."""
    scale = max(0.35, height / 360 * 0.55)
    return scale, max(1, round(height / 360))


TextSize = tuple[tuple[int, int], int]  # cv2.getTextSize: ((width, height), baseline)


def _box(width: int, height: int, org: tuple[int, int], size: TextSize) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the darkened box behind a burn-in text of `size`, clipped to the image. The baseline
    OpenCV 5 reports varies with the glyphs ("0" and "1" differ), so a box follows the measured text, not its
    length."""
    (tw, th), base = size
    x, y = org
    pad = max(2, int(th * 0.35))
    return max(0, x - pad), max(0, y - th - pad), min(width, x + tw + pad), min(height, y + base + pad)


def _text_box(image: np.ndarray, text: str, org: tuple[int, int], scale: float, thick: int,
              dark: tuple[int, int, int, int]) -> None:
    """White text on the darkened box `dark` (x0, y0, x1, y1; see `_box`): readable over any picture."""
    x0, y0, x1, y1 = dark
    if x1 > x0 and y1 > y0:
        region = image[y0:y1, x0:x1]
        np.right_shift(region, 2, out=region)  # region // 4, cheaper
    cv2.putText(image, text, org, FONT, scale, _TEXT, thick, cv2.LINE_AA)


def timecode(frame: int, fps: float) -> str:
    """HH:MM:SS:FF at the nominal integer rate (29.97 counts as 30, non-drop)."""
    nominal = max(1, round(fps))
    seconds, ff = divmod(frame, nominal)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"


BurnItem = tuple[str, tuple[int, int], float, int, TextSize]


@lru_cache(maxsize=256)
def _measure(text: str, scale: float, thick: int) -> TextSize:
    """cv2.getTextSize, remembered: it costs ten times what drawing the text does (OpenCV 5), and a render asks
    for the same label and clip name every frame."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    return (tw, th), base


_DIGIT = re.compile(r"\d")


def _timecode_size(tc: str, scale: float, thick: int) -> TextSize:
    """The size of a timecode measured with every digit a "0": one measurement per render, and a box that keeps
    its place and size from frame to frame (the measured baseline differs between "0" and "1")."""
    return _measure(_DIGIT.sub("0", tc), scale, thick)


def _burn_items(width: int, height: int, tc: str | None, clip: str | None, label: str | None) -> list[BurnItem]:
    """(text, origin, scale, thickness, text size) of each burn-in: timecode bottom centre, clip top left, label
    top right. The size places the text and sizes its box."""
    scale, thick = _scale(height)
    margin = max(4, height // 40)
    items: list[BurnItem] = []
    if tc:
        size = _timecode_size(tc, scale * 1.1, thick)
        items.append((tc, ((width - size[0][0]) // 2, height - margin - 2), scale * 1.1, thick, size))
    if clip:
        shown = clip if len(clip) <= 40 else clip[:39] + "…"
        shown = shown.encode("ascii", "replace").decode()
        size = _measure(shown, scale, thick)
        items.append((shown, (margin, margin + size[0][1]), scale, thick, size))
    if label:
        shown = label.encode("ascii", "replace").decode()
        size = _measure(shown, scale, thick)
        (tw, th), _ = size
        items.append((shown, (width - tw - margin, margin + th), scale, thick, size))
    return items


def burn_in(
    image: np.ndarray, *, tc: str | None = None, clip: str | None = None, label: str | None = None
) -> np.ndarray:
    """Timecode bottom centre, clip name top left, label top right. Draws in place and returns the image."""
    height, width = image.shape[:2]
    for text, org, scale, thick, size in _burn_items(width, height, tc, clip, label):
        _text_box(image, text, org, scale, thick, _box(width, height, org, size))
    return image


def i420_planes(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a (height * 3/2, width) I420 array (even width and height)."""
    flat = image.reshape(-1)
    luma = width * height
    chroma = luma // 4
    return (flat[:luma].reshape(height, width),
            flat[luma: luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma: luma + 2 * chroma].reshape(height // 2, width // 2))


def _join_i420(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One I420 array of three planes (copied into one buffer, no intermediate flat copies)."""
    height, width = y.shape
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    oy, ou, ov = i420_planes(out, width, height)
    oy[:], ou[:], ov[:] = y, u, v
    return out


@lru_cache(maxsize=64)
def _i420_box(width: int, height: int, org: tuple[int, int], size: TextSize,
              ) -> tuple[int, int, int, int, tuple[int, int, int, int], tuple[int, int]] | None:
    """Where a burn-in goes on an I420 frame (a pure function of the text's measured size, so cached): the box
    widened to even pixels (x0, y0, x1, y1), the darkened box and the text origin relative to it; None when the
    box is empty."""
    bx0, by0, bx1, by1 = _box(width, height, org, size)
    x0, y0 = bx0 & ~1, by0 & ~1
    x1, y1 = min(width, (bx1 + 1) & ~1), min(height, (by1 + 1) & ~1)
    if x1 <= x0 or y1 <= y0:
        return None
    dark = (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0)
    return x0, y0, x1, y1, dark, (org[0] - x0, org[1] - y0)


def burn_in_i420(
    image: np.ndarray, width: int, height: int, *, tc: str | None = None, clip: str | None = None,
    label: str | None = None,
) -> np.ndarray:
    """`burn_in` on an I420 frame, in place: each text box (widened to even pixels) goes to BGR, is drawn exactly
    as `burn_in` draws it, and comes back; every pixel outside the boxes stays as decoded."""
    y, u, v = i420_planes(image, width, height)
    for text, org, scale, thick, size in _burn_items(width, height, tc, clip, label):
        where = _i420_box(width, height, org, size)
        if where is None:
            continue
        x0, y0, x1, y1, dark, at = where
        box = (slice(y0, y1), slice(x0, x1))
        half = (slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2))
        crop = _join_i420(y[box], u[half], v[half])
        bgr = cv2.cvtColor(crop, cv2.COLOR_YUV2BGR_I420)
        _text_box(bgr, text, at, scale, thick, dark)
        cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420, dst=crop)
        y[box], u[half], v[half] = i420_planes(crop, x1 - x0, y1 - y0)
    return image


def i420_to_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_YUV2BGR_I420)


def _halvings(src: int, dst: int) -> int:
    """k when src == dst * 2**k with 2 <= k <= 4, else 0. A single halving is OpenCV's vector path already (and
    rounds ties up, not to even); past 4, 16-bit sums of 4**k pixels could overflow."""
    for k in range(2, 5):
        if src == dst << k:
            return k
    return 0


class _Shrink:
    """INTER_AREA by 2**k of the three planes of an I420 frame, bit-identical to cv2.resize(..., INTER_AREA) and
    cheaper: OpenCV has a vector path only for halving, so the frame is halved k >= 2 times on 16 bits. Each
    value is first multiplied by 4**k, so every halving's mean of four is exact (no rounding) and the last level
    holds the sums of 4**k pixels (<= 65280: no overflow); the last step rounds sum / 4**k as INTER_AREA rounds
    it (to nearest, ties to even)."""

    def __init__(self, width: int, height: int, k: int) -> None:
        self.k = k
        self.levels = [(width >> i, height >> i) for i in range(k + 1)]
        self.wide = [np.empty((h * 3 // 2, w), dtype=np.uint16) for w, h in self.levels]
        self.planes = [i420_planes(buffer, w, h) for buffer, (w, h) in zip(self.wide, self.levels, strict=True)]
        self.small = np.empty((self.levels[-1][1] * 3 // 2, self.levels[-1][0]), dtype=np.uint8)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        np.multiply(image, 1 << (2 * self.k), out=self.wide[0], dtype=np.uint16)
        for i in range(self.k):
            for src, dst in zip(self.planes[i], self.planes[i + 1], strict=True):
                cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=cv2.INTER_AREA)
        cv2.convertScaleAbs(self.wide[-1], dst=self.small, alpha=1.0 / (1 << (2 * self.k)))
        return cv2.cvtColor(self.small, cv2.COLOR_YUV2BGR_I420)


class Thumbnailer:
    """Small BGR pictures of (width, height) I420 frames: each plane area-averaged down to `size`, then converted
    (cheap: the colour conversion runs at thumbnail size). Keeps its working buffers between calls (about 1 MB
    at 640x360), so make one per render and use it from one thread; they go with it."""

    def __init__(self, width: int, height: int, size: tuple[int, int]) -> None:
        self.width, self.height, self.size = width, height, size
        tw, th = size
        k = _halvings(width, tw) if tw % 2 == 0 and th % 2 == 0 else 0
        self._shrink = _Shrink(width, height, k) if k and _halvings(height, th) == k else None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self._shrink is not None:
            return self._shrink(image)
        tw, th = self.size
        if tw % 2 or th % 2:
            return cv2.resize(i420_to_bgr(image), self.size, interpolation=cv2.INTER_AREA)
        y, u, v = i420_planes(image, self.width, self.height)
        small = _join_i420(cv2.resize(y, (tw, th), interpolation=cv2.INTER_AREA),
                           cv2.resize(u, (tw // 2, th // 2), interpolation=cv2.INTER_AREA),
                           cv2.resize(v, (tw // 2, th // 2), interpolation=cv2.INTER_AREA))
        return cv2.cvtColor(small, cv2.COLOR_YUV2BGR_I420)


@lru_cache(maxsize=32)
def _slate(name: str, width: int, height: int) -> np.ndarray:
    image = np.full((height, width, 3), (40, 30, 70), dtype=np.uint8)  # dark red: unmistakably not picture
    scale, thick = _scale(height)
    big = scale * 2.0
    title = "MEDIA OFFLINE"
    (tw, th), _ = cv2.getTextSize(title, FONT, big, thick * 2)
    if tw > width * 0.9:
        big *= width * 0.9 / tw
        (tw, th), _ = cv2.getTextSize(title, FONT, big, thick * 2)
    cv2.putText(image, title, ((width - tw) // 2, height // 2), FONT, big, _TEXT, thick * 2, cv2.LINE_AA)
    shown = name if len(name) <= 48 else name[:47] + "~"
    shown = shown.encode("ascii", "replace").decode()
    (nw, nh), _ = cv2.getTextSize(shown, FONT, scale, thick)
    cv2.putText(image, shown, (max(2, (width - nw) // 2), height // 2 + th + nh), FONT, scale, _TEXT, thick,
                cv2.LINE_AA)
    image.setflags(write=False)
    return image


def slate(name: str, width: int, height: int) -> np.ndarray:
    """The offline slate for a clip (cached, read-only: callers copy before drawing on it)."""
    return _slate(name, width, height)
