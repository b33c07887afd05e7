"""The wire spec: defaults, strictness, field-named errors, and no unhandled exception on any input."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preview_desktop.core.spec import parse_spec, parse_spec_json, spec_json_schema
from preview_desktop.errors import InvalidSpec


def test_defaults_match_design() -> None:
    spec = parse_spec({"projectId": "promo_2026", "timeline": "cuts/promo_v3.otio"}).to_wire()
    assert spec["output"] == {
        "width": 640, "height": 360, "fps": None, "videoCodec": "h264", "audio": True,
        "burnIn": {"timecode": True, "clipName": False, "label": "DRAFT"}, "maxSeconds": 1800.0,
        "preset": "ultrafast", "strict": False,
    }
    assert (spec["priority"], spec["attempts"], spec["dryRun"], spec["mediaSearchPaths"]) == (5, 3, False, [])


def test_inline_timeline() -> None:
    spec = parse_spec({"projectId": "p", "timeline": {"fps": 25, "clips": [
        {"source": "a.mp4", "in": 1.0, "out": 4.0}, {"gap": 1.0}]}})
    assert spec.to_wire()["timeline"]["clips"][1] == {"gap": 1.0}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"projectId": "../etc"}, "projectId"),
        ({"projectId": ".."}, "projectId"),
        ({"projectId": "a/b"}, "projectId"),
        ({"projectId": "x" * 65}, "projectId"),
        ({"priority": -1}, "priority"),
        ({"priority": 11}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"attempts": 0}, "attempts"),
        ({"output": {"width": 8}}, "output.width"),
        ({"output": {"width": 4000}}, "output.width"),
        ({"output": {"height": 361}}, "output.height"),
        ({"output": {"maxSeconds": 5 * 3600}}, "output.maxSeconds"),
        ({"output": {"videoCodec": "prores"}}, "output.videoCodec"),
        ({"output": {"burnIn": {"colour": True}}}, "output.burnIn.colour"),
        ({"output": {"audio": "yes"}}, "output.audio"),
        ({"surprise": 1}, "surprise"),
        ({"timeline": 5}, "timeline"),
        ({"timeline": "a\x00b"}, "timeline"),
        ({"timeline": {"clips": [{"source": "a", "in": 3, "out": 1}]}}, "timeline.clips[0]"),
        ({"timeline": {"clips": [{"gap": "x"}]}}, "timeline.clips[0].gap"),
        ({"timeline": {"clips": []}}, "timeline.clips"),
        ({"mediaSearchPaths": "footage/"}, "mediaSearchPaths"),
    ],
)
def test_bad_fields_are_named(change: dict[str, Any], field: str) -> None:
    data = {"projectId": "p", "timeline": "t.otio", **change}
    with pytest.raises(InvalidSpec) as info:
        parse_spec(data)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


def test_missing_field_and_non_object() -> None:
    with pytest.raises(InvalidSpec, match="projectId: is required"):
        parse_spec({"timeline": "t.otio"})
    with pytest.raises(InvalidSpec, match="must be a JSON object"):
        parse_spec([1, 2])
    with pytest.raises(InvalidSpec, match="not valid JSON"):
        parse_spec_json(b"{nope")


def test_schema_is_generated_from_the_model() -> None:
    schema = spec_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"projectId", "timeline"}
    assert "priority" in schema["properties"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
spec_like = st.fixed_dictionaries(
    {},
    optional={
        "projectId": st.one_of(st.text(max_size=70), st.integers(), st.sampled_from(["ok", "..", "../x", "a.b"])),
        "timeline": st.one_of(st.text(max_size=30), json_values, st.fixed_dictionaries(
            {"clips": st.lists(st.one_of(json_values, st.fixed_dictionaries(
                {"source": st.text(max_size=5)}, optional={"in": json_values, "out": json_values})), max_size=3)},
            optional={"fps": json_values})),
        "output": st.one_of(json_values, st.fixed_dictionaries({}, optional={
            "width": json_values, "height": json_values, "fps": json_values, "burnIn": json_values,
            "maxSeconds": json_values})),
        "priority": json_values,
        "attempts": json_values,
        "dryRun": json_values,
        "mediaSearchPaths": json_values,
        "extra": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(spec_like)
def test_any_input_is_accepted_or_refused_cleanly(data: dict[str, Any]) -> None:
    try:
        spec = parse_spec(data)
    except InvalidSpec as exc:
        assert exc.field and str(exc)
        return
    # anything accepted round-trips through JSON unchanged
    assert parse_spec(json.loads(json.dumps(spec.to_wire()))) == spec


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_accepted_or_refused_cleanly(raw: bytes) -> None:
    with contextlib.suppress(InvalidSpec):
        parse_spec_json(raw)
