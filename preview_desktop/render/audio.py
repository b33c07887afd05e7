"""The timeline's audio mixed to stereo 48 kHz, produced in step with the pictures (bounded memory).

Each layer reads its own file forward; speed changes resample (pitch follows speed, as a preview's varispeed);
dissolves ramp the gain with the same cross-fade as the picture; gaps and offline media are silent.

Placement: a layer's audio is heard over exactly its record span (cuts stay on frame edges), but its content is
placed on the AAC frame grid: output sample r plays source position (r − anchor) × speed, where the anchor is
the layer's exact offset rounded to a multiple of `AAC_FRAME` samples (at most ±512 samples, 10.7 ms, from
the exact position: a quarter of a 25 fps frame). So the samples under any AAC frame of a clip are the same
wherever the clip sits on the record timeline, and its encoded packets can be reused after a ripple
(segments.plan_audio_chunks). Without this, every ripple by a length that is not a multiple of 1024 samples
changes every AAC frame after the edit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .audio_reader import AudioReader
from .codec import AUDIO_RATE, Unreadable
from .plan import Layer

ProblemFn = Callable[[Layer, str], None]
AAC_FRAME = 1024  # samples per AAC-LC frame: the grid every layer's audio content is placed on


def audio_anchor(layer: Layer, fps: float) -> int:
    """The output sample where the layer's source position 0 would play, rounded to the AAC frame grid:
    sample r of the output plays source position (r − anchor) × speed (48 kHz source samples)."""
    exact = layer.rec_in * AUDIO_RATE / fps - layer.src_in * AUDIO_RATE / layer.speed
    return AAC_FRAME * round(exact / AAC_FRAME)


def _envelope(layer: Layer, frames: np.ndarray) -> np.ndarray:
    """Per-sample gain from the layer's dissolves; `frames` are fractional output frames."""
    gain = np.ones(frames.shape, dtype=np.float32)
    if layer.fade_in:
        start, end = layer.fade_in
        gain = np.minimum(gain, np.clip((frames - start) / max(1, end - start), 0.0, 1.0))
    if layer.fade_out:
        start, end = layer.fade_out
        gain = np.minimum(gain, np.clip(1.0 - (frames - start) / max(1, end - start), 0.0, 1.0))
    return gain.astype(np.float32)


class Mixer:
    """Mixes `layers` on demand: `render(start, count)` gives samples [start, start+count) of the timeline."""

    def __init__(self, layers: list[Layer], fps: float, problem: ProblemFn) -> None:
        self.fps = fps
        self.layers = sorted(layers, key=lambda layer: layer.first)
        self.anchors = [audio_anchor(layer, fps) if layer.speed else 0 for layer in self.layers]
        self.problem = problem
        self.readers: dict[int, AudioReader] = {}
        self.dead: set[int] = set()
        self._next = 0  # index of the first layer not yet finished

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()

    def _span(self, layer: Layer) -> tuple[int, int]:
        return (round(layer.first * AUDIO_RATE / self.fps), round(layer.last * AUDIO_RATE / self.fps))

    def _reader(self, key: int, layer: Layer) -> AudioReader | None:
        if key in self.dead:
            return None
        reader = self.readers.get(key)
        if reader is None:
            assert layer.source.path is not None
            try:
                reader = AudioReader(layer.source.path, layer.source.start_time)
            except Unreadable as exc:
                self.dead.add(key)
                self.problem(layer, str(exc))
                return None
            self.readers[key] = reader
        return reader

    def render(self, start: int, count: int) -> np.ndarray:
        mix = np.zeros((2, count), dtype=np.float32)
        stop = start + count
        for key in range(self._next, len(self.layers)):
            layer = self.layers[key]
            first, last = self._span(layer)
            if first >= stop:
                break
            if last <= start:
                if key == self._next:
                    self._next += 1
                reader = self.readers.pop(key, None)
                if reader is not None:
                    reader.close()
                continue
            a, b = max(start, first), min(stop, last)
            if layer.speed == 0:
                continue
            reader = self._reader(key, layer)
            if reader is None:
                continue
            samples = self._layer_samples(reader, layer, self.anchors[key], a, b)
            if layer.fade_in or layer.fade_out:
                frames = np.arange(a, b, dtype=np.float64) * (self.fps / AUDIO_RATE)
                samples *= _envelope(layer, frames)
            mix[:, a - start: b - start] += samples  # no dissolve: a gain of 1 would leave every sample as it is
        np.clip(mix, -1.0, 1.0, out=mix)
        return mix

    def _layer_samples(self, reader: AudioReader, layer: Layer, anchor: int, a: int, b: int) -> np.ndarray:
        """Output samples [a, b) of one layer: source positions (r − anchor) × speed, a function of the
        position relative to the anchor only (so the same clip gives the same samples wherever it sits)."""
        if abs(layer.speed - 1.0) < 1e-6:
            return self._read(reader, a - anchor, b - a)
        x = np.arange(a - anchor, b - anchor, dtype=np.float64) * layer.speed
        base = int(np.floor(x[0]))
        span = int(np.ceil(x[-1])) - base + 2
        raw = self._read(reader, base, span)
        xp = np.arange(span, dtype=np.float64)
        x -= base
        return np.stack([np.interp(x, xp, raw[0]), np.interp(x, xp, raw[1])]).astype(np.float32)

    def _read(self, reader: AudioReader, position: int, count: int) -> np.ndarray:
        if position < 0:  # a dissolve handle before the media's first sample
            head = min(count, -position)
            return np.concatenate([np.zeros((2, head), np.float32), reader.read(0, count - head)], axis=1)
        return reader.read(position, count)
