"""arch/arm64/kvm/inject_fault.c: exceptions KVM makes the guest take at EL1.

KVM never runs the guest's handler; it writes what the hardware's exception entry would
(ESR_EL1, FAR_EL1, ELR_EL1, SPSR_EL1, PSTATE and the vector address) into the guest's
context and re-enters. The context is the machine's (``vcpu.ctxt``), reached only
through :meth:`enter_el1` and the syndrome built here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .arm import Vcpu

ESR_ELx_IL = 1 << 25
ESR_ELx_EC_UNKNOWN = 0x00
ESR_ELx_EC_IABT_LOW, ESR_ELx_EC_IABT_CUR = 0x20, 0x21
ESR_ELx_EC_DABT_LOW, ESR_ELx_EC_DABT_CUR = 0x24, 0x25
ESR_ELx_FSC_EXTABT = 0x10  # synchronous external abort: what v4.5 injects for an I/O address


def kvm_inject_undefined(vcpu: Vcpu) -> None:
    """inject_undef64: an Unknown-reason exception with the trapping instruction's length."""
    vcpu.ctxt.enter_el1((ESR_ELx_EC_UNKNOWN << 26) | ESR_ELx_IL, far=None, elr=vcpu.ctxt.trap_pc())


def kvm_inject_pabt(vcpu: Vcpu, addr: int) -> None:
    """inject_abt64 for an instruction fetch: external abort, from the current or a lower EL."""
    _inject_abt(vcpu, True, addr)


def kvm_inject_dabt(vcpu: Vcpu, addr: int) -> None:
    _inject_abt(vcpu, False, addr)


def _inject_abt(vcpu: Vcpu, is_iabt: bool, addr: int) -> None:
    from_el0 = vcpu.ctxt.current_el() == 0
    if is_iabt:
        ec = ESR_ELx_EC_IABT_LOW if from_el0 else ESR_ELx_EC_IABT_CUR
    else:
        ec = ESR_ELx_EC_DABT_LOW if from_el0 else ESR_ELx_EC_DABT_CUR
    vcpu.ctxt.enter_el1((ec << 26) | ESR_ELx_IL | ESR_ELx_FSC_EXTABT, far=addr, elr=vcpu.ctxt.trap_pc())
