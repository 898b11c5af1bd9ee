"""Vanilla v4.5-rc4: guests complete, see the right things, and make exactly the
accesses patches.md §5 lists per round trip."""

from __future__ import annotations

import pytest
from conftest import GUESTS, PLATFORMS, cached_run
from worldswitch.api import run_guest
from worldswitch.kvm.psci import SYSTEM_EVENT_RESET


def expected_exits(guest: str, platform: str, n: int) -> dict[str, int]:
    if guest == "null_hvc":
        return {"hvc64": n + 1}
    if guest == "sysreg":
        return {"hvc64": 1, "sys64": n}
    if platform == "C-v3":  # GICD_CTLR + two redistributor writes, then ICC_SGI1R_EL1 traps
        return {"dabt_low": 3, "hvc64": 1, "sys64": n}
    return {"dabt_low": n + 3, "hvc64": 1}  # GICD_CTLR, IPRIORITYR, ISENABLER, then GICD_SGIR


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("guest", GUESTS)
def test_guest_completes_with_exact_exits(guest: str, platform: str) -> None:
    r = cached_run(f"{guest}-256", platform)
    assert r.exits == expected_exits(guest, platform, 256)
    assert r.iterations == sum(r.exits.values())
    vis = r.guest_visible
    assert vis["system_event"] == SYSTEM_EVENT_RESET
    assert vis["registers"]["x19"] == 0
    assert vis["registers"]["x0"] == 0x84000009
    if guest == "self_sgi":
        assert vis["acked"] == {"0": 256}  # SGI 0 from CPU 0, every time
        assert vis["eois"] == 256
    else:
        assert vis["acked"] == {} and vis["eois"] == 0


def test_self_sgi_picks_the_gic_the_platform_dictates() -> None:
    # GICv2 path: SGIs are sent through GICD_SGIR (MMIO); GICv3 path: ICC_SGI1R_EL1 traps
    for platform in ("A", "B", "C-v2"):
        assert "sys64" not in cached_run("self_sgi-256", platform).exits
    assert cached_run("self_sgi-256", "C-v3").exits["sys64"] == 256


@pytest.mark.parametrize("platform", ["A", "B"])
@pytest.mark.parametrize("guest", GUESTS)
def test_gich_accesses_per_round_trip(guest: str, platform: str, steady) -> None:
    s = steady(guest, platform)
    # exit 9R + 1W, entry 7W (patches.md §5, vanilla row, 4 LRs)
    assert (s["GICH_READ"], s["GICH_WRITE"]) == (9, 8)
    assert s["ICH_READ"] == s["ICH_WRITE"] == 0
    assert s["GICD_WRITE"] == 1  # kvm_timer_flush_hwstate, every entry


@pytest.mark.parametrize("platform", ["C-v2", "C-v3"])
@pytest.mark.parametrize("guest", GUESTS)
def test_ich_accesses_per_round_trip(guest: str, platform: str, steady) -> None:
    s = steady(guest, platform)
    # exit 11R + 1W, entry 1R + 8W (4 LRs, 5 priority bits: one AP0Rn, one AP1Rn)
    assert (s["ICH_READ"], s["ICH_WRITE"]) == (12, 9)
    assert s["ICC_SRE_ACCESS"] == (6 if platform == "C-v2" else 4)
    assert s["GICH_READ"] == s["GICH_WRITE"] == 0
    assert (s["GICR_WRITE"], s["GICR_READ"]) == (1, 1)  # ICACTIVER0 write + RWP poll


@pytest.mark.parametrize("platform", PLATFORMS)
def test_sysreg_linear_search_counts(platform: str, steady) -> None:
    s = steady("sysreg", platform)
    # target table: 1 entry, 2 field tests; sys_reg_descs: 109 entries, 155 field tests
    assert (s["SYSREG_ENTRY"], s["SYSREG_FIELD_TEST"]) == (110, 157)


def test_icc_sgi1r_linear_search_counts(steady) -> None:
    s = steady("self_sgi", "C-v3")
    # target table: 1 entry, 3 field tests; sys_reg_descs: 98 entries, 135 field tests
    assert (s["SYSREG_ENTRY"], s["SYSREG_FIELD_TEST"]) == (99, 138)


@pytest.mark.parametrize("platform", ["A", "B", "C-v2"])
def test_gicd_sgir_range_search(platform: str, steady) -> None:
    assert steady("self_sgi", platform)["MMIO_RANGE_TEST"] == 12  # SOFTINT is the 12th range


def test_deterministic_in_process() -> None:
    a = run_guest("self_sgi-256", "C-v3")
    b = run_guest("self_sgi-256", "C-v3")
    assert a == b  # wall time is excluded from comparison
    assert a.cycles == b.cycles


def test_deterministic_across_processes() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "worldswitch.cli", "run", "self_sgi-256", "-p", "A", "--json"],
                         capture_output=True, text=True, check=True).stdout
    other = json.loads(out)
    here = run_guest("self_sgi-256", "A").to_json()
    for key in ("counts", "exits", "cycles", "guest_visible", "iterations"):
        assert other[key] == here[key]


def test_full_length_null_hvc_equals_extrapolation() -> None:
    """The short-run extrapolation the table and calibration use is exact."""
    from worldswitch.study import extrapolate

    full = run_guest("null_hvc", "A")
    cell = extrapolate(run_guest("null_hvc-256", "A"), run_guest("null_hvc-1024", "A"), 256, 1024, 65536)
    assert cell.iterations == full.iterations
    for k, v in full.counts.items():
        assert cell.counts[k] * cell.iterations == pytest.approx(v, abs=1e-6)
