"""Schemathesis against a live server's /openapi.json: no 5xx, and every answer as the document says.

Blocking (schemathesis makes `requests` calls): run it on a worker thread while the loop keeps serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def fuzz_api(url: str, headers: dict[str, str], *, budget: float, examples: int,
             include: Callable[[str], bool] = lambda path: True, timeout: float = 10) -> list[str]:
    """Positive and negative cases for each operation whose path `include` accepts, until `budget` seconds pass.
    Returns "METHOD path mode" for each operation and mode that ran."""
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
    for result in schema.get_all_operations():
        operation = result.ok()
        if not include(operation.path) or time.monotonic() > deadline:
            continue
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                if time.monotonic() < deadline:
                    case.call_and_validate(base_url=url, headers=headers, checks=checks, timeout=timeout)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                if mode is schemathesis.GenerationMode.POSITIVE:
                    raise
                continue  # nothing to negate (e.g. GET /healthz takes no input)
            tested.append(f"{operation.method.upper()} {operation.path} {mode.value}")
    return tested
