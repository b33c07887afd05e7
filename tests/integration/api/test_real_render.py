"""End to end through the API with the real renderer: a real timeline submitted over the socket, and every
artifact (preview.mp4, poster.jpg, thumbs.jpg, thumbs.vtt, preview.json) downloaded whole and by Range, then
judged by decoding it. The other API tests use a fake handler for speed; this one has none."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from preview_desktop.core.job import JobState
from preview_desktop.core.layout import ARTIFACT_NAMES, Layout
from preview_desktop.node import Node
from preview_desktop.settings import load_settings
from tests.support.media import make_clip
from tests.support.previews import check_preview
from tests.support.qtloop import run, settle

from .harness import TOKEN, Api

pytestmark = pytest.mark.timeout(180)
SECONDS, FPS, SIZE = 3, 25, (160, 90)
TYPES = {"preview.mp4": "video/mp4", "poster.jpg": "image/jpeg", "thumbs.jpg": "image/jpeg",
         "thumbs.vtt": "text/vtt", "preview.json": "application/json"}


@pytest.fixture
def real_api(qloop: asyncio.AbstractEventLoop, data_dir: Path) -> Iterator[Api]:
    """A Node exactly as `--worker` builds it (the real handlers), with its API, off the farm."""
    env = dict(os.environ, PREVIEW_API_TOKEN=TOKEN)
    env.pop("REDIS_URL", None)
    settings = load_settings(env=env).with_overrides(max_concurrency=1, shutdown_grace=2.0)
    api = Api(Node(settings, qloop, with_farm=False), qloop, settings)
    yield api
    run(qloop, api.shutdown())
    settle(qloop)


async def get(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


def test_a_real_render_downloads_whole_and_by_range(real_api: Api, tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    clip = make_clip(tmp_path / "media" / "shot.mp4", seconds=SECONDS, fps=FPS, tone=440.0)
    spec = {"projectId": "real_api", "timeline": {"fps": FPS, "clips": [{"source": str(clip), "in": 0,
                                                                           "out": SECONDS}]},
            "output": {"width": SIZE[0], "height": SIZE[1]}}

    async def scenario() -> dict[str, Any]:
        async with real_api.session(headers=real_api.headers) as http:
            job = await real_api.submit(http, spec)
            done = await real_api.wait_state(job["id"], JobState.SUCCEEDED, JobState.FAILED, timeout=120)
            assert done.state is JobState.SUCCEEDED, done.error
            async with http.get(f"/v1/jobs/{job['id']}/artifacts") as r:
                assert r.status == 200
                listing = {a["name"]: a for a in (await r.json())["artifacts"]}
            assert set(listing) == set(ARTIFACT_NAMES)  # all five, thumbnails included
            folder = Layout(real_api.settings.data_dir).preview_dir("real_api", job["id"])
            files: dict[str, bytes] = {}
            for name, item in listing.items():
                on_disk = (folder / name).read_bytes()
                size = len(on_disk)
                assert item["size"] == size and item["contentType"].startswith(TYPES[name]), item
                status, headers, body = await get(http, item["url"])
                assert status == 200 and headers["Content-Type"].startswith(TYPES[name]), (name, status)
                assert body == on_disk, name
                files[name] = body
                ranges = {f"bytes=0-{min(9, size - 1)}": (0, min(9, size - 1)),
                          f"bytes={size // 3}-{size // 2}": (size // 3, size // 2),
                          f"bytes={size - 7}-": (size - 7, size - 1),
                          "bytes=-5": (size - 5, size - 1),
                          f"bytes={size - 3}-{size + 100}": (size - 3, size - 1)}  # clipped to the end
                for header, (first, last) in ranges.items():
                    status, headers, body = await get(http, item["url"], Range=header)
                    assert status == 206, (name, header, status)
                    assert headers["Content-Range"] == f"bytes {first}-{last}/{size}", (name, header, headers)
                    assert body == on_disk[first: last + 1], (name, header)
                for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}"):
                    status, headers, _ = await get(http, item["url"], Range=header)
                    assert status == 416, (name, header, status)
                    assert headers.get("Content-Range") == f"bytes */{size}", (name, headers)
            async with aiohttp.ClientSession() as player:  # a player with only the signed link, scrubbing
                mp4 = listing["preview.mp4"]
                status, _, body = await get(player, mp4["signedUrl"], Range="bytes=100-")
                assert status == 206 and body == files["preview.mp4"][100:]
            return files

    files = real_api.run(scenario(), timeout=150)
    summary = check_preview(files, frames=SECONDS * FPS, size=SIZE)
    assert summary["status"] == "succeeded" and summary["video"]["audio"] == "aac"
    assert summary["thumbnails"]["count"] == SECONDS  # one a second for a short preview
