"""OTIO, EDL and FCP XML inputs; dissolves, speed changes and overlaps judged by frame content."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from tests.support.media import BLUE, GREEN, RED, decode, make_clip, make_sequence, make_still, onset, read_code

FPS = 25


def rt(frames: float) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, FPS)


def clip(name: str, url: str, start: int, duration: int, **kw) -> otio.schema.Clip:
    return otio.schema.Clip(
        name=name,
        media_reference=otio.schema.ExternalReference(target_url=url, **kw),
        source_range=otio.opentime.TimeRange(rt(start), rt(duration)),
    )


def write_otio(path: Path, *tracks: otio.schema.Track) -> str:
    timeline = otio.schema.Timeline(name="t")
    for track in tracks:
        timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(path))
    return str(path)


def top(frame: np.ndarray) -> np.ndarray:
    """Mean BGR of the top band (clear of the frame-code band)."""
    return frame[: frame.shape[0] // 3].reshape(-1, 3).mean(axis=0)


def is_colour(frame: np.ndarray, bgr: tuple[int, int, int], tol: float = 25) -> bool:
    return bool(np.all(np.abs(top(frame) - np.array(bgr)) < tol))


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "footage"
    folder.mkdir()
    make_clip(folder / "red.mp4", seconds=2.0, colour=RED, tone=440.0)
    make_clip(folder / "blue.mp4", seconds=2.0, colour=BLUE, audio=False)
    return folder


def test_otio_dissolve_cross_fades_picture_and_sound(tmp_path: Path, media: Path, render) -> None:
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(clip("red", "footage/red.mp4", 0, 25))
    track.append(otio.schema.Transition(transition_type="SMPTE_Dissolve", in_offset=rt(5), out_offset=rt(5)))
    track.append(clip("blue", "footage/blue.mp4", 10, 25))
    doc, out = render(write_otio(tmp_path / "t.otio", track))
    result = decode(out / "preview.mp4")
    frames = result.frames
    assert len(frames) == 50 and doc["timeline"]["format"] == "otio"
    assert is_colour(frames[19], RED) and is_colour(frames[30], BLUE)
    assert read_code(frames[19]) == 19 and read_code(frames[30]) == 15  # blue from source 10 at the cut
    weights = [top(frames[i])[0] / 200 for i in range(20, 30)]  # blue share rises steadily
    assert all(b > a for a, b in itertools.pairwise(weights))
    assert 0.35 < weights[4] < 0.6
    audio = result.audio
    assert audio is not None

    def rms(start: float, end: float) -> float:
        return float(np.sqrt(np.mean(audio[int(start * 48000): int(end * 48000)] ** 2)))

    full = rms(0.2, 0.7)
    assert full > 0.05
    assert 0.25 * full < rms(0.98, 1.02) < 0.8 * full  # mid-dissolve: red's tone half way down
    assert rms(1.3, 1.9) < 0.01 * full + 1e-4


def test_speed_change_and_freeze(tmp_path: Path, media: Path, render) -> None:
    fast = clip("fast", "footage/red.mp4", 0, 10)
    fast.effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))
    slow = clip("slow", "footage/red.mp4", 10, 10)
    slow.effects.append(otio.schema.LinearTimeWarp(time_scalar=0.5))
    frozen = clip("freeze", "footage/red.mp4", 30, 5)
    frozen.effects.append(otio.schema.FreezeFrame())
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for item in (fast, slow, frozen):
        track.append(item)
    _doc, out = render(write_otio(tmp_path / "speed.otio", track))
    codes = [read_code(f) for f in decode(out / "preview.mp4").frames]
    assert codes[:10] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert codes[10:20] == [10, 10, 11, 11, 12, 12, 13, 13, 14, 14]
    assert codes[20:25] == [30] * 5


def test_topmost_enabled_track_wins_and_gaps_are_black(tmp_path: Path, media: Path, render) -> None:
    v1 = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    v1.append(clip("red", "footage/red.mp4", 0, 25))
    v1.append(otio.schema.Gap(duration=rt(10)))
    v2 = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    v2.append(otio.schema.Gap(duration=rt(5)))
    v2.append(clip("blue", "footage/blue.mp4", 0, 5))
    v3 = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    v3.enabled = False
    v3.append(clip("hidden", "footage/blue.mp4", 0, 35))
    _doc, out = render(write_otio(tmp_path / "over.otio", v1, v2, v3))
    frames = decode(out / "preview.mp4").frames
    assert len(frames) == 35
    assert is_colour(frames[2], RED) and is_colour(frames[7], BLUE) and is_colour(frames[12], RED)
    assert frames[30].mean() < 8


def test_audio_tracks_replace_clip_audio(tmp_path: Path, media: Path, render) -> None:
    make_clip(media / "beep.mp4", seconds=1.0, colour=GREEN, beeps=[0.2])
    v1 = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    v1.append(clip("red", "footage/red.mp4", 0, 25))  # red has a 440 Hz tone: must not be heard
    a1 = otio.schema.Track(kind=otio.schema.TrackKind.Audio)
    a1.append(otio.schema.Gap(duration=rt(10)))
    a1.append(clip("beep", "footage/beep.mp4", 0, 15))
    _doc, out = render(write_otio(tmp_path / "audio.otio", v1, a1))
    result = decode(out / "preview.mp4")
    assert result.audio is not None
    beep = onset(result.audio, 48000, threshold=0.05)
    assert beep is not None and abs(beep - (0.4 + 0.2)) <= 1 / FPS
    assert float(np.abs(result.audio[: int(0.35 * 48000)]).max()) < 0.02


EDL = """TITLE: test
FCM: NON-DROP FRAME

001  AX       V     C        00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00
* FROM CLIP NAME: red.mp4
002  AX       V     C        00:00:01:00 00:00:01:00 00:00:01:00 00:00:01:00
002  BX       V     D    010 00:00:00:10 00:00:01:10 00:00:01:00 00:00:02:00
* FROM CLIP NAME: red.mp4
* TO CLIP NAME: blue.mp4
003  GREEN01  V     C        00:00:00:00 00:00:00:10 00:00:02:00 00:00:02:05
M2   GREEN01       050.0                00:00:00:00
"""


def test_cmx3600_edl_relinks_dissolves_and_speeds(tmp_path: Path, media: Path, render) -> None:
    make_clip(media / "GREEN01.mp4", seconds=1.0, colour=GREEN, audio=False)
    edl = tmp_path / "cut.edl"
    edl.write_text(EDL)
    doc, out = render(str(edl), mediaSearchPaths=[str(media)], output={"fps": 25})
    frames = decode(out / "preview.mp4").frames
    assert doc["timeline"]["format"] == "edl" and doc["warnings"] == []
    assert len(frames) == 55
    assert is_colour(frames[20], RED)
    assert 0.3 < top(frames[30])[0] / 200 < 0.7  # mid-dissolve
    assert is_colour(frames[40], BLUE) and read_code(frames[40]) == 25  # blue in at 00:00:00:10
    assert is_colour(frames[52], GREEN) and [read_code(f) for f in frames[50:53]] == [0, 2, 4]  # M2 at 50 fps


def test_edl_unfound_media_is_offline_with_slate(tmp_path: Path, render) -> None:
    edl = tmp_path / "missing.edl"
    edl.write_text(EDL)
    doc, out = render(str(edl), output={"fps": 25})
    frames = decode(out / "preview.mp4").frames
    assert len(frames) == 55
    assert any("media offline" in w and "red.mp4" in w for w in doc["warnings"])


def test_fcp7_xml(tmp_path: Path, media: Path, render) -> None:
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    rng = otio.opentime.TimeRange(rt(0), rt(50))
    track.append(clip("red", (media / "red.mp4").as_uri(), 5, 10, available_range=rng))
    track.append(clip("blue", (media / "blue.mp4").as_uri(), 0, 10, available_range=rng))
    timeline = otio.schema.Timeline(name="seq")
    timeline.tracks.append(track)
    xml = tmp_path / "seq.xml"
    otio.adapters.write_to_file(timeline, str(xml), adapter_name="fcp_xml")
    doc, out = render(str(xml))
    frames = decode(out / "preview.mp4").frames
    assert doc["timeline"]["format"] == "fcp7xml" and len(frames) == 20
    assert is_colour(frames[0], RED) and read_code(frames[0]) == 5 and is_colour(frames[15], BLUE)


def test_fcpxml(tmp_path: Path, media: Path, render) -> None:
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    rng = otio.opentime.TimeRange(rt(0), rt(50))
    track.append(clip("red", (media / "red.mp4").as_uri(), 0, 10, available_range=rng))
    track.append(clip("blue", (media / "blue.mp4").as_uri(), 0, 10, available_range=rng))
    timeline = otio.schema.Timeline(name="seq", global_start_time=rt(0))
    timeline.tracks.append(track)
    path = tmp_path / "seq.fcpxml"
    otio.adapters.write_to_file(timeline, str(path), adapter_name="fcpx_xml")
    doc, out = render(str(path))
    frames = decode(out / "preview.mp4").frames
    assert doc["timeline"]["format"] == "fcpxml" and len(frames) == 20
    assert is_colour(frames[5], RED) and is_colour(frames[15], BLUE)


def test_stills_and_image_sequences(tmp_path: Path, render) -> None:
    make_still(tmp_path / "card.png", size=(400, 300), colour=GREEN)
    pattern = make_sequence(tmp_path / "seq", 20, start=101)
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(clip("card", "card.png", 0, 5))
    seq = otio.schema.Clip(
        name="seqref",
        media_reference=otio.schema.ImageSequenceReference(
            target_url_base="seq/", name_prefix="shot.", name_suffix=".png", start_frame=101,
            frame_zero_padding=4, rate=FPS),
        source_range=otio.opentime.TimeRange(rt(3), rt(5)),
    )
    track.append(seq)
    track.append(clip("printf", pattern, 10, 5))
    doc, out = render(write_otio(tmp_path / "stills.otio", track))
    frames = decode(out / "preview.mp4").frames
    assert doc["warnings"] == [] and len(frames) == 15
    assert is_colour(frames[2][:, 60:260], GREEN)
    assert frames[2][:, :20].mean() < 10  # 4:3 still pillarboxed
    assert [read_code(f) for f in frames[5:10]] == [3, 4, 5, 6, 7]
    assert [read_code(f) for f in frames[10:15]] == [10, 11, 12, 13, 14]
