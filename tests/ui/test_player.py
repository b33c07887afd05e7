"""The window on a real preview: the real renderer makes it, the detail pane plays it with QtMultimedia (offscreen;
"No audio device" on stderr is harmless) and scrubs its real thumbnails. Frames are judged by the frame number
the test clip carries (tests/support/media.py), so a frozen or wrong picture fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preview_desktop.core.job import JobState
from preview_desktop.core.submission import WireSource
from preview_desktop.node import Node
from preview_desktop.settings import Settings
from tests.support.media import make_clip, read_code
from tests.support.qtloop import run
from tests.ui.conftest import wait_until

pytestmark = pytest.mark.timeout(180)
FPS, SECONDS, SIZE = 25, 3, (320, 180)


@pytest.fixture
def node(qloop: asyncio.AbstractEventLoop, settings: Settings) -> Iterator[Node]:
    """Overrides the UI suite's node: this one has the real handlers, as the window builds it."""
    node = Node(settings, qloop, with_api=False, with_farm=False)
    yield node
    if not node.engine.stopping:
        run(qloop, node.stop(grace=1, interrupt=True))


def to_bgr(image: Any) -> np.ndarray:
    """A QImage as a BGR array (what read_code expects)."""
    from PySide6.QtGui import QImage

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    rows = np.frombuffer(rgb.constBits(), np.uint8, stride * height).reshape(height, stride)
    return rows[:, : width * 3].reshape(height, width, 3)[:, :, ::-1].copy()


def test_the_window_plays_and_scrubs_a_real_preview(window: Any, node: Node, qloop: asyncio.AbstractEventLoop,
                                                    tmp_path: Path) -> None:
    from PySide6.QtMultimedia import QMediaPlayer

    media = tmp_path / "media"
    media.mkdir()
    clip = make_clip(media / "shot.mp4", seconds=SECONDS, fps=FPS, tone=440.0)
    spec = {"projectId": "playback", "timeline": {"fps": FPS, "clips": [{"source": str(clip)}]},
            "output": {"width": SIZE[0], "height": SIZE[1],
                       "burnIn": {"timecode": False, "clipName": False, "label": None}}}
    job = run(qloop, node.jobs.submit(WireSource(spec)))
    done = wait_until(qloop, lambda: (j := node.engine.jobs.get(job.id)) and j.state in (
        JobState.SUCCEEDED, JobState.FAILED) and j, timeout=120, what="the real render")
    assert done.state is JobState.SUCCEEDED, done.error

    wait_until(qloop, lambda: window.proxy.rowCount() == 1
               and window.proxy.job_at(0).state is JobState.SUCCEEDED, what="the table row")
    window.table.setCurrentIndex(window.proxy.index(0, 0))  # the editor clicks the row
    pane = window.detail
    wait_until(qloop, lambda: pane.job is not None and pane.job.id == job.id and not pane.loading,
               what="the detail pane's files")

    # Scrub: one thumbnail a second, each showing the source frame of its second.
    assert pane.scrub.isEnabled() and pane.scrub.maximum() == SECONDS - 1
    for second in reversed(range(SECONDS)):
        pane.scrub.setValue(second)
        shown = pane.image._pixmap
        assert shown is not None and (shown.width(), shown.height()) == (160, 90)
        assert read_code(to_bgr(shown.toImage())) == second * FPS
        assert pane.scrub_label.text() == f"{second + 1}/{SECONDS}"

    # Play: the media loads, the position advances and the frames on the video surface move on.
    assert pane.play_button.isEnabled()
    pane.play_button.click()
    player = pane.player
    assert player is not None, "in-app playback is unavailable (QtMultimedia)"
    assert pane.stack.currentWidget() is player
    failures: list[str] = []
    player.failed.connect(failures.append)
    codes: list[int] = []
    sizes: set[tuple[int, int]] = set()

    def on_frame(frame: Any) -> None:
        if frame.isValid():
            sizes.add((frame.width(), frame.height()))
            codes.append(read_code(to_bgr(frame.toImage())))

    player.video.videoSink().videoFrameChanged.connect(on_frame)
    wait_until(qloop, lambda: failures or player.player.position() >= 1000, timeout=30,
               what="playback to pass one second")
    assert not failures, failures
    assert player.player.mediaStatus() in (QMediaPlayer.MediaStatus.LoadedMedia,
                                           QMediaPlayer.MediaStatus.BufferingMedia,
                                           QMediaPlayer.MediaStatus.BufferedMedia,
                                           QMediaPlayer.MediaStatus.EndOfMedia)
    assert player.player.duration() == SECONDS * 1000
    assert player.slider.maximum() == SECONDS * 1000 and player.slider.value() > 0
    assert sizes == {SIZE}, sizes
    assert len(set(codes)) >= 5 and codes == sorted(codes), codes  # many frames, in order
    assert 0 <= codes[0] < codes[-1] <= SECONDS * FPS - 1

    pane.scrub.setValue(1)  # scrubbing stops playback and shows the thumbnail again
    assert player.player.playbackState() is QMediaPlayer.PlaybackState.StoppedState
    assert pane.stack.currentWidget() is pane.image
