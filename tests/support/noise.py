"""A source clip that compresses badly (coarse random noise), so its preview is large enough to fill a small disk."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def make_noise_clip(path: Path, seconds: float = 4.0, fps: int = 25, size: tuple[int, int] = (640, 360)) -> Path:
    """An H.264 MP4 of 4x4-pixel random blocks (no audio). At 640x360 its preview is ~1 MB a second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), "w", format="mp4")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "30"}
    rng = np.random.default_rng(1)
    small = (size[1] // 4, size[0] // 4, 3)
    for index in range(round(seconds * fps)):
        image = np.repeat(np.repeat(rng.integers(0, 255, small, dtype=np.uint8), 4, 0), 4, 1)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return path
