"""The design card's event hooks: entry, exit, sysreg trap and MMIO trap (and HVC, WFI,
timer line), observed by a plugin over real runs."""

from __future__ import annotations

from collections import Counter

import pytest
from worldswitch.api import run_guest
from worldswitch.events import Exit
from worldswitch.plugin import hookimpl


class Recorder:
    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.exit_classes: Counter[int] = Counter()
        self.sysregs: set[tuple[int, ...]] = set()
        self.mmio: set[tuple[int, bool, int]] = set()
        self.hvcs: Counter[int] = Counter()

    @hookimpl
    def ws_guest_exit(self, vcpu, esr):
        self.events["exit"] += 1
        self.exit_classes[esr >> 26] += 1

    @hookimpl
    def ws_guest_enter(self, vcpu):
        self.events["enter"] += 1

    @hookimpl
    def ws_sysreg_trap(self, vcpu, params):
        self.sysregs.add(params.key)

    @hookimpl
    def ws_mmio_trap(self, vcpu, addr, is_write, size, value):
        self.mmio.add((addr, is_write, size))

    @hookimpl
    def ws_hvc(self, vcpu, func_id):
        self.hvcs[func_id] += 1


@pytest.mark.parametrize("patches", ["none", "series"])
def test_events_see_every_exit(patches: str) -> None:
    rec = Recorder()
    r = run_guest("self_sgi-256", "A", patches=patches, extra_plugins=(rec,))
    exits = sum(r.exits.values())
    assert rec.events["exit"] == exits and rec.events["enter"] == exits - 1  # the last exit ends the run
    assert rec.exit_classes == {Exit.DABT_LOW: r.exits["dabt_low"], Exit.HVC64: r.exits["hvc64"]}
    assert (0x3FFF0F00, True, 4) in rec.mmio  # GICD_SGIR, a 32-bit write
    assert rec.hvcs[0x84000009] == 1  # SYSTEM_RESET


def test_sysreg_event_carries_the_decoded_register() -> None:
    rec = Recorder()
    run_guest("sysreg-256", "A", extra_plugins=(rec,))
    assert (3, 3, 9, 12, 5) in rec.sysregs  # PMSELR_EL0: op0 3, op1 3, CRn 9, CRm 12, op2 5
