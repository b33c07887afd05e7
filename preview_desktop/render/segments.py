"""Where the incremental renderer cuts the plan, and the cache key of every piece.

Video: the plan is cut wherever the set of layers changes (clip and dissolve edges), and each clip again every
GOP (2 s) counted from its own record in, so trimming a clip's tail or moving a dissolve at its head only
changes the pieces touched. A segment's key holds everything its pixels depend on — and nothing absolute in
time unless the record-timecode burn-in is on — so after a ripple edit the untouched segments keep their keys.

Audio: AAC frames are 1024 samples on a grid anchored at the start of the stream, and every clip's audio content
sits on that grid wherever the clip is (audio.audio_anchor). Inside a clip (one layer alone, at full gain) audio
is cut into chunks on a grid of `AUDIO_CHUNK` samples counted in the clip's *source*, keyed by the source's
identity and the source position — not by the place on the record timeline — so after a ripple they are reused.
Around cuts, dissolves, gaps and overlapping tracks short bridge chunks are keyed by everything that reaches their
encode window, relative to it (the chunk plus pre-roll and post-roll, see audio_cache.py). Keys are sha256 hex
digests of canonical JSON.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.spec import JobSpec
from .audio import AAC_FRAME, audio_anchor
from .codec import AUDIO_BIT_RATE, AUDIO_RATE, ENCODE_THREADS, SKIP_DEBLOCK_AT, VIDEO_CRF, gop_frames
from .files import json_digest
from .plan import Layer, Plan, Source

FORMAT = 2  # bump when the segment/chunk layout or anything keyed implicitly changes
AUDIO_FORMAT = 2  # the same for audio chunks alone (2: audio placed on the AAC grid, chunks keyed by source)
AUDIO_CHUNK = 60 * AAC_FRAME  # 1.28 s inside a clip: the granularity of reuse after a slip or trim
AUDIO_EDGE = 8 * AAC_FRAME  # a clip's inner chunks start and end on this grid from its anchor (see _clean_pieces)
AUDIO_PREROLL = 2 * AAC_FRAME  # warms the encoder up on the audio before the chunk
AUDIO_POSTROLL = 2 * AAC_FRAME  # lets the chunk's last frames see the audio after it (MDCT overlap)


@dataclass(frozen=True)
class Segment:
    """Output frames [start, stop), rendered and cached as one MP4 keyed by `key`."""

    start: int
    stop: int
    key: str

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class AudioChunk:
    """Samples [start, stop) of the output audio, encoded from the window [window_start, window_stop)."""

    start: int
    stop: int
    window_start: int
    window_stop: int
    key: str


def _library_versions() -> dict[str, Any]:
    """The codec libraries' versions: a new libx264/FFmpeg may produce different bytes (and avcC)."""
    import av

    return {"av": av.__version__, "libs": {k: list(v) for k, v in sorted(av.library_versions.items())}}


SAMPLE_EDGE = 1 << 20  # bytes hashed at each end of a media file
SAMPLE_BLOCK = 64 << 10  # bytes hashed at each of the evenly spaced points between
SAMPLE_POINTS = 16
FRAME_BLOCK = 64 << 10  # image-sequence frames: bytes hashed at the start, middle and end of each file
_DIGESTS: dict[tuple[Any, ...], str | None] = {}  # (path, size, mtime_ns, inode) → content digest, per process
_DIGESTS_MAX = 50_000


class Identities:
    """Source identity computed once per plan: what a file holds, not where this node sees it.

    A segment key must be the same on every farm node (docs/incremental.md), but one file is `Z:\\media\\a.mov`
    on Windows and `/mnt/media/a.mov` on Linux, and SMB/NFS clients disagree on mtimes (rounded to 1 or 2 s,
    shifted by time zones on FAT-formatted shares). So the identity of a file is its size plus a sha256 of
    samples of its content (`content_digest`); neither the path nor the mtime takes part. A changed file changes
    its keys; a file copied, moved or seen through another mount keeps them.
    """

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def of(self, source: Source) -> Any:
        if source.kind in ("black", "offline"):
            # what a slate shows is the clip name (in the segment key already) and nothing of the path
            return [source.kind, source.reason]
        key = f"{source.kind}:{source.path}:{source.pattern}:{source.start_frame}:{source.end_frame}"
        if key not in self._cache:
            self._cache[key] = self._compute(source)
        return self._cache[key]

    def _compute(self, source: Source) -> Any:
        if source.kind == "sequence" and source.pattern:
            frames = hashlib.sha256()
            for number in range(source.start_frame, source.end_frame + 1):
                frames.update(repr(content_digest(Path(source.pattern % number), FRAME_BLOCK, 1)).encode())
            return ["sequence", source.start_frame, source.end_frame, source.rate, frames.hexdigest()]
        return [source.kind, content_digest(source.path) if source.path else None,
                source.start_time, source.width, source.height]


def content_digest(path: Path, edge: int = SAMPLE_EDGE, points: int = SAMPLE_POINTS) -> str | None:
    """sha256 of the size, the first and last `edge` bytes and `points` evenly spaced blocks between them;
    None when the file cannot be read (offline media renders a slate, keyed as such).

    Sampling keeps this cheap on network shares (≈ 3 MiB read per movie, whatever its length) while a
    re-export of the same length, which usually differs in its header, index or anywhere in between, still
    changes it. Remembered per process under (path, size, mtime_ns, inode), so a node reads each file once.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    memo = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, edge, points)
    if memo in _DIGESTS:
        return _DIGESTS[memo]
    digest = hashlib.sha256(str(st.st_size).encode() + b"\0")
    try:
        with open(path, "rb") as handle:
            if st.st_size <= 2 * edge + points * SAMPLE_BLOCK:
                while block := handle.read(1 << 20):
                    digest.update(block)
            else:
                digest.update(handle.read(edge))
                step = (st.st_size - 2 * edge) // (points + 1)
                for point in range(1, points + 1):
                    handle.seek(edge + point * step)
                    digest.update(handle.read(SAMPLE_BLOCK))
                handle.seek(st.st_size - edge)
                digest.update(handle.read(edge))
    except OSError:
        return None
    if len(_DIGESTS) >= _DIGESTS_MAX:
        _DIGESTS.clear()
    _DIGESTS[memo] = value = digest.hexdigest()
    return value


def encoder_settings(plan: Plan, spec: JobSpec) -> dict[str, Any]:
    """Everything about the encode that every segment shares."""
    return {
        "format": FORMAT,
        "renderer": __version__,
        **_library_versions(),
        "width": plan.width,
        "height": plan.height,
        "rate": str(plan.rate),
        "preset": spec.output.preset,
        "crf": VIDEO_CRF,
        "gop": gop_frames(plan.rate),
        "threads": ENCODE_THREADS,
        "skipDeblockAt": SKIP_DEBLOCK_AT,  # decoded pixels differ slightly without the loop filter
        "pixels": "i420",  # a full-frame video goes swscale → I420 → x264 with no BGR round trip (pipeline.Frame)
        "scaler": "filter-graph",  # render/scaler.py: the ffmpeg CLI's chroma, not VideoFrame.reformat's
        "timecodeBox": "zeros",  # compose._timecode_size: measured once, so the box keeps its place
        "strict": spec.output.strict,
    }


def cut_points(plan: Plan) -> list[int]:
    """Frames where the set of layers changes, every GOP counted from each clip's record in, and the two ends.

    Counting from the clip's own cut (not from the previous cut point) keeps a clip's pieces the same when a
    dissolve at its head moves or the clip before it is trimmed: only the pieces that changed change.
    """
    gop = gop_frames(plan.rate)
    points = {0, plan.frames}
    for layer in plan.video:
        points.update((layer.first, layer.last, layer.rec_in, layer.rec_out))
        points.update(range(layer.rec_in + gop, layer.rec_out, gop))
    return sorted(p for p in points if 0 <= p <= plan.frames)


def plan_segments(plan: Plan, spec: JobSpec, identities: Identities | None = None) -> list[Segment]:
    """The plan cut into segments of at most one GOP, each with its key."""
    identities = identities or Identities()
    shared = encoder_settings(plan, spec)
    gop = gop_frames(plan.rate)
    layers = sorted(plan.video, key=lambda layer: layer.first)
    segments: list[Segment] = []
    for run_start, run_stop in itertools.pairwise(cut_points(plan)):
        for start in range(run_start, run_stop, gop):  # long gaps and overlaps: one GOP at a time
            stop = min(run_stop, start + gop)
            key = _segment_key(plan, spec, shared, identities, layers, start, stop)
            segments.append(Segment(start, stop, key))
    return segments


def _segment_key(plan: Plan, spec: JobSpec, shared: dict[str, Any], identities: Identities,
                 layers: list[Layer], start: int, stop: int) -> str:
    burn = spec.output.burnIn
    parts = []
    for layer in layers:
        if layer.last <= start or layer.first >= stop:
            continue
        parts.append({
            "source": identities.of(layer.source),
            "name": layer.name,  # shown by the clip-name burn-in and on offline slates
            "track": layer.track,
            # source time at frame f is src_in + (f - rec_in) / fps * speed: the same floats after a ripple
            "time": [repr(layer.src_in), start - layer.rec_in, repr(layer.speed), repr(plan.fps)],
            "opacity": [round(layer.opacity(f), 9) for f in range(start, stop)],
        })
    data = {
        **shared,
        "frames": stop - start,
        "layers": parts,
        "label": burn.label or None,
        "clipName": burn.clipName,
        # the record timecode makes the pixels depend on where the segment sits in the timeline
        "timecode": plan.start_frame + start if burn.timecode else None,
    }
    return "v" + json_digest(data)


def total_samples(plan: Plan) -> int:
    """The audio length the single-pass renderer writes for `plan.frames` frames."""
    return round(plan.frames * AUDIO_RATE / plan.fps)


def plan_audio_chunks(plan: Plan, spec: JobSpec, identities: Identities | None = None) -> list[AudioChunk]:
    """The output audio cut into AAC-aligned chunks that partition [0, total), each keyed by what it encodes.

    Inside each clip's clean run (the layer alone, at full gain, far enough from its ends for the encode
    window) chunk edges fall every `AUDIO_CHUNK` samples counted from the layer's anchor, i.e. at fixed source
    positions; everything else (cuts, dissolves, gaps, overlapping tracks, the stream's two ends) is covered by
    bridge chunks of at most `AUDIO_CHUNK` samples."""
    identities = identities or Identities()
    total = total_samples(plan)
    shared = {
        "format": FORMAT, "audioFormat": AUDIO_FORMAT, "renderer": __version__, **_library_versions(), "codec": "aac",
        "bitRate": AUDIO_BIT_RATE, "rate": AUDIO_RATE, "strict": spec.output.strict, "fps": repr(plan.fps),
    }
    layers = [_AudioLayer.of(layer, plan.fps) for layer in plan.audio if layer.speed > 0]
    inner = sorted(piece for layer in layers for piece in _clean_pieces(layer, layers, total))
    edges: list[tuple[int, int]] = []
    cursor = 0
    for start, stop in [*inner, (total, total)]:
        for bridge in range(cursor, start, AUDIO_CHUNK):  # bridges: the stretch before each inner piece
            edges.append((bridge, min(start, bridge + AUDIO_CHUNK)))
        if start < stop:
            edges.append((start, stop))
        cursor = stop
    chunks = []
    for start, stop in edges:
        window_start = 0 if start == 0 else start - AUDIO_PREROLL
        window_stop = total if stop + AUDIO_POSTROLL >= total else stop + AUDIO_POSTROLL
        parts = [layer.key(identities, window_start, window_stop, plan.fps) for layer in layers
                 if layer.last > window_start and layer.first < window_stop]
        data = {**shared, "length": stop - start, "window": [window_start - start, window_stop - start],
                "first": start == 0, "last": stop == total, "layers": parts}
        chunks.append(AudioChunk(start, stop, window_start, window_stop, "a" + json_digest(data)))
    return chunks


@dataclass(frozen=True)
class _AudioLayer:
    """One layer's audio in output samples: heard over [first, last), at full gain over [full_a, full_b)."""

    layer: Layer
    first: int
    last: int
    full_a: int
    full_b: int
    anchor: int

    @classmethod
    def of(cls, layer: Layer, fps: float) -> _AudioLayer:
        first, last = round(layer.first * AUDIO_RATE / fps), round(layer.last * AUDIO_RATE / fps)
        full_a, full_b = first, last
        if layer.fade_in:  # the gain reaches 1 at the fade's end frame (audio._envelope)
            full_a = max(full_a, math.ceil(layer.fade_in[1] * AUDIO_RATE / fps))
        if layer.fade_out:  # and leaves 1 after its start frame
            full_b = min(full_b, math.floor(layer.fade_out[0] * AUDIO_RATE / fps))
        return cls(layer, first, last, full_a, full_b, audio_anchor(layer, fps))

    def key(self, identities: Identities, window_start: int, window_stop: int, fps: float) -> dict[str, Any]:
        """What this layer puts into the window, relative to the window: the same wherever the window is."""
        layer = self.layer
        part: dict[str, Any] = {
            "source": identities.of(layer.source),
            "name": layer.name,  # named in the warning when its audio is unreadable
            "speed": repr(layer.speed),
            "position": window_start - self.anchor,  # × speed = the source position at the window's start
            "span": [max(self.first, window_start) - window_start, min(self.last, window_stop) - window_start],
        }
        for name, fade in (("fadeIn", layer.fade_in), ("fadeOut", layer.fade_out)):
            if fade and self._reaches(fade, window_start, window_stop, fps):
                part[name] = [repr(window_start * fps / AUDIO_RATE - fade[0]), fade[1] - fade[0]]
        return part

    @staticmethod
    def _reaches(fade: tuple[int, int], window_start: int, window_stop: int, fps: float) -> bool:
        return fade[0] * AUDIO_RATE / fps < window_stop and fade[1] * AUDIO_RATE / fps > window_start


def _clean_pieces(layer: _AudioLayer, layers: list[_AudioLayer], total: int) -> list[tuple[int, int]]:
    """Chunks [start, stop) inside the stretches where only `layer` sounds, at full gain, whose encode windows
    stay inside those stretches; edges every `AUDIO_CHUNK` samples from the layer's anchor."""
    runs = [(layer.full_a, min(layer.full_b, total))]
    for other in layers:  # overlapping tracks and dissolve handles: not clean
        if other is layer:
            continue
        runs = [piece for a, b in runs for piece in ((a, min(b, other.first)), (max(a, other.last), b))
                if piece[0] < piece[1]]
    pieces: list[tuple[int, int]] = []
    anchor = layer.anchor
    for a, b in runs:
        # a coarser grid than the AAC frame for the run's ends: after a ripple by a length that is not a multiple
        # of 1024 samples, the cut moves against the clip's grid by a fraction of a frame; ending the bridge on
        # a grid point it rarely crosses keeps the clip's first and last pieces (and their keys) unchanged
        low = anchor + AUDIO_EDGE * -((anchor - a - AUDIO_PREROLL) // AUDIO_EDGE)  # ceil to the edge grid
        high = anchor + AUDIO_EDGE * ((b - AUDIO_POSTROLL - anchor) // AUDIO_EDGE)
        if high - low < AUDIO_EDGE:
            continue
        cuts = list(range(anchor + AUDIO_CHUNK * -((anchor - low) // AUDIO_CHUNK), high, AUDIO_CHUNK))
        edges = [low, *(c for c in cuts if c > low), high]
        pieces.extend(itertools.pairwise(edges))
    return pieces
