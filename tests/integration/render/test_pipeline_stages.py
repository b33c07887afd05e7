"""The pipelined renderer (decode ahead, encode behind, audio beside: render/stages.py) keeps the job boundary's
contract: a failure on a stage's thread reaches the caller as the same typed error, cancel stops every stage
promptly, and no thread outlives the render. Real clips, real PyAV, real threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from preview_desktop.errors import JobCancelled, MediaError, RenderError
from preview_desktop.render import codec, incremental
from preview_desktop.render.renderer import render_to_folder
from tests.support.media import decode, make_clip

from .conftest import JOB_ID, make_ctx, spec_for

STAGE_PREFIXES = ("decode ", "encode ", "audio")


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(STAGE_PREFIXES)]


def _timeline(tmp_path: Path, seconds: float = 4.0) -> Any:
    make_clip(tmp_path / "a.mp4", seconds=seconds, size=(640, 360), beeps=[1.0])
    return spec_for({"fps": 25, "clips": [{"source": "a.mp4", "name": "shot a"}]},
                    mediaSearchPaths=[str(tmp_path)], output={"burnIn": {"timecode": True}})


def _render(spec: Any, out: Path, settings: Any, ctx: Any = None) -> dict[str, Any]:
    out.mkdir()
    return render_to_folder(spec, out, job_id=JOB_ID, settings=settings, ctx=ctx or make_ctx())


@pytest.mark.parametrize("cache", [True, False], ids=["segments", "single-pass"])
def test_cancel_stops_every_stage(tmp_path: Path, settings: Any, cache: bool) -> None:
    spec = _timeline(tmp_path, seconds=6.0)
    settings = settings if cache else settings.with_overrides(cache_max_bytes=0)
    ctx = make_ctx()
    cancelled_at: list[float] = []

    def progress(frame: int, _frames: int) -> None:
        if frame >= 20 and not cancelled_at:
            assert stage_threads(), "the render should be running its stages on threads"
            cancelled_at.append(time.monotonic())
            ctx.cancel_event.set()

    ctx.progress_fn = progress
    with pytest.raises(JobCancelled):
        _render(spec, tmp_path / "out", settings, ctx)
    # every stage joined: generous, as the machine may be loaded (typically well under 0.5 s)
    assert time.monotonic() - cancelled_at[0] < 2.0
    assert stage_threads() == []


@pytest.mark.parametrize("cache", [True, False], ids=["segments", "single-pass"])
def test_encoder_thread_failure_is_a_render_error(tmp_path: Path, settings: Any, cache: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _timeline(tmp_path)
    settings = settings if cache else settings.with_overrides(cache_max_bytes=0)
    real = codec.Encoder._handle
    seen: list[str] = []

    def full_disk(self: codec.Encoder, item: Any) -> None:
        seen.append(threading.current_thread().name)
        if len(seen) > 30:
            raise OSError(28, "No space left on device")
        real(self, item)

    monkeypatch.setattr(codec.Encoder, "_handle", full_disk)
    with pytest.raises(RenderError, match="No space left on device"):
        _render(spec, tmp_path / "out", settings)
    assert seen[-1].startswith("encode ")  # it did fail on the encoder's own thread
    assert stage_threads() == []


def test_decode_thread_failure_names_the_clip(tmp_path: Path, settings: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _timeline(tmp_path)
    real = codec.VideoReader._to_i420
    seen: list[str] = []

    def failing(self: codec.VideoReader, frame: Any) -> Any:
        seen.append(threading.current_thread().name)
        if len(seen) > 10:
            raise OSError(5, "Input/output error")
        return real(self, frame)

    monkeypatch.setattr(codec.VideoReader, "_to_i420", failing)
    with pytest.raises(RenderError, match="shot a") as caught:
        _render(spec, tmp_path / "out", settings)
    assert "Input/output error" in str(caught.value) and "a.mp4" in str(caught.value)
    assert seen[-1].startswith("decode ")
    assert stage_threads() == []


def test_audio_thread_failure_keeps_its_type(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _timeline(tmp_path)
    real = incremental.render_audio
    seen: list[str] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        raise MediaError("clip 'shot a': a.mp4: audio unreadable", clip="shot a")

    monkeypatch.setattr(incremental, "render_audio", failing)
    with pytest.raises(MediaError, match="audio unreadable"):
        _render(spec, tmp_path / "out", settings)
    assert seen == ["audio"]
    assert stage_threads() == []
    monkeypatch.setattr(incremental, "render_audio", real)


def test_one_thread_renders_the_same_bytes(tmp_path: Path, settings: Any) -> None:
    """PREVIEW_RENDER_THREADS=1 runs every stage in line; the file is byte for byte the pipelined one."""
    spec = _timeline(tmp_path)
    piped = _render(spec, tmp_path / "piped", settings.with_overrides(cache_max_bytes=0))
    inline = _render(spec, tmp_path / "inline", settings.with_overrides(cache_max_bytes=0, render_threads=1))
    assert piped["video"]["sha256"] == inline["video"]["sha256"]
    clip = decode(tmp_path / "piped" / "preview.mp4")
    assert len(clip.frames) == 100
