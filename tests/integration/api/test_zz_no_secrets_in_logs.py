"""No log line the program writes holds the API token or a Redis password.

Runs last in this folder (file order) and reads every line the API suite wrote through the program's own log
handlers (JSON files, see conftest.suite_logs), after a scenario of its own that exercises the paths most likely
to leak: right and wrong tokens, signed URLs, a failing job, the event stream, metrics, and careless log calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from preview_desktop.core.job import JobState

from .conftest import SUITE_LOGS
from .harness import REDIS_PASSWORD, REDIS_URL, TOKEN, Api, copy_tree_text, inline_spec

pytestmark = pytest.mark.timeout(120)


def test_no_token_or_redis_password_in_any_log_line(api: Api) -> None:
    assert api.settings.redis_url == REDIS_URL and api.node.api.token == TOKEN
    log = logging.getLogger("preview_desktop.tests.careless")

    async def scenario() -> str:
        async with api.session(headers=api.headers) as http:
            good = await api.submit(http, inline_spec(seconds=0.05, project="ok"))
            bad = await api.submit(http, inline_spec(project="bad", source="fail", attempts=1))
            await api.wait_state(good["id"], JobState.SUCCEEDED)
            await api.wait_state(bad["id"], JobState.FAILED)
            async with http.get(f"/v1/jobs/{good['id']}/artifacts") as r:
                signed = (await r.json())["artifacts"][0]["signedUrl"]
            async with http.get("/metrics") as r:
                await r.read()
            async with http.get("/v1/events", headers={"Last-Event-ID": "x-1"}) as r:
                await asyncio.wait_for(r.content.readline(), 5)
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(signed) as r:
                assert r.status == 200
            for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
                async with anonymous.get(api.url + "/v1/jobs", headers={"Authorization": header}) as r:
                    assert r.status in (401, 403)
            async with anonymous.get(api.url + "/v1/jobs", params={"token": TOKEN}) as r:
                assert r.status == 401  # a token in the query string is not accepted (nor logged in clear)
        return signed

    signed = api.run(scenario())
    # What a careless module might do: the program's handlers must redact it anyway.
    log.info("settings: %s", json.dumps(api.settings.redacted(), default=str))
    log.warning("connecting to %s with token %s", REDIS_URL, TOKEN)
    try:
        raise RuntimeError(f"redis said no to {REDIS_URL} (Authorization: Bearer {TOKEN})")
    except RuntimeError:
        log.exception("farm failed")
    for handler in logging.getLogger().handlers:
        handler.flush()

    assert SUITE_LOGS, "the suite's log folder is missing"
    text = "\n".join(copy_tree_text(folder) for folder in SUITE_LOGS)
    text += copy_tree_text(api.settings.data_dir / "logs")
    lines = [line for line in text.splitlines() if line.strip()]
    assert any("API listening on" in line for line in lines) and any("farm failed" in line for line in lines)
    assert any("/v1/jobs" in line for line in lines)  # access log lines were written too
    assert sum("***" in line for line in lines) >= 2  # the careless lines were redacted, not dropped
    signature = parse_qs(urlsplit(signed).query)["sig"][0]
    assert any(urlsplit(signed).path in line for line in lines)  # the signed download was logged, by path
    for line in lines:
        assert TOKEN not in line, line
        assert REDIS_PASSWORD not in line, line
        assert signature not in line, line  # a signed URL opens the file until it expires
    print(f"checked {len(lines)} log lines")
