"""Run the real `preview-desktop` entry point with fake job kinds added: the tests' way to put fast fake handlers
into `--worker` subprocesses (the product has no such hook).

    python -m tests.support.fake_node MODULE:FUNCTION [preview-desktop arguments ...]

FUNCTION(registry) is called on every handler registry this process builds, after the real kinds (so it may
replace `render`); then the real `preview_desktop.cli.main` runs with the remaining arguments.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from preview_desktop.core.handler import HandlerRegistry
from preview_desktop.core.layout import Layout
from preview_desktop.settings import Settings

Register = Callable[[HandlerRegistry], None]


def load(target: str) -> Register:
    """'package.module:function' → the function."""
    module, _, function = target.partition(":")
    if not module or not function:
        raise SystemExit(f"fake_node: expected MODULE:FUNCTION, got {target!r}")
    register: Register = getattr(importlib.import_module(module), function)
    return register


def install(register: Register) -> None:
    """Wrap the node's registry builder so every Node in this process gets the fake kinds too."""
    from preview_desktop import node

    real = node.default_registry

    def with_fakes(settings: Settings, layout: Layout) -> HandlerRegistry:
        registry = real(settings, layout)
        register(registry)
        return registry

    setattr(node, "default_registry", with_fakes)  # noqa: B010 - a test-only seam, on purpose


def main(argv: Sequence[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    install(load(argv[0]))
    from preview_desktop.cli import main as cli_main

    return cli_main(list(argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
