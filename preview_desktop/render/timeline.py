"""Any supported input → an OpenTimelineIO timeline → a render Plan at the output frame rate.

Every input goes through OTIO and its adapters (no home-made parsers): .otio/.otioz, CMX3600 EDL, FCP 7 XML,
FCPXML. A single media file and the inline clip list are turned into OTIO timelines first, so one code path
(`plan_from_otio`) decides overlaps, dissolves, speed changes and media resolution for all of them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.layout import check_path_text, contain, resolve_media
from ..core.pathmap import PathMap
from ..core.spec import InlineGap, InlineTimeline, JobSpec
from ..errors import InvalidInput, UnsafePath
from . import media
from .files import file_digest
from .plan import Layer, Plan, Source, to_frames

if TYPE_CHECKING:

    from ..settings import Settings

TIMELINE_FORMATS = {
    ".otio": ("otio", "otio_json"),
    ".otioz": ("otioz", "otioz"),
    ".edl": ("edl", "cmx_3600"),
    ".fcpxml": ("fcpxml", "fcpx_xml"),
}
_EDL_TC_RE = re.compile(r"\b\d\d:\d\d:\d\d[:;](\d\d)\b")


@dataclass
class Loaded:
    """A parsed timeline and where its relative paths resolve."""

    timeline: Any  # otio.schema.Timeline
    format: str
    source_text: str
    digest: str
    base_dirs: list[Path]
    roots: list[Path]
    rate: float
    warnings: list[str] = field(default_factory=list)
    path_map: PathMap = field(default_factory=PathMap)  # media references written on other machines


def search_dirs(spec: JobSpec) -> list[Path]:
    dirs: list[Path] = []
    for text in spec.mediaSearchPaths:
        check_path_text(text, "mediaSearchPaths entry")
        dirs.append(Path(text).expanduser())
    return dirs


def load(spec: JobSpec, settings: Settings) -> Loaded:
    """Parse the spec's timeline into OTIO. Raises InvalidInput (or UnsafePath) for unusable input."""
    roots = list(settings.effective_media_roots)
    searches = search_dirs(spec)
    if isinstance(spec.timeline, InlineTimeline):
        canonical = json.dumps(spec.timeline.model_dump(mode="json", by_alias=True), sort_keys=True)
        return Loaded(
            timeline=_inline_to_otio(spec.timeline),
            format="inline",
            source_text="inline",
            digest="sha256:" + hashlib.sha256(canonical.encode()).hexdigest(),
            base_dirs=searches,
            roots=roots,
            rate=spec.timeline.fps,
            path_map=settings.path_map,
        )
    text = check_path_text(spec.timeline, "timeline")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (searches[0] if searches else Path.cwd()) / path
    real = contain(path, roots, "timeline")
    if not real.is_file():
        raise InvalidInput(f"timeline {text!r}: file not found", path=str(path))
    base_dirs = [real.parent, *searches]
    suffix = real.suffix.lower()
    fmt, adapter = TIMELINE_FORMATS.get(suffix, ("", ""))
    if suffix == ".xml":
        head = real.read_bytes()[:4096].lower()
        fmt, adapter = ("fcpxml", "fcpx_xml") if b"<fcpxml" in head else ("fcp7xml", "fcp_xml")
    digest = file_digest(real)
    if not adapter:
        return _media_timeline(real, text, digest, base_dirs, roots)  # its one reference is `real` itself
    import opentimelineio as otio

    kwargs: dict[str, Any] = {}
    rate = spec.output.fps or 0.0
    if adapter == "cmx_3600":
        rate = rate or _guess_edl_rate(real)
        kwargs["rate"] = rate
    elif adapter == "otioz":
        extract = settings.data_dir / "cache" / "otioz" / digest.split(":", 1)[1][:32]
        extract.mkdir(parents=True, exist_ok=True)
        kwargs["extract_to_directory"] = str(extract)
        roots.append(extract)
        base_dirs.insert(0, extract)
    try:
        timeline = otio.adapters.read_from_file(str(real), adapter_name=adapter, **kwargs)
    except Exception as exc:  # adapters raise anything from ValueError to their own types
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"timeline {text!r}: cannot be read as {fmt.upper()} ({reason})") from None
    if isinstance(timeline, otio.schema.SerializableCollection):
        found = list(timeline.find_children(descended_from_type=otio.schema.Timeline))
        if not found:
            raise InvalidInput(f"timeline {text!r}: holds no timeline")
        timeline = found[0]
    if not isinstance(timeline, otio.schema.Timeline):
        raise InvalidInput(f"timeline {text!r}: holds a {type(timeline).__name__}, not a timeline")
    return Loaded(timeline, fmt, text, digest, base_dirs, roots, rate or _otio_rate(timeline),
                  path_map=settings.path_map)


def _guess_edl_rate(path: Path) -> float:
    """EDLs carry no rate: the largest frame field decides between 24, 25 and 30 (override with output.fps)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    top = max((int(m.group(1)) for m in _EDL_TC_RE.finditer(text)), default=0)
    return 24.0 if top < 24 else 25.0 if top < 25 else 30.0


def _otio_rate(timeline: Any) -> float:
    if timeline.global_start_time is not None:
        return float(timeline.global_start_time.rate)
    for clip in timeline.find_clips():
        if clip.source_range is not None:
            return float(clip.source_range.duration.rate)
    return 24.0


def _media_timeline(path: Path, text: str, digest: str, base_dirs: list[Path], roots: list[Path]) -> Loaded:
    import opentimelineio as otio

    source = media.probe(path)
    if source.kind == "offline":
        raise InvalidInput(f"timeline {text!r}: not a timeline format or readable media ({source.reason})")
    rate = source.rate if source.kind == "video" else 25.0
    timeline = otio.schema.Timeline(name=path.stem)
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    duration = source.duration or (5.0 if source.kind == "still" else 0.0)
    clip = otio.schema.Clip(
        name=path.name,
        media_reference=otio.schema.ExternalReference(target_url=str(path)),
        source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, rate), otio.opentime.from_seconds(duration, rate)
        ),
    )
    track.append(clip)
    timeline.tracks.append(track)
    return Loaded(timeline, "media", text, digest, base_dirs, roots, rate)


def _inline_to_otio(inline: InlineTimeline) -> Any:
    import opentimelineio as otio

    rate = inline.fps
    timeline = otio.schema.Timeline(name="inline")
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for item in inline.clips:
        if isinstance(item, InlineGap):
            track.append(otio.schema.Gap(duration=otio.opentime.from_seconds(item.gap, rate)))
            continue
        clip = otio.schema.Clip(
            name=item.name or re.split(r"[\\/]", item.source)[-1],  # `Z:\\media\\a.mov` is `a.mov` everywhere
            media_reference=otio.schema.ExternalReference(target_url=item.source),
        )
        if item.out is not None:
            clip.source_range = otio.opentime.range_from_start_end_time(
                otio.opentime.from_seconds(item.in_, rate), otio.opentime.from_seconds(item.out, rate)
            )
        else:
            clip.metadata["preview_desktop"] = {"in": item.in_}
        track.append(clip)
    timeline.tracks.append(track)
    return timeline


# ---------------------------------------------------------------------------------------------------------
# OTIO → Plan


class _Resolver:
    """Resolves and probes each media reference once per plan (many clips share a file)."""

    def __init__(self, loaded: Loaded, probe: bool) -> None:
        self.loaded = loaded
        self.probe = probe
        self.cache: dict[str, Source] = {}

    def source_for(self, clip: Any, plan: Plan) -> Source:
        import opentimelineio as otio

        ref = clip.media_reference
        name = clip.name or "unnamed"
        what = f"clip {name!r} media"
        if isinstance(ref, otio.schema.ImageSequenceReference):
            base = ref.target_url_base or "."
            folder = resolve_media(base.rstrip("/\\") or "/", self.loaded.base_dirs, self.loaded.roots, what,
                                   self.loaded.path_map)
            pattern = folder / f"{ref.name_prefix}%0{ref.frame_zero_padding}d{ref.name_suffix}"
            return self._cached(
                f"seq:{pattern}:{ref.start_frame}",
                lambda: media.probe_sequence(pattern, float(ref.rate), ref.start_frame),
            )
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
            path = resolve_media(ref.target_url, self.loaded.base_dirs, self.loaded.roots, what,
                                 self.loaded.path_map)
            if media._PRINTF_RE.search(path.name):
                return self._cached(f"seq:{path}", lambda: media.probe_sequence(path, self.loaded.rate))
            return self._cached(str(path), lambda: self._probe_file(path))
        if isinstance(ref, otio.schema.GeneratorReference):
            plan.warn(f"clip {name!r}: generator {ref.generator_kind!r} not supported, rendered black")
            return Source(kind="black")
        # MissingReference (EDL events) or an empty reference: relink by clip name or reel name
        reel = (clip.metadata.get("cmx_3600") or {}).get("reel") if hasattr(clip, "metadata") else None
        names = [name, *([reel] if isinstance(reel, str) and reel not in ("BL", "AX") else [])]
        found = media.relink(names, self.loaded.base_dirs, self.loaded.roots)
        if found is None:
            return media.offline(None, "no media path and nothing found by clip or reel name")
        return self._cached(str(found), lambda: self._probe_file(found))

    def _probe_file(self, path: Path) -> Source:
        if not self.probe:
            return Source(kind="still" if path.suffix.lower() in media.IMAGE_EXTS else "video", path=path)
        return media.probe(path)

    def _cached(self, key: str, make: Any) -> Source:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


def build_plan(spec: JobSpec, settings: Settings, loaded: Loaded | None = None) -> tuple[Plan, Loaded]:
    """The whole input stage: parse, resolve, probe, place. Raises InvalidInput for unusable input."""
    loaded = loaded or load(spec, settings)
    fps = float(spec.output.fps or loaded.rate)
    plan = Plan(fps=fps, frames=0, width=spec.output.width, height=spec.output.height)
    plan.timeline_format = loaded.format
    plan.warnings.extend(loaded.warnings)
    plan_from_otio(loaded, plan, _Resolver(loaded, probe=True))
    limit = to_frames(spec.output.maxSeconds, fps)
    if plan.frames > limit:
        plan.warn(
            f"timeline is {plan.frames / fps:.1f} s long; preview truncated to output.maxSeconds "
            f"({spec.output.maxSeconds:g} s)"
        )
        plan.frames = limit
        plan.video = [layer for layer in plan.video if layer.first < limit]
        plan.audio = [layer for layer in plan.audio if layer.first < limit]
    if plan.frames <= 0:
        raise InvalidInput(f"timeline {loaded.source_text!r}: is empty (no clips with a duration)")
    return plan, loaded


def plan_from_otio(loaded: Loaded, plan: Plan, resolver: _Resolver) -> None:
    import opentimelineio as otio

    timeline = loaded.timeline
    fps = plan.fps
    if timeline.global_start_time is not None:
        plan.start_frame = to_frames(timeline.global_start_time.to_seconds(), fps)
    _fill_source_ranges(timeline, plan, resolver)
    end = 0
    clips: set[int] = set()
    video_tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    audio_tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    for index, track in enumerate(video_tracks):
        if not track.enabled:
            continue
        layers = _track_layers(track, index, plan, resolver, "clip")
        clips.update(id(layer) for layer in layers if layer.source.kind != "black")
        plan.video.extend(layers)
        end = max(end, to_frames(track.duration().to_seconds(), fps))
    for index, track in enumerate(audio_tracks):
        if not track.enabled:
            continue
        layers = _track_layers(track, index, plan, resolver, "audio clip")
        for layer in layers:
            if layer.source.kind == "offline":
                plan.warn(f"audio clip {layer.name!r}: media offline ({layer.source.reason}), silence rendered")
        plan.audio.extend(layer for layer in layers if layer.source.has_audio)
        end = max(end, to_frames(track.duration().to_seconds(), fps))
    if not audio_tracks:
        plan.audio = [layer for layer in plan.video if layer.source.has_audio]
    for layer in plan.video:
        if layer.source.kind == "offline":
            plan.warn(f"clip {layer.name!r}: media offline ({layer.source.reason}), slate rendered")
    plan.clip_count = len(clips)
    plan.frames = max(end, max((layer.last for layer in plan.video), default=0))


def _track_layers(track: Any, index: int, plan: Plan, resolver: _Resolver, what: str) -> list[Layer]:
    """One track's clips placed in output frames, with dissolve handles from its transitions."""
    import opentimelineio as otio

    fps = plan.fps
    layers: list[Layer | None] = []
    children = list(track)
    for i, item in enumerate(children):
        if isinstance(item, otio.schema.Transition):
            layers.append(None)
            continue
        if isinstance(item, otio.schema.Gap) or not item.enabled:
            layers.append(None)
            continue
        if not isinstance(item, otio.schema.Clip):
            plan.warn(f"{what} {item.name!r}: nested {type(item).__name__} not supported, rendered as a gap")
            layers.append(None)
            continue
        layers.append(_clip_layer(item, track, i, index, plan, resolver))
    for i, item in enumerate(children):
        if not isinstance(item, otio.schema.Transition):
            continue
        if item.transition_type != otio.schema.TransitionTypes.SMPTE_Dissolve:
            plan.warn(f"transition {item.name or item.transition_type!r}: rendered as a dissolve")
        cut = None
        before = layers[i - 1] if i > 0 else None
        after = layers[i + 1] if i + 1 < len(layers) else None
        if i + 1 < len(children):
            cut = to_frames(track.range_of_child_at_index(i + 1).start_time.to_seconds(), fps)
        elif i > 0:
            cut = to_frames(track.range_of_child_at_index(i - 1).end_time_exclusive().to_seconds(), fps)
        if cut is None:
            continue
        start = cut - to_frames(item.in_offset.to_seconds(), fps)
        stop = cut + to_frames(item.out_offset.to_seconds(), fps)
        if stop <= start:
            continue
        if before is not None:
            before.fade_out = (start, stop)
        if after is not None:
            after.fade_in = (start, stop)
    return [layer for layer in layers if layer is not None]


def _clip_layer(clip: Any, track: Any, i: int, index: int, plan: Plan, resolver: _Resolver) -> Layer | None:
    import opentimelineio as otio

    fps = plan.fps
    name = clip.name or "unnamed"
    try:
        source = resolver.source_for(clip, plan)
    except UnsafePath as exc:
        raise UnsafePath(f"clip {name!r}: {exc.message}") from None
    speed = 1.0
    for effect in clip.effects:
        if isinstance(effect, otio.schema.LinearTimeWarp):
            speed *= float(effect.time_scalar)
        else:
            plan.warn(f"clip {name!r}: effect {effect.effect_name or effect.name or 'unnamed'!r} ignored")
    if speed < 0:
        plan.warn(f"clip {name!r}: reverse speed not supported, played forward")
        speed = -speed
    src_in, rec_range = _ranges(clip, track, i, source)
    rec_in = to_frames(rec_range[0], fps)
    rec_out = to_frames(rec_range[1], fps)
    if rec_out <= rec_in:
        return None
    return Layer(name=name, source=source, track=index, rec_in=rec_in, rec_out=rec_out, src_in=src_in, speed=speed)


DEFAULT_STILL_SECONDS = 5.0


def _fill_source_ranges(timeline: Any, plan: Plan, resolver: _Resolver) -> None:
    """Clips without a source range (inline clips without `out`) take the rest of their media."""
    import opentimelineio as otio

    for clip in timeline.find_clips():
        if clip.source_range is not None:
            continue
        rate = plan.fps
        start = float((clip.metadata.get("preview_desktop") or {}).get("in", 0.0))
        available = getattr(clip.media_reference, "available_range", None)
        if available is not None:
            clip.source_range = available
            continue
        try:
            source = resolver.source_for(clip, plan)
        except UnsafePath as exc:
            raise UnsafePath(f"clip {clip.name!r}: {exc.message}") from None
        if source.duration is not None and source.kind != "still":
            length = source.duration - start
        else:
            length = DEFAULT_STILL_SECONDS
            if source.kind == "offline":
                plan.warn(f"clip {clip.name!r}: media offline and no 'out' given; {length:g} s slate")
        if length <= 0:
            raise InvalidInput(f"clip {clip.name!r}: 'in' ({start:g} s) is past the end of its media")
        clip.source_range = otio.opentime.TimeRange(
            otio.opentime.from_seconds(start, rate), otio.opentime.from_seconds(length, rate)
        )


def _ranges(clip: Any, track: Any, i: int, source: Source) -> tuple[float, tuple[float, float]]:
    """(source in, seconds from the media's first frame; (record in, record out) seconds) of a clip."""
    import opentimelineio as otio

    ref = clip.media_reference
    rng = track.range_of_child_at_index(i)
    src = clip.source_range.start_time
    origin = 0.0
    available = getattr(ref, "available_range", None)
    if available is not None and not isinstance(ref, otio.schema.ImageSequenceReference):
        origin = available.start_time.to_seconds()
    elif source.timecode is not None and src.to_seconds() >= source.timecode:
        origin = source.timecode
    return src.to_seconds() - origin, (rng.start_time.to_seconds(), rng.end_time_exclusive().to_seconds())
