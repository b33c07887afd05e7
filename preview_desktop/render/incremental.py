"""The incremental render: reuse every cached segment and AAC chunk whose inputs are unchanged, render the
rest, join them into preview.mp4 without re-encoding, and make the poster and thumbnails.

Each newly rendered segment is encoded into a temporary MP4 inside the output folder, indexed in the store only
once complete (a cancel or failure leaves nothing behind), and joined from that temporary file; each reused one
is hard-linked (or copied) there at lookup. So a store too small to keep them, or another process evicting them,
cannot break this render, and a long preview holds no open file per segment.

Thumbnails and the poster are taken before burn-ins, as in the single-pass renderer: each segment keeps a small
JPEG of every frame (the sprite needs frames at whole seconds, which move after a ripple) and per-frame flags
(real picture? good poster?). The poster frame is picked by the same rule as `artifacts.Collector`, then its
full-size picture comes from the store (PNG, keyed by segment and offset) or is composed again from the sources
(one frame, on a thread beside the join).
"""

from __future__ import annotations

import bisect
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import av
import cv2
import numpy as np

from ..core.spec import JobSpec
from ..errors import RenderError
from .artifacts import Collector
from .audio_cache import render_audio
from .codec import Encoder
from .concat import Part, assemble
from .pipeline import Composer, burn, encode_frame, pipelined
from .plan import Plan
from .segment_cache import AudioPacket, SegmentMeta, Store
from .segments import Identities, Segment, plan_segments
from .stages import Background

CheckFn = Callable[[], None]
ProgressFn = Callable[[int, int], None]
THUMB_QUALITY = 90


class IncrementalRender:
    """One render through the segment store; `run()` writes preview.mp4, poster.jpg, thumbs.jpg/.vtt."""

    def __init__(self, plan: Plan, spec: JobSpec, out_dir: Path, store: Store, *,
                 check: CheckFn, progress: ProgressFn, threads: int | None = None) -> None:
        self.plan = plan
        self.spec = spec
        self.out_dir = out_dir
        self.store = store
        self.check = check
        self.progress = progress
        self.threads = threads  # PREVIEW_RENDER_THREADS: caps decoder threads (the encoder's are pinned)
        self.pipelined = pipelined(threads)
        self.collector = Collector(plan.frames, plan.fps, plan.width, plan.height)
        self.identities = Identities()
        self.composer: Composer | None = None
        self.target_image: np.ndarray | None = None  # the clean frame one third in, when rendered here
        self.done = 0
        self.counts = {"segmentsReused": 0, "segmentsRendered": 0, "audioChunksReused": 0,
                       "audioChunksRendered": 0}

    def run(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(thumbnails entry of preview.json, facts: frames, cache counts)."""
        segments = plan_segments(self.plan, self.spec, self.identities)
        work = self.out_dir / ".segments"
        work.mkdir()
        poster: Background[np.ndarray] | None = None
        try:
            sound = self._start_audio()
            try:
                parts, metas = self._video(segments, work)
            except BaseException:
                if sound is not None:
                    sound.cancel()
                raise
            finally:
                self._close_composer()  # the decoders' frame pools go before the join (peak memory)
            poster = self._start_poster(segments, metas)
            audio = None
            if sound is not None:
                audio, counts = sound.result()
                self.counts["audioChunksReused"] = counts["reused"]
                self.counts["audioChunksRendered"] = counts["rendered"]
            self.check()
            frames = assemble(self.out_dir / "preview.mp4", parts, audio, rate=self.plan.rate, check=self.check)
            if frames != self.plan.frames:
                raise RenderError(f"joined video has {frames} frames, the plan {self.plan.frames}")
            thumbnails = self._artifacts(segments, metas, poster.result())
        finally:
            if poster is not None:
                poster.cancel()  # done already, or a failure came first
            self._close_composer()
            shutil.rmtree(work, ignore_errors=True)
            self.store.cull()
        return thumbnails, {"frames": frames, "cache": dict(self.counts)}

    def _close_composer(self) -> None:
        if self.composer is not None:
            self.composer.close()
            self.composer = None

    def _start_audio(self) -> Background[tuple[list[AudioPacket], dict[str, int]]] | None:
        """The audio (mix, AAC encode, chunk cache) on a thread of its own, beside the video (or in line when
        PREVIEW_RENDER_THREADS is 1: then this returns an already finished task)."""
        if not self.spec.output.audio:
            return None

        def work(stopped: Callable[[], None]) -> tuple[list[AudioPacket], dict[str, int]]:
            def check() -> None:
                stopped()
                self.check()

            return render_audio(self.plan, self.spec, self.store, check=check, identities=self.identities)

        return Background(work, name="audio", inline=not self.pipelined)

    # video ------------------------------------------------------------------------------------------------
    def _video(self, segments: list[Segment], work: Path) -> tuple[list[Part], list[SegmentMeta]]:
        parts: list[Part] = []
        metas: list[SegmentMeta] = []
        for number, segment in enumerate(segments):
            self.check()
            hit = self.store.get_video(segment.key)
            path = work / f"{number:06d}.mp4"
            if hit is not None and not (hit[1].frames == segment.frames and _pin(hit[0], path)):
                hit[0].close()
                hit = None
            if hit is not None:
                meta = hit[1]
                parts.append(path)
                metas.append(self._sampled(segment, meta))
                for message in meta.warnings:
                    self.plan.warn(message)
                self.counts["segmentsReused"] += 1
                self.done += segment.frames
                self.progress(self.done, self.plan.frames)
                continue
            meta = self.render_segment(segment, path)
            self.store.put_video(segment.key, path, meta)
            parts.append(path)
            metas.append(self._sampled(segment, meta))
            self.counts["segmentsRendered"] += 1
        return parts, metas

    def _sampled(self, segment: Segment, meta: SegmentMeta) -> SegmentMeta:
        """The meta with only the thumbnails this preview's sprite uses (the store keeps every frame's): a render
        must not hold a JPEG per frame until the join — ~5 KB a frame, 75 MB for a 10-minute preview."""
        interval = self.collector.interval
        thumbs = [b""] * len(meta.thumbs)
        for offset in range(-segment.start % interval, len(meta.thumbs), interval):
            thumbs[offset] = meta.thumbs[offset]
        return SegmentMeta(meta.frames, thumbs, meta.picture, meta.good, meta.warnings)

    def render_segment(self, segment: Segment, path: Path) -> SegmentMeta:
        """Encode one segment into `path` (segments must come in increasing order: the composer reads forward);
        its meta carries the thumbnails, poster flags and the warnings raised meanwhile."""
        plan, spec = self.plan, self.spec
        if self.composer is None:
            self.composer = Composer(plan, spec.output.strict, self.threads, self.pipelined)
        encoder = Encoder(path, plan.width, plan.height, plan.rate, preset=spec.output.preset, audio=False,
                          offload=self.pipelined)
        sink: list[str] = []
        plan.warning_sinks.append(sink)
        thumbs: list[bytes] = []
        picture = bytearray()
        good = bytearray()
        ok = False
        try:
            for index in range(segment.start, segment.stop):
                self.check()
                frame = self.composer.output_frame(index)
                small = self.collector.thumbnail(frame.image, frame.i420)
                thumbs.append(self._thumb(small))
                if index == self.collector.target:  # usually the poster: saves composing it again
                    self.target_image = frame.bgr(plan.width, plan.height).copy()
                picture.append(frame.picture)
                good.append(frame.picture and self.collector.good(frame.image, frame.i420, small))
                burn(frame.image, plan, spec, index, frame.name, i420=frame.i420)
                encode_frame(encoder, frame)
                self.done += 1
                self.progress(self.done, plan.frames)
            encoder.finish()
            ok = True
        except (av.FFmpegError, OSError) as exc:
            raise RenderError(f"encoding a segment at frame {segment.start} failed: {exc}") from exc
        finally:
            plan.warning_sinks.remove(sink)
            if not ok:
                encoder.abort()
        return SegmentMeta(segment.frames, thumbs, bytes(picture), bytes(good), sink)

    def _thumb(self, small: np.ndarray) -> bytes:
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
        if not ok:
            raise RenderError("could not encode a thumbnail")
        return data.tobytes()

    # poster and thumbnails --------------------------------------------------------------------------------
    def _start_poster(self, segments: list[Segment], metas: list[SegmentMeta]) -> Background[np.ndarray]:
        """Pick the poster frame (the rule of `artifacts.Collector`, from the per-frame flags) and get its clean
        picture on a thread, beside the audio's end and the join. Composing it again from the sources costs a
        seek and up to a source GOP of decoding, and after a ripple the frame one third in always has to be. It
        starts once the video's decoders are closed, so it adds nothing to the render's peak memory."""
        collector = self.collector
        picture = b"".join(meta.picture for meta in metas)
        good = b"".join(meta.good for meta in metas)
        chosen = choose_poster(picture, good, collector.interval, collector.target)
        index = chosen if chosen is not None else 0
        number, offset = _locate([segment.start for segment in segments], index)
        rendered = self.target_image if index == collector.target else None

        def work(stopped: Callable[[], None]) -> np.ndarray:
            stopped()
            return self._clean_frame(segments[number], offset, rendered)

        return Background(work, name="poster", inline=not self.pipelined)

    def _artifacts(self, segments: list[Segment], metas: list[SegmentMeta], poster: np.ndarray) -> dict[str, Any]:
        collector = self.collector
        starts = [segment.start for segment in segments]
        for k in range(collector.count):
            number, offset = _locate(starts, k * collector.interval)
            data = np.frombuffer(metas[number].thumbs[offset], dtype=np.uint8)
            collector.thumbs[k] = cv2.imdecode(data, cv2.IMREAD_COLOR)
        collector.poster = poster
        return collector.write(self.out_dir)

    def _clean_frame(self, segment: Segment, offset: int, rendered: np.ndarray | None) -> np.ndarray:
        """The full-size picture of one frame before burn-ins: rendered in this run, from the store, or
        composed again from the sources (one seek: costs up to a source GOP of decoding)."""
        key = f"p{segment.key}:{offset}"
        if rendered is not None:
            self._keep_frame(key, rendered)
            return rendered
        data = self.store.get_bytes(key)
        if data is not None:
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
            if image is not None and image.shape[:2] == (self.plan.height, self.plan.width):
                return image
        composer = Composer(self.plan, self.spec.output.strict, self.threads)
        try:
            image, _picture, _name = composer.frame(segment.start + offset)
        finally:
            composer.close()
        self._keep_frame(key, image)
        return image

    def keep_target(self, segment: Segment) -> None:
        """Store the clean full-size frame one third in when this segment rendered it (usually the poster), so a
        parent joining farm chunks need not compose it again from the sources."""
        target = self.collector.target
        if self.target_image is not None and segment.start <= target < segment.stop:
            self._keep_frame(f"p{segment.key}:{target - segment.start}", self.target_image)

    def _keep_frame(self, key: str, image: np.ndarray) -> None:
        if self.store.get_bytes(key) is None:
            ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if ok:
                self.store.put_bytes(key, png.tobytes())


def _locate(starts: list[int], index: int) -> tuple[int, int]:
    """(segment number, offset in it) of output frame `index`, given each segment's first frame."""
    number = bisect.bisect_right(starts, index) - 1
    return number, index - starts[number]


def _pin(handle: BinaryIO, path: Path) -> bool:
    """Make a cached segment ours for this render: a hard link to the store's file (a copy across file systems),
    so eviction by another process cannot pull it away and a long preview holds no open file per segment."""
    try:
        with handle:
            try:
                os.link(handle.name, path)
            except OSError:
                with path.open("wb") as out:
                    shutil.copyfileobj(handle, out, 1 << 20)
    except OSError:
        path.unlink(missing_ok=True)
        return False
    return True


def choose_poster(picture: bytes, good: bytes, interval: int, target: int) -> int | None:
    """The frame `artifacts.Collector.offer` would keep, from per-frame flags: the good picture nearest
    `target` among the sampled frames (the first good one wherever it is), else the first real picture."""
    chosen: int | None = None
    distance = float("inf")
    chosen_good = False
    for index, has_picture in enumerate(picture):
        if not has_picture:
            continue
        if chosen_good and index % interval != 0 and index != target:
            continue
        is_good = bool(good[index])
        if (is_good and (not chosen_good or abs(index - target) < distance)) or (not chosen_good and chosen is None):
            chosen, distance, chosen_good = index, abs(index - target), is_good
    return chosen


def render_incremental(plan: Plan, spec: JobSpec, out_dir: Path, store: Store, *, check: CheckFn,
                       progress: ProgressFn, threads: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the artifacts through the segment store; returns (thumbnails entry, facts incl. cache counts)."""
    return IncrementalRender(plan, spec, out_dir, store, check=check, progress=progress, threads=threads).run()
