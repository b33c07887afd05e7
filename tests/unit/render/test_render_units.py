"""Small, fast checks of the renderer's parts: imports, fitting, burn-ins, plan maths, relinking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from preview_desktop.errors import UnsafePath
from preview_desktop.render import compose
from preview_desktop.render.artifacts import _vtt_time
from preview_desktop.render.media import probe, relink
from preview_desktop.render.plan import Layer, Source, fps_fraction, to_frames

RENDER_MODULES = ["renderer", "artifacts", "audio", "codec", "compose", "demo", "media", "pipeline", "plan", "timeline"]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_renderer_import_is_light() -> None:
    out = _run(
        "import sys, preview_desktop.render.renderer\n"
        "print(sorted(m for m in ('av', 'cv2', 'opentimelineio', 'numpy') if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_render_never_imports_qt() -> None:
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in ("PySide6", "PySide6.QtCore", "PyQt5"))
    imports = "; ".join(f"import preview_desktop.render.{m}" for m in RENDER_MODULES)
    out = _run(f"import sys; {blocked}; {imports}; print('ok')")
    assert out.strip() == "ok"


@pytest.mark.parametrize(
    ("src", "out", "expected"),
    [
        ((1920, 1080), (640, 360), (640, 360, 0, 0)),
        ((1080, 1920), (640, 360), (202, 360, 219, 0)),
        ((1440, 1080), (640, 360), (480, 360, 80, 0)),
        ((2048, 858), (640, 360), (640, 268, 0, 46)),
        ((0, 0), (640, 360), (640, 360, 0, 0)),
    ],
)
def test_fit(src: tuple[int, int], out: tuple[int, int], expected: tuple[int, int, int, int]) -> None:
    assert compose.fit(*src, *out) == expected


def test_burn_ins_are_drawn_and_legible_at_640x360() -> None:
    image = np.full((360, 640, 3), 128, dtype=np.uint8)
    compose.burn_in(image, tc="01:02:03:04", clip="B-roll 3", label="DRAFT")
    bottom = image[320:360, 220:420]
    assert (bottom > 240).sum() > 150 and (bottom < 40).sum() > 1000  # white glyphs on a dark box
    assert (image[0:40, 0:160] > 240).sum() > 100  # clip name top left
    assert (image[0:40, 540:640] > 240).sum() > 80  # label top right
    assert compose.timecode(25 * 3723 + 4, 25) == "01:02:03:04"


def test_slate_names_the_clip_and_is_read_only() -> None:
    slate = compose.slate("B-roll 3", 640, 360)
    assert not slate.flags.writeable
    assert (slate > 240).sum() > 500
    assert slate[5, 5].tolist() == [40, 30, 70]


def test_layer_opacity_and_source_time() -> None:
    layer = Layer("a", Source(kind="black"), 0, rec_in=10, rec_out=20, src_in=1.0, speed=2.0,
                  fade_in=(5, 15), fade_out=(18, 22))
    assert (layer.first, layer.last) == (5, 22)
    assert layer.opacity(4) == 0 and layer.opacity(16) == 1.0 and layer.opacity(22) == 0
    assert 0.4 < layer.opacity(9.5) < 0.6
    assert layer.source_time(15, 25) == pytest.approx(1.0 + 5 / 25 * 2)


def test_rates_and_frames() -> None:
    assert fps_fraction(29.97) == fps_fraction(30000 / 1001) == __import__("fractions").Fraction(30000, 1001)
    assert fps_fraction(25.0) == 25 and to_frames(0.04 * 3, 25) == 3 and to_frames(1 / 3, 30) == 10
    assert _vtt_time(3723.5) == "01:02:03.500"


def test_relink_by_clip_or_reel_name(tmp_path: Path) -> None:
    (tmp_path / "A001.mov").write_bytes(b"x")
    (tmp_path / "shot.mp4").write_bytes(b"x")
    assert relink(["shot.mp4"], [tmp_path], [tmp_path]) == (tmp_path / "shot.mp4").resolve()
    assert relink(["nothing", "A001"], [tmp_path], [tmp_path]) == (tmp_path / "A001.mov").resolve()
    assert relink(["../etc/passwd", ".."], [tmp_path], [tmp_path]) is None
    outside = tmp_path / "sub"
    outside.mkdir()
    (outside / "B002.mov").write_bytes(b"x")
    with pytest.raises(UnsafePath):
        relink(["B002"], [outside], [tmp_path / "elsewhere"])


def test_probe_reports_reasons(tmp_path: Path) -> None:
    assert probe(tmp_path / "none.mp4").reason == "file not found"
    (tmp_path / "zero.mp4").write_bytes(b"")
    assert probe(tmp_path / "zero.mp4").reason == "empty file (0 bytes)"
    (tmp_path / "dir.mp4").mkdir()
    assert probe(tmp_path / "dir.mp4").reason == "not a regular file"
