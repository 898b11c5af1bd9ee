"""pytest fixtures for plugin authors (loaded through the ``pytest11`` entry point).

    def test_my_plugin_is_transparent(worldswitch_run):
        base = worldswitch_run("self_sgi-256", "A")
        mine = worldswitch_run("self_sgi-256", "A", plugins=[my_plugin_module])
        assert mine.guest_visible == base.guest_visible
        assert mine.counts["GICH_READ"] < base.counts["GICH_READ"]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest


@pytest.fixture
def worldswitch_run() -> Callable[..., Any]:
    """Run a guest: ``worldswitch_run(guest, platform, patches="none", plugins=(), force=False)``.

    ``plugins`` are plugin objects or modules registered directly, without an entry point."""
    from .api import run_guest

    def run(guest: str, platform: str = "A", patches: str = "none", plugins: Iterable[Any] = (),
            force: bool = False, **kwargs: Any) -> Any:
        return run_guest(guest, platform, patches=patches, force=force, extra_plugins=tuple(plugins), **kwargs)

    return run
