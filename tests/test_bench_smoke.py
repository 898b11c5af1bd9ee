"""The floor hypervisor of bench/floor.py is a complete one, not a stub.

It runs each guest/platform pair of the benchmark on the 256-iteration short
variants and checks that the guest finished (FloorVM.run checks SYSTEM_RESET and
x19 == 0) after exactly the traps the guest's listing implies. No timing is
checked: that is the benchmark's business.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FLOOR_PY = Path(__file__).resolve().parent.parent / "bench" / "floor.py"
N = 256


def _load() -> ModuleType:
    # bench/ is a script folder, not a package: load the file by path. Register it
    # first, since dataclasses look their module up in sys.modules.
    spec = importlib.util.spec_from_file_location("bench_floor", FLOOR_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


floor = _load()

# (guest, GIC the guest sees) -> (exits, traps). Exits: one per iteration, the final
# SYSTEM_RESET hvc, and for self_sgi 3 set-up writes to the distributor (v2) or to the
# distributor and redistributor (v3). Traps add what a vCPU interface would serve:
# ID_AA64PFR0 (+ ICC_SRE on v3), the PMR/CTLR or PMR/IGRPEN1 set-up, and one ack and
# one EOI per iteration.
EXPECTED = {
    ("null_hvc", 2): (N + 1, N + 1),
    ("sysreg", 2): (N + 1, N + 1),
    ("self_sgi", 2): (N + 4, N + 4 + 1 + 2 + 2 * N),
    ("self_sgi", 3): (N + 4, N + 4 + 2 + 2 * N + 2),
}


@pytest.mark.parametrize(("guest", "platform", "gic"), floor.PAIRS)
def test_floor_finishes_with_the_right_traps(guest: str, platform: str, gic: int) -> None:
    run = floor.run_floor(floor.guest_path(guest, N), gic, timeout_s=5.0)
    assert (run.exits, run.traps) == EXPECTED[(guest, gic)]


def test_floor_reports_a_guest_that_would_sleep_forever() -> None:
    # Drop GICD_SGIR: the ack is then spurious and the guest reaches wfi with nothing
    # pending. The floor must stop with a clear error, not spin or "finish".
    class NoSgi(floor.FloorVM):
        def _gicd_write(self, uch: object, offset: int, size: int, value: int, ud: object) -> None:
            pass

    vm = NoSgi(floor.guest_path("self_sgi", N).read_bytes(), 2)
    with pytest.raises(floor.FloorError, match="wfi .* with nothing pending"):
        vm.run(timeout_s=5.0)


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_real_guests_measures_a_guest_both_ways(clock: str) -> None:
    """bench/real_guests.py runs a guest with and without the cache and reports what the
    cache did: a real row, whichever clock it reads."""
    spec = importlib.util.spec_from_file_location("bench_real_guests", FLOOR_PY.parent / "real_guests.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    name, image, params, cpus, mem, platform = mod.OWN[0]
    row = mod.measure(name, image, params, cpus, mem, platform, 2, stat="min", clock=clock)
    assert row.cache == "on" and row.exits > 0 and row.cached_s > 0 and row.uncached_s > 0
    assert row.speedup == pytest.approx(row.uncached_s / row.cached_s)
    assert row.paired > 0
    assert 0.0 <= row.hit_rate <= 1.0 and row.states >= 1
