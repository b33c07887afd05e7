"""Path safety corpus and bad media: clear refusals, offline slates, never a hang."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preview_desktop.core.layout import Layout
from preview_desktop.errors import InvalidInput, InvalidSpec, MediaError, UnsafePath
from tests.support.media import decode, make_clip

from .conftest import make_ctx, spec_for


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside PREVIEW_MEDIA_ROOTS (which the test environment sets to tmp_path)."""
    folder = tmp_path_factory.mktemp("outside")
    make_clip(folder / "secret.mp4", seconds=0.2, audio=False)
    (folder / "secret.otio").write_text("{}")
    return folder


def _timeline_corpus(tmp_path: Path, outside: Path) -> list[str]:
    (tmp_path / "link.otio").symlink_to(outside / "secret.otio")
    return [
        str(outside / "secret.otio"),
        str(tmp_path / ".." / outside.name / "secret.otio"),
        str(tmp_path / "link.otio"),
        "/etc/passwd",
        "C:\\cuts\\promo.otio",
        "c:/cuts/promo.otio",
        "\\\\server\\share\\promo.otio",
        "//server/share/promo.otio",
    ]


def _media_corpus(tmp_path: Path, outside: Path) -> list[str]:
    (tmp_path / "link.mp4").symlink_to(outside / "secret.mp4")
    (tmp_path / "dirlink").symlink_to(outside)
    return [
        str(outside / "secret.mp4"),
        f"../{outside.name}/secret.mp4",
        "../../../../../../../../etc/hosts",
        "link.mp4",
        "dirlink/secret.mp4",
        "/etc/hosts",
        "file:///etc/hosts",
        "file://evil.example/share/x.mp4",
        "http://example.com/x.mp4",
        "C:\\media\\x.mp4",
        "D:",
        "\\\\server\\share\\x.mp4",
        "//server/share/x.mp4",
        "a\x00b.mp4",
        "~/../../etc/hosts",
    ]


def test_unsafe_timeline_paths_are_refused(tmp_path: Path, outside: Path, render) -> None:
    for path in _timeline_corpus(tmp_path, outside):
        with pytest.raises(UnsafePath) as info:
            render(path)
        assert info.value.exit_code == 2
        assert "PREVIEW_MEDIA_ROOTS" in str(info.value) or "Windows" in str(info.value), path


def test_nul_in_timeline_is_refused_by_the_spec(render) -> None:
    with pytest.raises(InvalidSpec):
        render("a\x00.otio")


def test_unsafe_media_references_are_refused(tmp_path: Path, outside: Path, render) -> None:
    for ref in _media_corpus(tmp_path, outside):
        with pytest.raises(UnsafePath) as info:
            render({"fps": 25, "clips": [{"source": ref, "out": 1.0}]}, mediaSearchPaths=[str(tmp_path)])
        message = str(info.value)
        assert info.value.exit_code == 2 and message, ref
        assert "clip" in message, message


def test_search_path_outside_roots_cannot_smuggle_media(tmp_path: Path, outside: Path, render) -> None:
    with pytest.raises(UnsafePath, match="PREVIEW_MEDIA_ROOTS"):
        render({"fps": 25, "clips": [{"source": "secret.mp4"}]}, mediaSearchPaths=[str(outside)])


def test_project_and_job_ids_never_escape(settings, tmp_path: Path) -> None:
    from preview_desktop.render.renderer import RenderHandler

    layout = Layout(settings.data_dir)
    for bad in ("..", "../x", "a/b", ".hidden", "", "x" * 65, "a\x00"):
        with pytest.raises(InvalidInput):
            spec_for({"fps": 25, "clips": [{"gap": 1.0}]}, projectId=bad)
    for bad_id in ("../../etc", "..", "20260101-000000-0123abcd/../x", "x"):
        ctx = make_ctx()
        ctx.job.id = bad_id
        spec = spec_for({"fps": 25, "clips": [{"gap": 1.0}]})
        ctx.job.spec = spec.to_wire()
        with pytest.raises(UnsafePath):
            RenderHandler(settings, layout)(ctx.job, spec, ctx)
    assert not any(p for p in settings.data_dir.rglob("*") if "etc" in p.name)


# ------------------------------------------------------------------------------------------------- bad media


def _bad_files(folder: Path) -> dict[str, Path]:
    good = make_clip(folder / "good.mp4", seconds=2.0)
    data = good.read_bytes()
    files = {
        "zero": folder / "zero.mp4",
        "text": folder / "text.mp4",
        "truncated": folder / "truncated.mp4",
        "garbage": folder / "garbage.mp4",
        "badimage": folder / "bad.png",
        "cut_short": folder / "cut_short.mp4",
    }
    fast = make_clip(folder / "fast.mp4", seconds=2.0, faststart=True).read_bytes()
    files["cut_short"].write_bytes(fast[: len(fast) // 2])  # index intact, second half of the data gone
    files["zero"].write_bytes(b"")
    files["text"].write_text("this is not a video\n" * 50)
    files["truncated"].write_bytes(data[: len(data) // 2])
    # a valid container whose video packets are noise: the codec cannot decode it
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    assert moov >= 0 and mdat >= 0
    noise = bytearray(data)
    rng = __import__("random").Random(7)
    start = mdat + 8
    for i in range(start, len(noise)) if mdat > moov else range(start, moov - 8):
        noise[i] = rng.randrange(256)
    files["garbage"].write_bytes(bytes(noise))
    files["badimage"].write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return files


@pytest.mark.timeout(60)
def test_bad_media_renders_slates_with_warnings(tmp_path: Path, render) -> None:
    files = _bad_files(tmp_path)
    clips = [{"source": path.name, "out": 0.4, "name": kind} for kind, path in files.items()]
    doc, out = render({"fps": 25, "clips": clips}, mediaSearchPaths=[str(tmp_path)])
    result = decode(out / "preview.mp4")
    assert len(result.frames) == 10 * len(files) == doc["video"]["frames"]
    warnings = "\n".join(doc["warnings"])
    for kind in files:
        assert f"clip {kind!r}" in warnings, (kind, warnings)
    assert "empty file (0 bytes)" in warnings
    assert "clip 'cut_short'" in warnings and "last frame held" in warnings
    # slates are the dark red offline colour
    assert result.frames[5][:40].mean(axis=(0, 1))[2] > result.frames[5][:40].mean(axis=(0, 1))[0]


@pytest.mark.timeout(60)
def test_bad_media_fails_clearly_when_strict(tmp_path: Path, render) -> None:
    files = _bad_files(tmp_path)
    for kind, path in files.items():
        with pytest.raises(MediaError) as info:
            render({"fps": 25, "clips": [{"source": path.name, "out": 1.5, "name": kind}]},
                   mediaSearchPaths=[str(tmp_path)], output={"strict": True})
        message = str(info.value)
        assert f"clip {kind!r}" in message and path.name in message, message


def test_missing_media_offline_then_strict(tmp_path: Path, render) -> None:
    doc, out = render({"fps": 25, "clips": [{"source": "nowhere.mov", "out": 0.4, "name": "B-roll 3"}]},
                      mediaSearchPaths=[str(tmp_path)])
    assert doc["warnings"] == ["clip 'B-roll 3': media offline (file not found), slate rendered"]
    assert len(decode(out / "preview.mp4").frames) == 10
    with pytest.raises(MediaError, match="B-roll 3"):
        render({"fps": 25, "clips": [{"source": "nowhere.mov", "out": 0.4, "name": "B-roll 3"}]},
               mediaSearchPaths=[str(tmp_path)], output={"strict": True})


def test_unreadable_timeline_is_invalid_input(tmp_path: Path, render) -> None:
    for name, text in (("bad.otio", "{not json"), ("bad.edl", "001 garbage\n"), ("bad.xml", "<xmeml><oops")):
        (tmp_path / name).write_text(text)
        with pytest.raises(InvalidInput) as info:
            render(str(tmp_path / name))
        assert name in str(info.value)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInput, match="not a timeline format"):
        render(str(tmp_path / "notes.txt"))
    with pytest.raises(InvalidInput, match="file not found"):
        render(str(tmp_path / "absent.otio"))


def unprivileged_reader() -> list[str]:
    """A command prefix under which mode 000 stops the reader. As root: root without the two capabilities that
    let it read any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH dropped from the bounding set by setpriv, so the
    program run under it never holds them); otherwise nothing is needed."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run this test as root"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def test_unreadable_permission(tmp_path: Path) -> None:
    """A clip the renderer may not read: an offline slate and a warning naming it, not a crash. Runs as root too."""
    path = make_clip(tmp_path / "locked.mp4", seconds=0.2)
    path.chmod(0)
    reader = unprivileged_reader()
    try:
        probe = subprocess.run([*reader, sys.executable, "-c", f"open({str(path)!r}, 'rb')"],
                               capture_output=True, text=True, timeout=30)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr, "the clip is still readable"
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({
            "projectId": "p", "timeline": {"fps": 25, "clips": [{"source": "locked.mp4", "out": 0.2}]},
            "mediaSearchPaths": [str(tmp_path)],
            "output": {"width": 320, "height": 180, "burnIn": {"timecode": False, "clipName": False, "label": None}},
        }))
        out = tmp_path / "out"
        result = subprocess.run([*reader, sys.executable, "-m", "preview_desktop", "render", str(spec), "--out",
                                 str(out), "--json"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert any("locked.mp4" in w for w in doc["warnings"]), doc["warnings"]
        assert len(decode(out / "preview.mp4").frames) == 5  # the slate stands in for the clip's 0.2 s
    finally:
        path.chmod(0o644)
        shutil.rmtree(tmp_path / "unused", ignore_errors=True)
