"""Cutting a plan's segments into farm chunks: whole segments only, contiguous, balanced by frames."""

from __future__ import annotations

import itertools

import pytest

from preview_desktop.errors import RenderError
from preview_desktop.render.chunks import Chunk, split_segments
from preview_desktop.render.segments import Segment


def _segments(lengths: list[int]) -> list[Segment]:
    out, start = [], 0
    for number, length in enumerate(lengths):
        out.append(Segment(start, start + length, f"v{number:064x}"))
        start += length
    return out


def _check_partition(segments: list[Segment], chunks: list[Chunk]) -> None:
    assert chunks[0].first_segment == 0 and chunks[-1].stop_segment == len(segments)
    for before, after in itertools.pairwise(chunks):
        assert before.stop_segment == after.first_segment and before.stop == after.start
    for index, chunk in enumerate(chunks):
        part = segments[chunk.first_segment: chunk.stop_segment]
        assert chunk.index == index and part
        assert (chunk.start, chunk.stop) == (part[0].start, part[-1].stop)  # whole segments, never split
        assert chunk.keys == tuple(s.key for s in part)


def test_balanced_by_frames_not_by_segment_count() -> None:
    segments = _segments([50] * 10 + [10] * 50)  # 1000 frames: long segments first
    chunks = split_segments(segments, 4)
    _check_partition(segments, chunks)
    assert [c.frames for c in chunks] == [250, 250, 250, 250]
    uneven = _segments([50, 50, 50, 37, 50, 13, 50, 50, 50])
    chunks = split_segments(uneven, 3)
    _check_partition(uneven, chunks)
    assert max(c.frames for c in chunks) - min(c.frames for c in chunks) <= 50


def test_fewer_chunks_when_short_or_few_segments() -> None:
    segments = _segments([50] * 6)
    assert len(split_segments(segments, 10)) == 6  # one segment each at most
    assert len(split_segments(segments, 10, min_frames=100)) == 3
    assert len(split_segments(segments, 4, min_frames=1000)) == 1
    assert split_segments([], 3) == []
    one = split_segments(_segments([7]), 5)
    assert len(one) == 1 and one[0].frames == 7


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 13, 29])
def test_any_count_partitions(count: int) -> None:
    segments = _segments([(n * 37) % 50 + 1 for n in range(29)])
    chunks = split_segments(segments, count)
    assert len(chunks) == count
    _check_partition(segments, chunks)


def test_wire_round_trip() -> None:
    chunk = split_segments(_segments([50] * 4), 2)[1]
    assert Chunk.from_wire(chunk.to_wire()) == chunk
    with pytest.raises(RenderError, match="malformed chunk"):
        Chunk.from_wire({"index": 0, "segments": [3, 1], "frames": [0, 10]})
    with pytest.raises(RenderError, match="malformed chunk"):
        Chunk.from_wire({"index": 0})
