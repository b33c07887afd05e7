"""The files beside the video: poster, thumbnail sprite + WebVTT, and preview.json (DESIGN.md's shape).

The Collector sees every composed frame (before burn-ins) but only copies the few it keeps, so it costs
nothing measurable in the frame loop.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..core.job import iso
from ..errors import RenderError
from .plan import Plan

if TYPE_CHECKING:
    from .compose import Thumbnailer

THUMB_WIDTH = 160
MAX_THUMBS = 100
SPRITE_COLUMNS = 10
THUMB_STEP = 2  # a 160 px thumbnail sampled every 2nd pixel: as many samples as a 640 px frame every 8th


class Collector:
    """Keeps thumbnail frames and the best poster candidate while the video is rendered."""

    def __init__(self, frames: int, fps: float, width: int, height: int) -> None:
        self.frames = frames
        self.fps = fps
        self.width, self.height = width, height
        seconds = frames / fps
        self.interval = max(1, round(fps * max(1.0, seconds / MAX_THUMBS)))
        self.count = max(1, math.ceil(frames / self.interval))
        self.thumb_w = min(THUMB_WIDTH, width)
        self.thumb_h = max(2, round(self.thumb_w * height / width / 2) * 2)
        self.thumbs: list[np.ndarray | None] = [None] * self.count
        self.target = frames // 3  # a third in: past the opening titles, before the end credits
        self.poster: np.ndarray | None = None
        self._poster_distance = math.inf
        self._poster_good = False
        self.fallback: np.ndarray | None = None  # first frame, when the timeline has no picture at all
        self._thumbnailer: Thumbnailer | None = None  # its buffers live as long as this render's collector

    def offer(self, index: int, image: np.ndarray, has_picture: bool, *, i420: bool = False) -> None:
        """Look at a clean output frame: BGR, or I420 (height * 3/2, width) with `i420`."""
        small = None
        if index % self.interval == 0:
            small = self.thumbs[index // self.interval] = self.thumbnail(image, i420)
        if self.fallback is None:
            self.fallback = self._bgr(image, i420)
        if not has_picture:
            return
        sampled = index % self.interval == 0 or index == self.target
        if not sampled and self._poster_good:
            return
        distance = abs(index - self.target)
        good = self.good(image, i420, small)
        if (good and (not self._poster_good or distance < self._poster_distance)) or (
            not self._poster_good and self.poster is None
        ):
            self.poster = self._bgr(image, i420)
            self._poster_distance = distance
            self._poster_good = good

    def _bgr(self, image: np.ndarray, i420: bool) -> np.ndarray:
        from . import compose

        return compose.i420_to_bgr(image) if i420 else image.copy()

    def thumbnail(self, image: np.ndarray, i420: bool) -> np.ndarray:
        import cv2

        size = (self.thumb_w, self.thumb_h)
        if i420:
            if self._thumbnailer is None:
                from .compose import Thumbnailer

                self._thumbnailer = Thumbnailer(self.width, self.height, size)
            return self._thumbnailer(image)
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def good(self, image: np.ndarray, i420: bool, thumbnail: np.ndarray | None = None) -> bool:
        """A frame worth a poster (see looks_like_picture); an I420 frame is judged on its thumbnail."""
        if not i420:
            return looks_like_picture(image)
        small = thumbnail if thumbnail is not None else self.thumbnail(image, True)
        return looks_like_picture(small, step=THUMB_STEP)

    def write(self, folder: Path) -> dict[str, Any]:
        poster = self.poster if self.poster is not None else self.fallback
        if poster is not None:
            _write_jpeg(folder / "poster.jpg", poster, 88)
        columns = min(SPRITE_COLUMNS, self.count)
        rows = math.ceil(self.count / columns)
        sprite = np.zeros((rows * self.thumb_h, columns * self.thumb_w, 3), dtype=np.uint8)
        lines = ["WEBVTT", ""]
        for k, thumb in enumerate(self.thumbs):
            x, y = (k % columns) * self.thumb_w, (k // columns) * self.thumb_h
            if thumb is not None:
                sprite[y: y + self.thumb_h, x: x + self.thumb_w] = thumb
            start = k * self.interval / self.fps
            end = min(self.frames, (k + 1) * self.interval) / self.fps
            lines += [f"{_vtt_time(start)} --> {_vtt_time(end)}",
                      f"thumbs.jpg#xywh={x},{y},{self.thumb_w},{self.thumb_h}", ""]
        _write_jpeg(folder / "thumbs.jpg", sprite, 80)
        (folder / "thumbs.vtt").write_text("\n".join(lines), encoding="utf-8")
        return {"sprite": "thumbs.jpg", "vtt": "thumbs.vtt", "count": self.count}


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Encode in memory, write with Python: cv2.imwrite only returns False on a full disk; this raises OSError."""
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RenderError(f"could not encode {path.name}")
    path.write_bytes(data.tobytes())


def looks_like_picture(image: np.ndarray, step: int = 8) -> bool:
    """Not (near) black and not flat: a poster worth showing (judged on every `step`-th pixel each way).

    Mean > 12 and standard deviation > 4 over every value of the sample, decided on exact integer sums (the sum
    and the sum of squares: two vectorised OpenCV norms instead of numpy's mean + std). The same decision as the
    float formula `mean() > 12 and std() > 4`, except for a sample whose variance is exactly 16, which the float
    formula could put on either side of 4. (Not cv2.sumElems: its first call costs the process 2 MB of RSS.)"""
    import cv2

    small = _sample(image, step)
    count = small.size
    total = round(cv2.norm(small, cv2.NORM_L1))  # uint8: the plain sum
    squares = round(cv2.norm(small, cv2.NORM_L2SQR))
    return total > 12 * count and count * squares - total * total > 16 * count * count


def _sample(image: np.ndarray, step: int) -> np.ndarray:
    """image[::step, ::step] as a contiguous array. A power-of-two step that divides the size is a nearest-
    neighbour resize (OpenCV picks pixel floor(i * step), exact for such steps): far cheaper than numpy's copy
    of a strided 3-channel view."""
    import cv2

    height, width = image.shape[:2]
    if step > 1 and step & (step - 1) == 0 and height % step == 0 and width % step == 0 and image.ndim == 3:
        return cv2.resize(image, (width // step, height // step), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(image[::step, ::step])


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def preview_document(
    *,
    job_id: str,
    project_id: str,
    created_at: float | None,
    started_at: float,
    plan: Plan,
    timeline: dict[str, Any],
    dry_run: bool,
    video: dict[str, Any] | None = None,
    thumbnails: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """preview.json exactly as DESIGN.md (a dry run adds `plan` and has no video, poster or thumbnails)."""
    finished = time.time()
    document: dict[str, Any] = {
        "jobId": job_id,
        "projectId": project_id,
        "status": "succeeded",
        "createdAt": iso(created_at if created_at is not None else started_at),
        "startedAt": iso(started_at),
        "finishedAt": iso(finished),
        "renderSeconds": round(finished - started_at, 3),
        "dryRun": dry_run,
        "timeline": timeline,
        "video": video,
        "poster": None if dry_run else "poster.jpg",
        "thumbnails": thumbnails,
        "warnings": list(plan.warnings),
        "renderer": {"name": "preview-desktop", "version": __version__},
    }
    if dry_run:
        document["plan"] = plan.describe()
    return document


