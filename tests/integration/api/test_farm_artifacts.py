"""A farm preview published into the farm storage (a chunked one) is served by every node that mounts it:
GET /v1/farm/jobs/{id}/artifacts lists its files with signed URLs, a player opens them without the token, and a
signature for a local job's file never opens a farm file (or the other way round). Real MP4, real API socket."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from preview_desktop.core.layout import FarmLayout
from tests.support.media import make_clip

from .harness import Api


def publish_farm_preview(storage: Path, farm_job_id: str) -> bytes:
    """What a chunked farm render leaves in the farm storage: a complete folder, renamed into place."""
    layout = FarmLayout(storage)
    staging = layout.staging_dir("promo", farm_job_id)
    make_clip(staging / "preview.mp4", seconds=0.5, size=(160, 90))
    (staging / "preview.json").write_text(json.dumps({"jobId": farm_job_id, "status": "succeeded"}))
    layout.publish(staging, "promo", farm_job_id)
    return (layout.preview_dir("promo", farm_job_id) / "preview.mp4").read_bytes()


def test_every_node_serves_a_farm_preview_from_the_farm_storage(make_api: Callable[..., Api], tmp_path: Path) -> None:
    storage = tmp_path / "farm-storage"
    mp4 = publish_farm_preview(storage, "42")
    api = make_api(farm_storage=storage)

    async def scenario() -> None:
        async with api.session(headers=api.headers) as http:
            async with http.get("/v1/farm/jobs/42/artifacts") as r:
                assert r.status == 200
                listing = await r.json()
            async with http.get("/v1/farm/jobs/43/artifacts") as r:
                assert r.status == 404 and "no published preview" in (await r.json())["error"]["message"]
            async with http.get("/v1/farm/jobs/42/artifacts/preview.mp4") as r:
                assert r.status == 200 and await r.read() == mp4
        assert listing["farmJobId"] == "42"
        names = sorted(item["name"] for item in listing["artifacts"])
        assert names == ["preview.json", "preview.mp4"]
        signed = next(item["signedUrl"] for item in listing["artifacts"] if item["name"] == "preview.mp4")
        async with api.session() as anonymous:  # a video player: no token, only the signed link
            async with anonymous.get(signed, headers={"Range": "bytes=0-9"}) as r:
                assert r.status == 206 and await r.read() == mp4[:10]
            async with anonymous.get(signed.replace("/42/", "/420/")) as r:
                assert r.status == 403  # the signature names farm job 42 only
            local_sig = api.node.api.auth.signer.sign("42", "preview.mp4")  # a local-style signature
            async with anonymous.get(f"{api.url}/v1/farm/jobs/42/artifacts/preview.mp4",
                                     params={"exp": str(local_sig.exp), "sig": local_sig.sig}) as r:
                assert r.status == 403

    api.run(scenario())


def test_a_node_without_farm_storage_says_so(make_api: Callable[..., Api]) -> None:
    api = make_api()

    async def scenario() -> tuple[int, str]:
        async with api.session(headers=api.headers) as http, http.get("/v1/farm/jobs/42/artifacts") as r:
            return r.status, (await r.json())["error"]["message"]

    status, message = api.run(scenario())
    assert status == 404 and "PREVIEW_FARM_STORAGE" in message
