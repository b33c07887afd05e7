"""Renders checked by decoding them: codec, size, exact frames, duration, audio, sync, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.support.media import BLUE, RED, bright_frames, decode, make_clip, onset, read_code


def test_inline_render_is_h264_aac_exact_and_in_sync(tmp_path: Path, render) -> None:
    # a flash at source frame 10 and a beep at 0.4 s (= frame 10 at 25 fps) in the second clip
    make_clip(tmp_path / "a.mp4", seconds=1.0, colour=RED)
    make_clip(tmp_path / "b.mp4", seconds=2.0, colour=BLUE, flashes=[10], beeps=[0.4])
    doc, out = render({"fps": 25, "clips": [
        {"source": "a.mp4", "in": 0.2, "out": 1.0},
        {"gap": 0.4},
        {"source": "b.mp4", "in": 0.0, "out": 2.0},
    ]}, mediaSearchPaths=[str(tmp_path)])
    expected = 20 + 10 + 50
    result = decode(out / "preview.mp4")
    assert (result.codec, result.width, result.height) == ("h264", 320, 180)
    assert len(result.frames) == expected == doc["video"]["frames"]
    assert abs(result.duration - expected / 25) < 0.05
    assert result.faststart
    assert result.audio_codec == "aac" and result.audio_rate == 48000 and result.audio is not None
    # gap is black
    assert result.frames[25].mean() < 10
    flashes = bright_frames(result.frames)
    assert flashes == [30 + 10]
    beep = onset(result.audio, 48000)
    assert beep is not None
    assert abs(beep - flashes[0] / 25) <= 1 / 25, (beep, flashes[0] / 25)
    # the first picture is source frame 5 (in = 0.2 s)
    assert read_code(result.frames[0]) == 5
    assert doc["timeline"]["format"] == "inline" and doc["timeline"]["clips"] == 2
    assert doc["timeline"]["digest"].startswith("sha256:")


def test_artifacts_and_preview_json_shape(tmp_path: Path, render) -> None:
    make_clip(tmp_path / "a.mp4", seconds=3.0, colour=RED, audio=False)
    doc, out = render({"fps": 25, "clips": [{"gap": 1.0}, {"source": "a.mp4"}]},
                      mediaSearchPaths=[str(tmp_path)],
                      output={"burnIn": {"timecode": True, "clipName": True, "label": "DRAFT"}})
    assert sorted(p.name for p in out.iterdir()) == [
        "poster.jpg", "preview.json", "preview.mp4", "thumbs.jpg", "thumbs.vtt"]
    on_disk = json.loads((out / "preview.json").read_text())
    assert on_disk == doc
    assert set(doc) == {"jobId", "projectId", "status", "createdAt", "startedAt", "finishedAt", "renderSeconds",
                        "dryRun", "timeline", "video", "poster", "thumbnails", "warnings", "renderer", "cache"}
    assert set(doc["video"]) == {"file", "codec", "width", "height", "fps", "frames", "durationSeconds", "audio",
                                 "bytes", "sha256"}
    assert doc["status"] == "succeeded" and doc["dryRun"] is False
    assert doc["video"]["frames"] == 100 and doc["video"]["fps"] == 25
    assert doc["video"]["bytes"] == (out / "preview.mp4").stat().st_size
    poster = cv2.imread(str(out / "poster.jpg"))
    assert poster.shape == (180, 320, 3)
    assert poster[:50].mean() > 40  # red picture, not the black gap
    sprite = cv2.imread(str(out / "thumbs.jpg"))
    vtt = (out / "thumbs.vtt").read_text().splitlines()
    assert vtt[0] == "WEBVTT"
    cues = [line for line in vtt if "#xywh=" in line]
    assert len(cues) == doc["thumbnails"]["count"] == 4
    x, y, w, h = (int(v) for v in cues[-1].split("#xywh=")[1].split(","))
    assert x + w <= sprite.shape[1] and y + h <= sprite.shape[0]
    assert "00:00:03.000 --> 00:00:04.000" in vtt


def test_letterbox_and_pillarbox(tmp_path: Path, render) -> None:
    make_clip(tmp_path / "tall.mp4", seconds=0.2, size=(180, 320), colour=RED, audio=False)
    make_clip(tmp_path / "square.mp4", seconds=0.2, size=(240, 240), colour=BLUE, audio=False)
    _doc, out = render({"fps": 25, "clips": [{"source": "tall.mp4"}, {"source": "square.mp4"}]},
                       mediaSearchPaths=[str(tmp_path)], output={"width": 320, "height": 180, "audio": False})
    frames = decode(out / "preview.mp4").frames
    tall, square = frames[0], frames[-1]
    assert tall[:, :100].mean() < 12 and tall[20:40, 150:170, 2].mean() > 150  # pillarbox, red middle
    assert square[:, :30].mean() < 12 and square[20:40, 150:170, 0].mean() > 150


def test_no_audio_output(tmp_path: Path, render) -> None:
    make_clip(tmp_path / "a.mp4", seconds=0.4)
    _doc, out = render(str(tmp_path / "a.mp4"), output={"audio": False})
    result = decode(out / "preview.mp4")
    assert result.audio_codec is None and len(result.frames) == 10


def test_single_media_file_uses_its_rate_and_audio(tmp_path: Path, render) -> None:
    make_clip(tmp_path / "m.mp4", seconds=1.0, fps=30, beeps=[0.5])
    doc, out = render(str(tmp_path / "m.mp4"))
    result = decode(out / "preview.mp4")
    assert doc["timeline"]["format"] == "media" and doc["video"]["fps"] == 30
    assert len(result.frames) == 30
    beep = onset(result.audio, 48000)
    assert beep is not None and abs(beep - 0.5) < 1 / 30


def test_output_fps_conversion_keeps_duration(tmp_path: Path, render) -> None:
    make_clip(tmp_path / "m.mp4", seconds=2.0, fps=25)
    doc, out = render(str(tmp_path / "m.mp4"), output={"fps": 10})
    result = decode(out / "preview.mp4")
    assert len(result.frames) == 20 and doc["video"]["fps"] == 10
    assert [read_code(f) for f in result.frames[:4]] == [0, 2, 5, 7]  # 0.0, 0.1, 0.2, 0.3 s at 25 fps


def test_poster_never_black_when_picture_exists(tmp_path: Path, render) -> None:
    make_clip(tmp_path / "a.mp4", seconds=0.2, colour=BLUE, audio=False)
    _doc, out = render({"fps": 25, "clips": [{"gap": 3.0}, {"source": "a.mp4"}, {"gap": 3.0}]},
                       mediaSearchPaths=[str(tmp_path)])
    poster = cv2.imread(str(out / "poster.jpg"))
    assert float(np.mean(poster[:50, :, 0])) > 100
