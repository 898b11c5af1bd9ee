"""arch/arm/kvm/psci.c: PSCI 0.2 as KVM serves it over HVC, plus PSCI_FEATURES.

PSCI_FEATURES is PSCI 1.0's (Linux 4.16); it is answered here because firmware-probing
guests (kvm-unit-tests among them) ask it, and a v4.5 kernel's NOT_SUPPORTED for every
unknown function is what they fall back on anyway. CPU_ON, CPU_OFF and AFFINITY_INFO
act on the machine's vCPUs through ``vcpu.power``; the last vCPU going off ends the VM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .arm import Vcpu

PSCI_0_2_FN_PSCI_VERSION = 0x84000000
PSCI_0_2_FN_CPU_SUSPEND = 0x84000001
PSCI_0_2_FN_CPU_OFF = 0x84000002
PSCI_0_2_FN_CPU_ON = 0x84000003
PSCI_0_2_FN_AFFINITY_INFO = 0x84000004
PSCI_0_2_FN_MIGRATE = 0x84000005
PSCI_0_2_FN_MIGRATE_INFO_TYPE = 0x84000006
PSCI_0_2_FN_MIGRATE_INFO_UP_CPU = 0x84000007
PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
PSCI_0_2_FN_SYSTEM_RESET = 0x84000009
PSCI_1_0_FN_PSCI_FEATURES = 0x8400000A
PSCI_64 = 0x40000000  # the SMC64 variants of the same functions
#: the calls that read x1-x3, so the machine reads those registers only for them
PSCI_TAKES_ARGS = frozenset(f | w for f in (PSCI_0_2_FN_CPU_SUSPEND, PSCI_0_2_FN_CPU_ON, PSCI_0_2_FN_AFFINITY_INFO,
                                           PSCI_0_2_FN_MIGRATE, PSCI_1_0_FN_PSCI_FEATURES) for w in (0, PSCI_64))

PSCI_VERSION_0_2 = 2
PSCI_RET_SUCCESS = 0
_NEG = 1 << 64  # negative return codes, as the 64-bit register sees them
PSCI_RET_NOT_SUPPORTED = _NEG - 1
PSCI_RET_INVALID_PARAMS = _NEG - 2
PSCI_RET_ALREADY_ON = _NEG - 4
PSCI_0_2_AFFINITY_LEVEL_ON, PSCI_0_2_AFFINITY_LEVEL_OFF = 0, 1
PSCI_0_2_TOS_MP = 2  # no trusted OS to migrate

SYSTEM_EVENT_SHUTDOWN, SYSTEM_EVENT_RESET = 1, 2

#: the functions PSCI_FEATURES reports as implemented (32- and 64-bit forms)
_IMPLEMENTED = frozenset(f | w for f in (
    PSCI_0_2_FN_PSCI_VERSION, PSCI_0_2_FN_CPU_SUSPEND, PSCI_0_2_FN_CPU_OFF, PSCI_0_2_FN_CPU_ON,
    PSCI_0_2_FN_AFFINITY_INFO, PSCI_0_2_FN_MIGRATE_INFO_TYPE, PSCI_0_2_FN_SYSTEM_OFF, PSCI_0_2_FN_SYSTEM_RESET,
    PSCI_1_0_FN_PSCI_FEATURES) for w in (0, PSCI_64))


def kvm_psci_0_2_call(vcpu: Vcpu, regs: list[int]) -> tuple[int, int | None, int]:
    """Returns (handled in kernel: 1, or 0 for a userspace exit; x0 result; system event)."""
    fn = regs[0] & 0xFFFFFFFF
    base = fn & ~PSCI_64
    if fn != regs[0] or fn & PSCI_64 and base in (PSCI_0_2_FN_SYSTEM_OFF, PSCI_0_2_FN_SYSTEM_RESET):
        return 1, PSCI_RET_NOT_SUPPORTED, 0
    if base == PSCI_0_2_FN_PSCI_VERSION:
        return 1, PSCI_VERSION_0_2, 0
    if base == PSCI_0_2_FN_SYSTEM_OFF:
        return 0, None, SYSTEM_EVENT_SHUTDOWN
    if base == PSCI_0_2_FN_SYSTEM_RESET:
        return 0, None, SYSTEM_EVENT_RESET
    if base == PSCI_0_2_FN_MIGRATE_INFO_TYPE:
        return 1, PSCI_0_2_TOS_MP, 0
    if base == PSCI_0_2_FN_CPU_SUSPEND:
        return 1, PSCI_RET_SUCCESS, 0  # kvm_psci_vcpu_suspend: a WFI the guest may wake from at once
    if base == PSCI_1_0_FN_PSCI_FEATURES:
        return 1, PSCI_RET_SUCCESS if regs[1] & 0xFFFFFFFF in _IMPLEMENTED else PSCI_RET_NOT_SUPPORTED, 0
    if base == PSCI_0_2_FN_AFFINITY_INFO:
        level = regs[2]
        if level > 2:
            return 1, PSCI_RET_INVALID_PARAMS, 0
        # every vCPU whose affinity matches above the level; ON if any of them is
        mask = 0xFF00FFFFFF & ~((1 << (8 * level)) - 1)
        hits = [cpu for cpu in range(vcpu.nr_vcpus) if not (vcpu.board_mpidr(cpu) ^ regs[1]) & mask]
        if not hits:
            return 1, PSCI_RET_INVALID_PARAMS, 0
        on = any(_is_on(vcpu, cpu) for cpu in hits)
        return 1, PSCI_0_2_AFFINITY_LEVEL_ON if on else PSCI_0_2_AFFINITY_LEVEL_OFF, 0
    if base == PSCI_0_2_FN_CPU_ON:
        cpu = vcpu.kvm_mpidr_to_vcpu(regs[1])
        if cpu is None:
            return 1, PSCI_RET_INVALID_PARAMS, 0
        if _is_on(vcpu, cpu):
            return 1, PSCI_RET_ALREADY_ON, 0
        vcpu.power.cpu_on(cpu, regs[2], regs[3])  # kvm_psci_vcpu_on: PC, x0 = context, reset state
        return 1, PSCI_RET_SUCCESS, 0
    if base == PSCI_0_2_FN_CPU_OFF:
        if vcpu.power is not None and vcpu.power.others_on(vcpu.vcpu_id):
            vcpu.powered_off = True  # kvm_psci_vcpu_off: this vCPU stops; the others go on
            return 1, None, 0
        return 0, None, SYSTEM_EVENT_SHUTDOWN  # the last vCPU going off ends the VM
    return 1, PSCI_RET_NOT_SUPPORTED, 0


def _is_on(vcpu: Vcpu, cpu: int) -> bool:
    return cpu == vcpu.vcpu_id if vcpu.power is None else vcpu.power.cpu_is_on(cpu)
