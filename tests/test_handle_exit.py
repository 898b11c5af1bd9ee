"""handle_exit: one table, indexed by exception class, decides where every exit goes."""

from __future__ import annotations

import pytest
from worldswitch.errors import GuestFault
from worldswitch.events import Exit
from worldswitch.kvm import handle_exit as he


def test_every_exit_class_the_machine_builds_has_its_kernel_handler() -> None:
    table = he.arm_exit_handlers
    assert len(table) == 65  # ESR_ELx.EC is 6 bits; slot 64 is the IRQ exit
    assert table[Exit.IRQ] is he.handle_irq and Exit.IRQ == 64
    assert table[Exit.HVC64] is table[Exit.HVC32] is he.handle_hvc
    assert table[Exit.SMC64] is he.handle_smc and table[Exit.IABT_LOW] is he.kvm_handle_iabt
    assert table[Exit.SYS64] is he.kvm_handle_sys_reg
    assert table[Exit.DABT_LOW] is he.kvm_handle_guest_abort
    assert table[Exit.WFX] is he.kvm_handle_wfx
    assert table[Exit.CP15_32] is he.kvm_handle_cp15_32 and table[Exit.CP15_64] is he.kvm_handle_cp15_64
    handled = {ec for ec, h in enumerate(table) if h is not he.kvm_handle_unknown_ec}
    assert handled == {int(e) for e in Exit}


def test_an_unknown_exception_class_is_a_guest_fault() -> None:
    with pytest.raises(GuestFault, match="unknown exception class 0x3c"):
        he.handle_exit(None, 0x3C << 26 | 1 << 25, ())


def test_handle_exit_dispatches_on_the_syndrome(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    table = list(he.arm_exit_handlers)
    table[Exit.HVC64] = lambda vcpu, esr, *ops: seen.append((esr, ops)) or 7
    monkeypatch.setattr(he, "arm_exit_handlers", table)
    assert he.handle_exit("vcpu", Exit.HVC64 << 26, ([1, 2],)) == 7
    assert seen == [(Exit.HVC64 << 26, ([1, 2],))]
