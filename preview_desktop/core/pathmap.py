"""Path mapping between platforms: the same media seen as `Z:\\media` on Windows, `/Volumes/media` on a Mac
and `/mnt/media` on a Linux render node.

A map is a list of FROM=TO prefix pairs (PREVIEW_PATH_MAP, docs/configuration.md). Applied wherever a path
written on another machine enters: the spec's timeline path and mediaSearchPaths (core/intake.py) and every
media reference inside a timeline file (core/layout.resolve_media). The longest matching FROM wins. A Windows
FROM (a drive `Z:` or a UNC `\\\\server\\share`) matches case-insensitively with `\\` or `/` as separators, as
Windows itself does; a POSIX FROM matches exactly. The rest of the path has its separators converted to the
TO side's style. Prefixes match whole components only: `Z:\\media` never maps `Z:\\media2\\a.mov`.

Pure string work, no file-system calls and no environment reads: the map is parsed once into Settings and passed
down, and the media-root check still runs on the mapped path afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# `Z:`, `Z:\...`, `Z:/...`; `\\server\share...` or `//server/share...`; and `/Z:/...` (the path of a
# file:///Z:/... URL, as FCP XML written on Windows holds)
_DRIVE_RE = re.compile(r"^/?([A-Za-z]):(?:[\\/]|$)")
_UNC_RE = re.compile(r"^[\\/]{2}[^\\/]+[\\/][^\\/]+")
PAIR_SEPARATOR = ";"


def is_windows_path(text: str) -> bool:
    """A drive (`Z:\\...`) or UNC (`\\\\server\\share\\...`) path, whatever platform we run on."""
    return bool(_DRIVE_RE.match(text) or _UNC_RE.match(text))


def _parts(text: str, windows: bool) -> list[str]:
    """The components of a path: split on both separators for Windows paths, on `/` for POSIX ones."""
    pieces = re.split(r"[\\/]", text) if windows else text.split("/")
    return [piece for piece in pieces if piece not in ("", ".")]


def _windows_key(text: str) -> list[str]:
    """Components of a Windows path for comparison: case folded, a leading `/` before the drive dropped."""
    if text.startswith("/") and _DRIVE_RE.match(text) and not _UNC_RE.match(text):
        text = text[1:]
    unc = bool(_UNC_RE.match(text))
    parts = [part.casefold() for part in _parts(text, True)]
    return ["\\\\", *parts] if unc else parts


@dataclass(frozen=True)
class PathPair:
    source: str  # FROM as written (trailing separators dropped)
    target: str  # TO as written (trailing separators dropped, except a bare root)

    @property
    def windows(self) -> bool:
        return is_windows_path(self.source)

    def key(self) -> list[str]:
        return _windows_key(self.source) if self.windows else _parts(self.source, False)


@dataclass(frozen=True)
class PathMap:
    """Ordered FROM=TO prefix pairs; `apply` maps one path text. Immutable, hashable, cheap to pass around."""

    pairs: tuple[PathPair, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __str__(self) -> str:
        return PAIR_SEPARATOR.join(f"{pair.source}={pair.target}" for pair in self.pairs)

    def apply(self, text: str) -> str:
        """`text` with the longest matching FROM prefix replaced by its TO; unchanged when nothing matches."""
        best: tuple[int, PathPair, list[str]] | None = None
        windows_text: list[str] | None = None
        posix_text: list[str] | None = None
        for pair in self.pairs:
            if pair.windows:
                if not is_windows_path(text):
                    continue
                windows_text = windows_text if windows_text is not None else _windows_key(text)
                candidate = windows_text
            else:
                if not text.startswith("/"):
                    continue
                posix_text = posix_text if posix_text is not None else _parts(text, False)
                candidate = posix_text
            prefix = pair.key()
            if candidate[: len(prefix)] != prefix:
                continue
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), pair, prefix)
        if best is None:
            return text
        length, pair, _prefix = best
        windows = pair.windows
        original = text[1:] if windows and text.startswith("/") and not _UNC_RE.match(text) else text
        rest = _parts(original, windows)
        rest = rest[length - 1:] if windows and _UNC_RE.match(original) else rest[length:]
        if not rest:
            return pair.target
        separator = "\\" if is_windows_path(pair.target) else "/"
        joiner = "" if pair.target.endswith(("/", "\\")) else separator
        return pair.target + joiner + separator.join(rest)


def _clean(text: str, what: str, raw: str) -> str:
    text = text.strip()
    if not text:
        raise ValueError(f"{what} is empty in {raw!r}")
    stripped = text.rstrip("\\/")
    if not stripped:
        if what == "FROM":
            raise ValueError(f"FROM {text!r} would map every path; name a folder")
        return text  # TO may be the root
    if re.fullmatch(r"[A-Za-z]:", stripped) and what == "TO":
        return stripped + "\\"  # `Z:` alone means the drive's current folder to Windows: use its root
    if not (is_windows_path(stripped) or stripped.startswith("/")):
        raise ValueError(f"{what} {text!r} is not an absolute path (a drive, a UNC share or /...)")
    return stripped


def parse_path_map(value: str | Mapping[str, str] | Iterable[str] | None) -> PathMap:
    """Parse `FROM=TO;FROM=TO` (also newlines between pairs), a {FROM: TO} mapping or a list of `FROM=TO`.

    Raises ValueError with a message naming the bad pair; the caller adds the variable's name. `;` separates
    pairs because `:` is in every drive letter and os.pathsep is `;` on Windows but `:` elsewhere, so one
    value works in every node's environment; a path holding `;` or a FROM holding `=` cannot be mapped.
    """
    if value is None:
        return PathMap()
    items: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        items = [(str(k), str(v)) for k, v in value.items()]
    else:
        texts = re.split(r"[;\n]", value) if isinstance(value, str) else [str(item) for item in value]
        for text in texts:
            if not text.strip():
                continue
            if "=" not in text:
                raise ValueError(f"{text.strip()!r} is not FROM=TO")
            source, target = text.split("=", 1)
            items.append((source, target))
    pairs: list[PathPair] = []
    seen: set[tuple[str, ...]] = set()
    for source, target in items:
        raw = f"{source.strip()}={target.strip()}"
        pair = PathPair(_clean(source, "FROM", raw), _clean(target, "TO", raw))
        key = (str(pair.windows), *pair.key())
        if key in seen:
            raise ValueError(f"FROM {pair.source!r} is given twice")
        seen.add(key)
        pairs.append(pair)
    return PathMap(tuple(pairs))


def map_path(text: str, path_map: PathMap | None) -> str:
    """`path_map.apply(text)`, or `text` when there is no map (most callers hold an optional map)."""
    return path_map.apply(text) if path_map else text
