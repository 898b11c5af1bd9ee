"""Shared helpers: short runs and steady-state per-iteration counts."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeDist
from worldswitch import plugin
from worldswitch.api import RunResult, run_guest

# Every cached run of the suite re-executes one replayed round trip in 50 for real and
# compares it with the cache's record (core/memo.py): CI runs with verification on.
os.environ.setdefault("WORLDSWITCH_VERIFY_CACHE", "50")

PLATFORMS = ("A", "B", "C-v2", "C-v3")
GUESTS = ("null_hvc", "self_sgi", "sysreg")


@functools.cache
def cached_run(guest: str, platform: str, patches: str = "none", force: bool = False) -> RunResult:
    return run_guest(guest, platform, patches=patches, force=force)


def per_iteration(guest: str, platform: str, patches: str = "none", force: bool = False) -> dict[str, float]:
    """Steady-state counts per loop iteration: the difference of two short runs, so the
    guest's set-up exits and the first entry drop out."""
    a = cached_run(f"{guest}-256", platform, patches, force)
    b = cached_run(f"{guest}-1024", platform, patches, force)
    return {k: (b.counts[k] - a.counts[k]) / 768 for k in a.counts}


@pytest.fixture
def steady():
    return per_iteration


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDist]:
    dist = FakeDist(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugin.DISABLE_AUTOLOAD_ENV, raising=False)
    plugin._discover.cache_clear()
    try:
        yield dist
    finally:
        # the next discover() scans again, after monkeypatch has taken tmp_path off sys.path
        plugin._discover.cache_clear()
        plugin.set_strict(False)
        for m in dist.modules:
            sys.modules.pop(m, None)
