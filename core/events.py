"""Event classes: everything the model counts, and the exit reasons.

Hardware models and KVM steps bump flat integer counters indexed by :class:`Ev`.
The cost model (:mod:`worldswitch.cost`) is the only place that turns counts into
cycles.
"""

from __future__ import annotations

from enum import IntEnum

# Plain ints for the hot path: indexing a list with an IntEnum member costs a
# class-attribute lookup per access (about 0.3 µs here), an int global does not.
# :class:`Ev` is built from these, so each class is written once.

# world-switch steps (software, fixed sequences)
WORLD_SWITCH = 0  # one exit + re-entry through __guest_run
EL1_SYSREG_SAVE = 1  # EL1 system registers moved by __sysreg_save_state
EL1_SYSREG_RESTORE = 2  # ... and by __sysreg_restore_state
TIMER_SYSREG = 3  # CNTV_CTL/CVAL/CNTVOFF/CNTHCTL accesses by the hyp timer save/restore
# GICv2 host: hyp control interface (GICH) and physical distributor
GICH_READ = 4
GICH_WRITE = 5
GICD_READ = 6
GICD_WRITE = 7
# GICv3 host: ICH_*_EL2 system registers, ICC_SRE_EL1/EL2, redistributor
ICH_READ = 8
ICH_WRITE = 9
ICC_SRE_ACCESS = 10
GICR_READ = 11
GICR_WRITE = 12
# guest accesses to the virtual CPU interface (no exit)
GICV_READ = 13
GICV_WRITE = 14
ICV_READ = 15
ICV_WRITE = 16
# exit handling (software)
PSCI_CALL = 17  # kvm_psci_call and its handler
SYSREG_TRAP = 18  # kvm_handle_sys_reg + emulate_sys_reg + the register's accessor
MMIO_ABORT = 19  # kvm_handle_guest_abort + io_mem_abort + kvm_io_bus + vgic_handle_mmio_access
WFX = 20  # kvm_handle_wfx
# table searches
SYSREG_ENTRY = 21  # table entries examined by a linear find_reg
SYSREG_FIELD_TEST = 22  # field comparisons (Op0, Op1, CRn, CRm, Op2, ...) made by it
BSEARCH_CMP = 23  # comparator calls made by a binary search
MMIO_RANGE_TEST = 24  # ranges tested by vgic_find_range
# vgic software
VGIC_DISPATCH_SGI = 25
VGIC_QUEUE_IRQ = 26  # an interrupt placed in an in-memory LR by the flush
VGIC_LR_SYNC = 27  # an in-memory LR retired by the sync
IRQCHIP_STATE_CALL = 28  # host irq_set_irqchip_state (lock, descriptor, driver call)
VGIC_SGI1R_DECODE = 29  # vgic_v3_dispatch_sgi: match ICC_SGI1R_EL1's affinity against each vCPU
# userspace
USER_EXIT = 30  # KVM_RUN returns to the VMM (kvmtool) for an MMIO access it emulates, and is called again

#: One class of counted event; the platform profile gives each a unit cost.
Ev = IntEnum("Ev", [(k, v) for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)])


N_EVENTS = len(Ev)


class Exit(IntEnum):
    """Exit reasons, by the exception class KVM dispatches on."""

    WFX = 0x01
    CP15_32 = 0x03
    CP15_64 = 0x04
    HVC32 = 0x12
    HVC64 = 0x16
    SMC64 = 0x17
    SYS64 = 0x18
    IABT_LOW = 0x20
    DABT_LOW = 0x24
    # Not an exception class: the kernel's handle_exit tests exception_index ==
    # ARM_EXCEPTION_IRQ before looking the class up. Here an IRQ exit has the slot just past
    # the 6-bit class, so one table lookup serves both.
    IRQ = 0x40


EXIT_NAMES = {
    Exit.WFX: "wfx",
    Exit.CP15_32: "cp15_32",
    Exit.CP15_64: "cp15_64",
    Exit.HVC32: "hvc32",
    Exit.HVC64: "hvc64",
    Exit.SMC64: "smc64",
    Exit.SYS64: "sys64",
    Exit.IABT_LOW: "iabt_low",
    Exit.DABT_LOW: "dabt_low",
    Exit.IRQ: "irq",
}


def new_counters() -> list[int]:
    """A zeroed counter array, one slot per :class:`Ev`."""
    return [0] * N_EVENTS
