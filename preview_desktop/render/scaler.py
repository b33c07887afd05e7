"""Decoded frames → the preview's small picture, through a libavfilter `scale` graph (as the ffmpeg CLI scales).

Measured on 1080p H.264 → 640×360 I420, area scaling, process CPU per frame (`docs/rendering.md`): a one-thread
`scale` filter graph 1.1–1.2 ms, PyAV's `VideoFrame.reformat` 3.1 ms (it spreads one small job over threads),
OpenCV's INTER_AREA per plane 2.9 ms. The graph is rebuilt when the decoder's frames change size or pixel format
mid-stream (a buffer source cannot follow such a change).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

FORMATS = {"i420": "yuv420p", "bgr": "bgr24"}


class Scaler:
    """One output size and format (`"i420"` or `"bgr"`); `scale(frame)` returns it as a numpy array:
    I420 as (height * 3/2, width), BGR as (height, width, 3)."""

    def __init__(self, size: tuple[int, int], convert: str) -> None:
        self.size = size
        self.pix_fmt = FORMATS[convert]
        self._graph: Any = None
        self._source: Any = None
        self._sink: Any = None
        self._shape: tuple[int, int, str] | None = None

    def _build(self, frame: Any) -> None:
        width, height = self.size
        graph = av.filter.Graph()
        graph.threads = 1  # the render's other stages keep the second core busy: threads here only add overhead
        source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                  time_base=frame.time_base or Fraction(1, 90000))
        scale = graph.add("scale", f"{width}:{height}:flags=area")
        convert = graph.add("format", self.pix_fmt)
        sink = graph.add("buffersink")
        source.link_to(scale)
        scale.link_to(convert)
        convert.link_to(sink)
        graph.configure()
        self._graph, self._source, self._sink = graph, source, sink
        self._shape = (frame.width, frame.height, frame.format.name)

    def scale(self, frame: Any) -> np.ndarray:
        if self._shape != (frame.width, frame.height, frame.format.name):
            self._build(frame)
        self._source.push(frame)
        out: np.ndarray = self._sink.pull().to_ndarray()
        return out
