"""Artifacts over a real socket: listing, download, Range requests, signed URLs (expiry, tampering), 404s."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from preview_desktop.core.job import JobState
from preview_desktop.core.layout import Layout

from .harness import Api, inline_spec

pytestmark = pytest.mark.timeout(120)


def test_artifacts_listing_download_range_and_signed_urls(api: Api, mp4_bytes: bytes) -> None:
    async def scenario() -> None:
        async with api.session(headers=api.headers) as http:
            job = await api.submit(http, inline_spec(seconds=0.1, project="promo"))
            async with http.get(f"/v1/jobs/{job['id']}/artifacts") as r:
                listing = await r.json()
                assert r.status == 200 and listing["artifacts"] == []  # not finished yet
            await api.wait_state(job["id"], JobState.SUCCEEDED)
            folder = Layout(api.settings.data_dir).preview_dir("promo", job["id"])
            (folder / "notes.txt").write_text("not an artifact", encoding="utf-8")
            (folder / "thumbs.vtt").symlink_to(api.settings.data_dir / "api-token")  # must not be followed out

            async with http.get(f"/v1/jobs/{job['id']}/artifacts", params={"expires": "120"}) as r:
                listing = await r.json()
            items = {a["name"]: a for a in listing["artifacts"]}
            assert set(items) == {"preview.mp4", "preview.json", "poster.jpg"}
            mp4 = items["preview.mp4"]
            assert mp4["size"] == len(mp4_bytes) and mp4["contentType"] == "video/mp4"
            assert mp4["url"] == f"{api.url}/v1/jobs/{job['id']}/artifacts/preview.mp4"
            assert abs(mp4["expiresAt"] - (time.time() + 120)) < 5

            async with http.get(mp4["url"]) as r:  # with the token
                assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
                assert await r.read() == mp4_bytes
            async with http.get(mp4["url"], headers={"Range": "bytes=100-1099"}) as r:
                assert r.status == 206 and r.headers["Content-Range"] == f"bytes 100-1099/{len(mp4_bytes)}"
                assert await r.read() == mp4_bytes[100:1100]
            async with http.get(mp4["url"], headers={"Range": "bytes=-500"}) as r:
                assert r.status == 206 and await r.read() == mp4_bytes[-500:]
            async with http.get(mp4["url"], headers={"Range": f"bytes={len(mp4_bytes) + 10}-"}) as r:
                assert r.status == 416
            async with http.get(items["preview.json"]["url"]) as r:
                assert r.headers["Content-Type"].startswith("application/json")
                assert (await r.json())["jobId"] == job["id"]
            for name in ("notes.txt", "thumbs.vtt", "thumbs.jpg", "..%2F..%2F..%2Fapi-token", "%2e%2e"):
                async with http.get(f"/v1/jobs/{job['id']}/artifacts/{name}") as r:
                    assert r.status == 404, name

        async with aiohttp.ClientSession() as anonymous:  # a browser or player: no token, only the signed URL
            async with anonymous.get(mp4["signedUrl"]) as r:
                assert r.status == 200 and await r.read() == mp4_bytes
            async with anonymous.get(mp4["signedUrl"], headers={"Range": "bytes=0-9"}) as r:
                assert r.status == 206 and await r.read() == mp4_bytes[:10]
            async with anonymous.get(mp4["url"]) as r:
                assert r.status == 401
            parts = urlsplit(mp4["signedUrl"])
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            base = f"{api.url}{parts.path}"
            sig = query["sig"]
            tampered = [
                {"exp": query["exp"], "sig": sig[:-2] + ("AA" if not sig.endswith("AA") else "BB")},
                {"exp": str(int(query["exp"]) + 3600), "sig": sig},  # a longer life is not for sale
                {"exp": query["exp"], "sig": ""},
                {"exp": "soon", "sig": sig},
            ]
            for params in tampered:
                async with anonymous.get(base, params=params) as r:
                    assert r.status == 403, params
            # The same signature for another file of the same job, or the same file of another job: refused.
            async with anonymous.get(base.replace("preview.mp4", "preview.json"), params=query) as r:
                assert r.status == 403
            other = base.replace(job["id"], "20990101-000000-deadbeef")
            async with anonymous.get(other, params=query) as r:
                assert r.status == 403
            # Expired: a correctly signed URL whose time is up.
            expired = api.node.api.auth.signer.sign_until(job["id"], "preview.mp4", int(time.time()) - 1)
            async with anonymous.get(base, params={"exp": str(expired.exp), "sig": expired.sig}) as r:
                body = await r.json()
                assert r.status == 403 and "expired" in body["error"]["message"]
            # A valid signature for a name that is not an artifact of the job is still a 404.
            missing = api.node.api.auth.signer.sign(job["id"], "thumbs.jpg")
            async with anonymous.get(base.replace("preview.mp4", "thumbs.jpg"),
                                     params={"exp": str(missing.exp), "sig": missing.sig}) as r:
                assert r.status == 404
            # Signed URLs do not open anything else.
            async with anonymous.get(f"{api.url}/v1/jobs/{job['id']}", params=query) as r:
                assert r.status == 401

    api.run(scenario())


def test_regenerating_the_token_invalidates_signed_urls(make_api: object) -> None:
    api = make_api(token=None)  # type: ignore[operator]

    async def scenario() -> None:
        async with api.session(headers={"Authorization": f"Bearer {api.node.api.token}"}) as http:
            async with http.post("/v1/jobs", json=inline_spec(seconds=0.05)) as r:
                job = await r.json()
            await api.wait_state(job["id"], JobState.SUCCEEDED)
            async with http.get(f"/v1/jobs/{job['id']}/artifacts") as r:
                signed = (await r.json())["artifacts"][0]["signedUrl"]
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(signed) as r:
                assert r.status == 200
            api.node.api.regenerate_token()
            async with anonymous.get(signed) as r:
                assert r.status == 403

    api.run(scenario())
