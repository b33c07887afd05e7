"""JobService: the one way in. Intake happens here (paths and wire data alike), store rules apply, and farm
actions on a node without a farm say so. The farm side runs against a real Redis in tests/integration/farm."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from preview_desktop.core.job import JobState
from preview_desktop.core.submission import PathSource, WireSource
from preview_desktop.errors import FarmDisabled, InvalidSpec, QueueFull, UnsafePath
from preview_desktop.queue.base import JobStore
from preview_desktop.queue.local import LocalStore
from preview_desktop.queue.memory import MemoryStore
from preview_desktop.service.jobs import JobService, inline


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    """The service is the same over either store (the in-memory one is what fast tests use)."""
    s: JobStore = MemoryStore(queue_max=2) if request.param == "memory" else LocalStore(tmp_path / "q", queue_max=2)
    yield s
    s.close()


@pytest.fixture
def service(store: JobStore, tmp_path: Path) -> JobService:
    return JobService(store, [tmp_path], inline)


def test_a_path_is_made_absolute_and_checked_once(service: JobService, tmp_path: Path) -> None:
    (tmp_path / "cuts").mkdir()
    (tmp_path / "cuts" / "promo v3.otio").write_text("{}")
    job = asyncio.run(service.submit(PathSource("cuts/promo v3.otio", tmp_path, {"priority": 7})))
    assert job.spec["timeline"] == str(tmp_path / "cuts" / "promo v3.otio")
    assert (job.project_id, job.priority, job.state) == ("promo_v3", 7, JobState.QUEUED)


def test_wire_data_gets_the_same_intake(service: JobService, tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="colour"):
        asyncio.run(service.submit(WireSource({"projectId": "p", "timeline": "x.otio", "colour": "red"})))
    with pytest.raises(UnsafePath, match="PREVIEW_MEDIA_ROOTS"):
        asyncio.run(service.submit(WireSource({"projectId": "p", "timeline": "/etc/hostname"})))
    inline_spec = {"projectId": "p", "timeline": {"fps": 25, "clips": [{"source": "a.mp4"}]}}
    job = asyncio.run(service.submit(WireSource(inline_spec)))
    assert job.spec["mediaSearchPaths"] == [str(tmp_path)]  # relative media resolve against the first root


def test_store_rules_hold_through_the_service(service: JobService, tmp_path: Path) -> None:
    spec = {"projectId": "p", "timeline": {"fps": 25, "clips": [{"gap": 1}]}}
    first = asyncio.run(service.submit(WireSource(spec)))
    asyncio.run(service.submit(WireSource(spec)))
    with pytest.raises(QueueFull):
        asyncio.run(service.submit(WireSource(spec)))
    assert asyncio.run(service.set_priority(first.id, 42)).priority == 10  # clamped to the spec's range
    assert asyncio.run(service.cancel(first.id)).state is JobState.CANCELLED
    assert asyncio.run(service.counts())["cancelled"] == 1


def test_farm_actions_without_a_farm_say_so(service: JobService) -> None:
    assert service.farm_status() is None and not service.farm_enabled
    with pytest.raises(FarmDisabled):
        asyncio.run(service.submit_to_farm(WireSource({"projectId": "p", "timeline": {"fps": 25, "clips": []}})))
    with pytest.raises(FarmDisabled):
        asyncio.run(service.cancel_farm_job("1", "because"))


def test_paths_from_another_platform_are_mapped_at_intake(store: JobStore, tmp_path: Path) -> None:
    """A spec written on Windows (Z:\\media\\...) queues on this machine through PREVIEW_PATH_MAP, and the
    media roots still apply after the mapping."""
    from preview_desktop.core.pathmap import parse_path_map

    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "cut.otio").write_text("{}")
    mapped = JobService(store, [tmp_path], inline, path_map=parse_path_map(f"Z:\\media={tmp_path / 'media'}"))
    job = asyncio.run(mapped.submit(WireSource({"projectId": "p", "timeline": "Z:\\media\\cut.otio"})))
    assert job.spec["timeline"] == str(tmp_path / "media" / "cut.otio")
    outside = JobService(store, [tmp_path / "media" / "sub"], inline,
                         path_map=parse_path_map(f"Z:\\media={tmp_path / 'media'}"))
    with pytest.raises(UnsafePath, match="PREVIEW_MEDIA_ROOTS"):
        asyncio.run(outside.submit(WireSource({"projectId": "p", "timeline": "Z:\\media\\cut.otio"})))
