"""Principle 3: under every combination of plugins the guest sees exactly what it sees
under vanilla. Only access counts and cycles may differ."""

from __future__ import annotations

import pytest
from conftest import GUESTS, PLATFORMS, cached_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from worldswitch.plugin import discover

ARM64_PATCHES = [n for n in range(1, 18) if n not in (2, 3, 4, 5)]  # 2-5 act on the 32-bit host only
ALL = list(range(1, 18))


def visible(guest: str, platform: str, patches: str) -> dict:
    return cached_run(f"{guest}-256", platform, patches, True).guest_visible


# the hosts whose code each patch changes: elsewhere it must change nothing at all
TOUCHES = {1: PLATFORMS, 6: PLATFORMS, 12: ("A", "B", "C-v2"), 17: ("C-v2",)}
TOUCHES.update({n: ("A15-32",) for n in range(2, 6)})  # the 32-bit host's cp15 tables
TOUCHES.update({n: ("A", "B") for n in range(7, 12)})
TOUCHES.update({n: ("C-v2", "C-v3") for n in range(13, 17)})


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("guest", GUESTS)
def test_single_and_leave_one_out(guest: str, platform: str) -> None:
    base = visible(guest, platform, "none")
    for n in ALL:
        if platform in TOUCHES[n]:
            assert visible(guest, platform, str(n)) == base, f"patch {n} alone"
        else:  # a patch of another host's code: not a transparency case, it must be a no-op
            run = cached_run(f"{guest}-256", platform, str(n), True)
            assert run.counts == cached_run(f"{guest}-256", platform, "none").counts, f"patch {n} on {platform}"
        rest = ",".join(str(m) for m in ALL if m != n)
        assert visible(guest, platform, rest) == base, f"all but patch {n}"
    assert visible(guest, platform, "series") == base


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subset=st.sets(st.sampled_from(ARM64_PATCHES), min_size=1),
    guest=st.sampled_from(GUESTS),
    platform=st.sampled_from(PLATFORMS),
)
def test_random_subsets_are_transparent(subset: set[int], guest: str, platform: str) -> None:
    patches = ",".join(str(n) for n in sorted(subset))
    assert visible(guest, platform, patches) == visible(guest, platform, "none")


def test_every_builtin_is_exercised() -> None:
    builtins = {i.meta.patch for i in discover().values() if i.builtin}
    assert builtins == set(ALL)
