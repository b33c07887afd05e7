"""The job spec: the wire format shared by CLI files, HTTP bodies and BullMQ job data (camelCase JSON).

Validation is strict on purpose: a spec comes from other programs, and a typo that silently falls back to a
default wastes a render. Every refusal names the field (`output.width: ...`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import InvalidSpec
from .ids import PROJECT_ID_PATTERN
from .ids import PROJECT_ID_RE as PROJECT_ID_RE  # re-exported: callers import it from here

MAX_SECONDS_LIMIT = 4 * 3600
MAX_SPEC_BYTES = 4 * 1024 * 1024
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class BurnIn(_Strict):
    timecode: bool = True
    clipName: bool = False
    label: Annotated[str | None, Field(max_length=80)] = "DRAFT"


class Output(_Strict):
    width: Annotated[int, Field(ge=16, le=3840)] = 640
    height: Annotated[int, Field(ge=16, le=3840)] = 360
    fps: Annotated[float | None, Field(gt=0, le=240)] = None
    videoCodec: Literal["h264"] = "h264"
    audio: bool = True
    burnIn: BurnIn = BurnIn()
    maxSeconds: Annotated[float, Field(gt=0, le=MAX_SECONDS_LIMIT)] = 1800
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "ultrafast"
    strict: bool = False

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (H.264 4:2:0 needs even sizes)")
        return value

    @field_validator("fps", mode="before")
    @classmethod
    def _fps_number(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


class InlineClip(_Strict):
    source: Annotated[str, Field(min_length=1, max_length=4096)]
    in_: Annotated[float, Field(alias="in", ge=0)] = 0.0
    out: Annotated[float | None, Field(gt=0)] = None
    name: Annotated[str | None, Field(max_length=200)] = None

    @field_validator("in_", "out", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> InlineClip:
        if self.out is not None and self.out <= self.in_:
            raise ValueError("'out' must be greater than 'in'")
        return self


class InlineGap(_Strict):
    gap: Annotated[float, Field(gt=0, le=MAX_SECONDS_LIMIT)]

    @field_validator("gap", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


def _item_kind(value: Any) -> str:
    if isinstance(value, InlineGap) or (isinstance(value, dict) and "gap" in value):
        return "gap"
    return "clip"


InlineItem = Annotated[
    Union[Annotated[InlineClip, Tag("clip")], Annotated[InlineGap, Tag("gap")]], Discriminator(_item_kind)
]


class InlineTimeline(_Strict):
    fps: Annotated[float, Field(gt=0, le=240)] = 25.0
    clips: Annotated[list[InlineItem], Field(min_length=1, max_length=20000)]

    @field_validator("fps", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


def _timeline_kind(value: Any) -> str:
    return "inline" if isinstance(value, (dict, InlineTimeline)) else "path"


_UNION_TAGS = {"path", "inline", "clip", "gap"}


class JobSpec(_Strict):
    """A preview request. `timeline` is a path (str) or an inline clip list."""

    projectId: Annotated[str, Field(pattern=PROJECT_ID_PATTERN)]
    timeline: Annotated[
        Union[
            Annotated[Annotated[str, Field(min_length=1, max_length=4096)], Tag("path")],
            Annotated[InlineTimeline, Tag("inline")],
        ],
        Discriminator(_timeline_kind),
    ]
    output: Output = Output()
    mediaSearchPaths: Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]], Field(max_length=64)] = []
    priority: Annotated[int, Field(ge=0, le=10)] = 5
    attempts: Annotated[int, Field(ge=1, le=20)] = 3
    dryRun: bool = False
    supersede: bool = True
    # The watch folder an export was queued from (issue #18). Left out of the wire form when unset, so specs
    # from every other source are exactly what they were (older farm nodes and cache keys see no change).
    watchFolder: Annotated[str | None, Field(min_length=1, max_length=4096)] = None

    @field_validator("projectId")
    @classmethod
    def _not_dots(cls, value: str) -> str:
        if value in (".", ".."):
            raise ValueError("must not be '.' or '..'")
        return value

    @field_validator("timeline", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains a NUL byte")
        return value

    def to_wire(self) -> dict[str, Any]:
        """The canonical JSON-able dict (every field present, aliases applied; `watchFolder` only when set)."""
        return self.model_dump(mode="json", by_alias=True,
                               exclude={"watchFolder"} if self.watchFolder is None else None)

    def with_changes(self, **changes: Any) -> JobSpec:
        data = self.to_wire()
        data.update(changes)
        return parse_spec(data)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    previous: Any = None
    for item in loc:
        is_tag = item in _UNION_TAGS and (previous == "timeline" or isinstance(previous, int))
        previous = item
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif is_tag:
            continue  # union branch tags are noise for users
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts).replace(".[", "[") or "spec"


def _describe(error: Any) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "is required"
    if kind == "union_tag_invalid" or (kind == "string_type" and error["loc"][-1] == "path"):
        return "must be a path (string) or an inline timeline object"
    if kind == "string_pattern_mismatch" and error["loc"][:1] == ("projectId",):
        return "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
    msg = str(error.get("msg", "is invalid"))
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def parse_spec(data: Any) -> JobSpec:
    """Validate a decoded JSON value into a JobSpec, or raise InvalidSpec naming the first bad field."""
    if not isinstance(data, dict):
        raise InvalidSpec("spec", f"must be a JSON object, not {type(data).__name__}")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise InvalidSpec(_field_path(tuple(first["loc"])), _describe(first)) from None


def parse_spec_json(text: str | bytes) -> JobSpec:
    if len(text) > MAX_SPEC_BYTES:
        raise InvalidSpec("spec", f"is larger than {MAX_SPEC_BYTES} bytes")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSpec("spec", f"is not valid JSON ({exc})") from None
    return parse_spec(data)


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of the wire spec, generated from the same model that validates submissions."""
    return JobSpec.model_json_schema(by_alias=True)
