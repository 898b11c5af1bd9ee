"""Shared helpers: short runs and steady-state per-iteration counts."""

from __future__ import annotations

import functools

import pytest
from worldswitch.api import RunResult, run_guest

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
