"""arch/arm/kvm/psci.c: PSCI 0.2 as KVM serves it over HVC."""

from __future__ import annotations

PSCI_0_2_FN_PSCI_VERSION = 0x84000000
PSCI_0_2_FN_CPU_SUSPEND = 0x84000001
PSCI_0_2_FN_CPU_OFF = 0x84000002
PSCI_0_2_FN_CPU_ON = 0x84000003
PSCI_0_2_FN_AFFINITY_INFO = 0x84000004
PSCI_0_2_FN_MIGRATE_INFO_TYPE = 0x84000006
PSCI_0_2_FN_SYSTEM_OFF = 0x84000008
PSCI_0_2_FN_SYSTEM_RESET = 0x84000009
PSCI_64 = 0x40000000  # the SMC64 variants of the same functions

PSCI_VERSION_0_2 = 2
PSCI_RET_SUCCESS = 0
PSCI_RET_NOT_SUPPORTED = (1 << 64) - 1  # -1, as the 64-bit register sees it
PSCI_RET_ALREADY_ON = (1 << 64) - 4
PSCI_0_2_TOS_MP = 2  # no trusted OS to migrate

SYSTEM_EVENT_SHUTDOWN, SYSTEM_EVENT_RESET = 1, 2


def kvm_psci_0_2_call(fn: int, x1: int) -> tuple[int, int | None, int]:
    """Returns (handled in kernel: 1, or 0 for a userspace exit; x0 result; system event)."""
    base = fn & ~PSCI_64
    if base == PSCI_0_2_FN_PSCI_VERSION:
        return 1, PSCI_VERSION_0_2, 0
    if base == PSCI_0_2_FN_SYSTEM_OFF:
        return 0, None, SYSTEM_EVENT_SHUTDOWN
    if base == PSCI_0_2_FN_SYSTEM_RESET:
        return 0, None, SYSTEM_EVENT_RESET
    if base == PSCI_0_2_FN_MIGRATE_INFO_TYPE:
        return 1, PSCI_0_2_TOS_MP, 0
    if base == PSCI_0_2_FN_AFFINITY_INFO:
        return 1, 0 if (x1 & 0xFFFFFF) == 0 else PSCI_RET_NOT_SUPPORTED, 0  # vCPU 0 is on
    if base == PSCI_0_2_FN_CPU_ON:
        return 1, PSCI_RET_ALREADY_ON if (x1 & 0xFFFFFF) == 0 else PSCI_RET_NOT_SUPPORTED, 0
    if base == PSCI_0_2_FN_CPU_OFF:
        return 0, None, SYSTEM_EVENT_SHUTDOWN  # the only vCPU going off ends the VM
    return 1, PSCI_RET_NOT_SUPPORTED, 0
