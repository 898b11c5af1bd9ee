"""Each patch does what it did: access and comparison counts per round trip after each
cumulative level (patches.md §5), and refactors change nothing."""

from __future__ import annotations

import pytest
from conftest import GUESTS, PLATFORMS, cached_run, per_iteration

V2_LEVELS = [  # (patches, self-SGI (R, W), null-HVC (R, W)) in GICH accesses per round trip
    ("none", (9, 8), (9, 8)),
    ("7", (6, 8), (1, 1)),
    ("7-8", (4, 8), (1, 1)),
    ("7-9", (4, 8), (1, 1)),
    ("7-10", (3, 8), (1, 1)),
    ("7-11", (3, 6), (1, 1)),
]
V3_LEVELS = [  # ICH_*_EL2 accesses per round trip, GICv3 guest
    ("none", (12, 9), (12, 9)),
    ("7,13", (9, 9), (2, 1)),
    ("7,13-14", (7, 9), (2, 1)),
    ("7,13-15", (6, 9), (2, 1)),
    ("7,13-16", (6, 7), (2, 1)),
]


@pytest.mark.parametrize("platform", ["A", "B"])
@pytest.mark.parametrize(("patches", "sgi", "hvc"), V2_LEVELS)
def test_vgic_v2_cumulative_levels(platform: str, patches: str, sgi: tuple, hvc: tuple) -> None:
    s = per_iteration("self_sgi", platform, patches)
    assert (s["GICH_READ"], s["GICH_WRITE"]) == sgi
    assert sum(sgi) == {"none": 17, "7": 14, "7-8": 12, "7-9": 12, "7-10": 11, "7-11": 9}[patches]
    for guest in ("null_hvc", "sysreg"):
        s = per_iteration(guest, platform, patches)
        assert (s["GICH_READ"], s["GICH_WRITE"]) == hvc


@pytest.mark.parametrize(("patches", "sgi", "hvc"), V3_LEVELS)
def test_vgic_v3_cumulative_levels(patches: str, sgi: tuple, hvc: tuple) -> None:
    s = per_iteration("self_sgi", "C-v3", patches)
    assert (s["ICH_READ"], s["ICH_WRITE"]) == sgi
    assert sum(sgi) == {"none": 21, "7,13": 18, "7,13-14": 16, "7,13-15": 15, "7,13-16": 13}[patches]
    assert s["ICC_SRE_ACCESS"] == 4  # the series leaves ICC_SRE alone
    for guest in ("null_hvc", "sysreg"):
        s = per_iteration(guest, "C-v3", patches)
        assert (s["ICH_READ"], s["ICH_WRITE"]) == hvc


def test_patch17_drops_ap0rn_for_a_gicv2_guest_on_gicv3() -> None:
    base = per_iteration("self_sgi", "C-v2", "7,13-16")
    p17 = per_iteration("self_sgi", "C-v2", "7,13-17")
    assert (base["ICH_READ"] - p17["ICH_READ"], base["ICH_WRITE"] - p17["ICH_WRITE"]) == (1, 1)
    # a GICv3 guest keeps its AP0Rn save/restore
    assert per_iteration("self_sgi", "C-v3", "7,13-17") == per_iteration("self_sgi", "C-v3", "7,13-16")
    # nothing is live on a null hypercall: the APRs are not touched either way
    assert per_iteration("null_hvc", "C-v2", "7,13-17") == per_iteration("null_hvc", "C-v2", "7,13-16")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_patch1_binary_search(platform: str) -> None:
    s = per_iteration("sysreg", platform, "1")
    # one comparator call for the 1-entry target table, six for 121 entries (mids 60 91 106 114 110 108)
    assert s["BSEARCH_CMP"] == 7
    assert s["SYSREG_ENTRY"] == s["SYSREG_FIELD_TEST"] == 0


def test_patch1_on_icc_sgi1r() -> None:
    s = per_iteration("self_sgi", "C-v3", "1")
    assert s["BSEARCH_CMP"] == 7 and s["SYSREG_FIELD_TEST"] == 0


@pytest.mark.parametrize("platform", ["A", "B", "C-v2"])
def test_patch12_sgir_first(platform: str) -> None:
    assert per_iteration("self_sgi", platform, "12")["MMIO_RANGE_TEST"] == 1


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("guest", GUESTS)
def test_patch6_timer_cache(guest: str, platform: str) -> None:
    s = per_iteration(guest, platform, "6")
    assert s["IRQCHIP_STATE_CALL"] == 0
    assert s["GICD_WRITE"] == s["GICR_WRITE"] == s["GICR_READ"] == 0
    whole = cached_run(f"{guest}-256", platform, "6")
    assert whole.counts["IRQCHIP_STATE_CALL"] == 1  # only the first entry programs the active state


@pytest.mark.parametrize("refactor", ["vgic-v2-save-elrsr", "cp15-rename-is64bit"])
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("guest", GUESTS)
def test_refactors_change_nothing(refactor: str, guest: str, platform: str) -> None:
    base = cached_run(f"{guest}-256", platform)
    with_it = cached_run(f"{guest}-256", platform, refactor, True)
    assert with_it.counts == base.counts and with_it.cycles == base.cycles
    assert with_it.guest_visible == base.guest_visible
    # and on top of the patches it refactors
    if refactor == "vgic-v2-save-elrsr":
        assert cached_run(f"{guest}-256", platform, "7-9").counts == cached_run(f"{guest}-256", platform, "7-8").counts


def test_series_is_cheaper_everywhere() -> None:
    for platform in PLATFORMS:
        for guest in GUESTS:
            assert cached_run(f"{guest}-256", platform, "series").cycles < cached_run(f"{guest}-256", platform).cycles
