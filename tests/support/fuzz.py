"""Schemathesis against a live server's /openapi.json: no 5xx, and every answer as the document says.

Blocking (schemathesis makes `requests` calls): run it on a worker thread while the loop keeps serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

MIN_CALLS = 3  # cases every operation and mode runs, whatever the time budget


def fuzz_api(url: str, headers: dict[str, str], *, budget: float, examples: int,
             include: Callable[[str], bool] = lambda path: True, timeout: float = 10) -> list[str]:
    """Positive and negative cases (up to `examples` each) for every operation whose path `include` accepts.
    Past `budget` seconds each operation and mode still runs its first MIN_CALLS cases: a busy machine fuzzes
    less deeply, never fewer routes. Returns "METHOD path mode" for each operation and mode that ran."""
    import hypothesis
    import requests
    import schemathesis
    from hypothesis import HealthCheck
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    document = requests.get(url + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    deadline = time.monotonic() + budget
    tested: list[str] = []
    calls = [0]
    for result in schema.get_all_operations():
        operation = result.ok()
        if not include(operation.path):
            continue
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            calls[0] = 0  # cases this operation and mode ran

            @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                if calls[0] < MIN_CALLS or time.monotonic() < deadline:
                    calls[0] += 1
                    case.call_and_validate(base_url=url, headers=headers, checks=checks, timeout=timeout)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                if mode is schemathesis.GenerationMode.POSITIVE:
                    raise
                continue  # nothing to negate (e.g. GET /healthz takes no input)
            tested.append(f"{operation.method.upper()} {operation.path} {mode.value}")
    return tested
