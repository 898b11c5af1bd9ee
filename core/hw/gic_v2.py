"""GICv2 (GIC-400 class) hardware: the hyp control interface GICH, the guest's virtual
CPU interface GICV, and the host's physical distributor GICD.

GICH and GICV share one :class:`ListRegisterFile`. Every access is counted: GICH
accesses are the world switch's cost, GICV accesses are the guest's (no exit).
"""

from __future__ import annotations

from ..events import GICD_READ, GICD_WRITE, GICH_READ, GICH_WRITE, GICV_READ, GICV_WRITE
from .vcpu_if import V2_LR, ListRegisterFile, LrBank

# GICH register offsets
GICH_HCR, GICH_VTR, GICH_VMCR, GICH_MISR = 0x00, 0x04, 0x08, 0x10
GICH_EISR0, GICH_EISR1, GICH_ELRSR0, GICH_ELRSR1 = 0x20, 0x24, 0x30, 0x34
GICH_APR, GICH_LR0 = 0xF0, 0x100

# GICC / GICV register offsets (the guest's view at 0x3ffd0000)
GICC_CTLR, GICC_PMR, GICC_BPR, GICC_IAR, GICC_EOIR = 0x00, 0x04, 0x08, 0x0C, 0x10
GICC_RPR, GICC_HPPIR, GICC_APR0, GICC_IIDR, GICC_DIR = 0x14, 0x18, 0xD0, 0xFC, 0x1000

# GICD register offsets the host driver touches
GICD_ISACTIVER0, GICD_ICACTIVER0 = 0x300, 0x380


class GicH(LrBank):
    """The GICv2 virtual interface control registers (GICH), memory-mapped, hyp only."""

    STATE = ()  # the list registers and their companions are the ListRegisterFile's
    HOLDS = ("lrf",)

    READ, WRITE = GICH_READ, GICH_WRITE
    DESCENDING = False  # vgic-v2-sr.c walks the LRs upwards

    def __init__(self, counters: list[int], nr_lr: int = 4) -> None:
        self.c = counters
        self.lrf = ListRegisterFile(V2_LR, nr_lr, 5)
        self.nr_lr = nr_lr

    # Accessors named after the registers: the save/restore code reads like the kernel's.
    def read_vtr(self) -> int:
        self.c[GICH_READ] += 1
        return (self.nr_lr - 1) | (4 << 26) | (4 << 29)  # ListRegs, PREbits, PRIbits (5 bits)

    def read_vmcr(self) -> int:
        self.c[GICH_READ] += 1
        return self.lrf.vmcr

    def write_vmcr(self, value: int) -> None:
        self.c[GICH_WRITE] += 1
        self.lrf.vmcr = value & 0xFFFFFFFF

    def read_misr(self) -> int:
        self.c[GICH_READ] += 1
        return self.lrf.misr()

    def read_eisr(self, n: int) -> int:
        self.c[GICH_READ] += 1
        return (self.lrf.eisr() >> (32 * n)) & 0xFFFFFFFF

    def read_elrsr(self, n: int) -> int:
        self.c[GICH_READ] += 1
        # bits for LRs that are not implemented read as 1 ("empty")
        full = self.lrf.elrsr() | ~((1 << self.nr_lr) - 1)
        return (full >> (32 * n)) & 0xFFFFFFFF

    def read_apr(self) -> int:
        self.c[GICH_READ] += 1
        return self.lrf.ap0r[0]

    def write_apr(self, value: int) -> None:
        self.c[GICH_WRITE] += 1
        self.lrf.ap0r[0] = value

    def read_hcr(self) -> int:
        self.c[GICH_READ] += 1
        return self.lrf.hcr | (self.lrf.eoicount << 27)

    def write_hcr(self, value: int) -> None:
        self.c[GICH_WRITE] += 1
        self.lrf.hcr = value & 0x7FFFFFF
        self.lrf.eoicount = (value >> 27) & 0x1F

    def read_lr(self, i: int) -> int:
        self.c[GICH_READ] += 1
        return self.lrf.lr[i]

    def write_lr(self, i: int, value: int) -> None:
        self.c[GICH_WRITE] += 1
        self.lrf.lr[i] = value & 0xFFFFFFFF


class GicV:
    """The virtual CPU interface as a GICv2 guest sees it (GICC layout), backed by LRs.

    Used for a GICv2 guest on a GICv2 host (LRs in GICH) and on a GICv3 host in legacy
    mode (LRs in ICH_LRn_EL2). Group 0 is what a GICv2 guest's GICC_IAR acknowledges;
    the LR file decides where its active priority goes (GICH_APR, or ICH_AP1Rn on GICv3).
    """

    STATE = ()  # a view of the ListRegisterFile

    def __init__(self, counters: list[int], lrf: ListRegisterFile) -> None:
        self.c = counters
        self.lrf = lrf

    def read(self, offset: int) -> int | None:
        """A 32-bit guest read; None for an offset this model does not implement."""
        self.c[GICV_READ] += 1
        lrf = self.lrf
        if offset == GICC_IAR:
            return lrf.acknowledge(0)
        if offset == GICC_CTLR:
            return lrf.grpen0 | (lrf.grpen1 << 1) | (lrf.eoimode << 9)
        if offset == GICC_PMR:
            return lrf.pmr
        if offset == GICC_RPR:
            return min(lrf._running_priority(), 0xFF)
        if offset == GICC_APR0:
            # GICH_APR on a GICv2 host, ICH_AP1R0_EL2 on a GICv3 one (legacy operation)
            return lrf.active_priorities(0)[0]
        if offset == GICC_IIDR:
            return 0x0202143B  # ARM, GICv2 architecture
        if offset in (GICC_BPR, GICC_HPPIR):
            return 0x3FF if offset == GICC_HPPIR else 2
        return None

    def write(self, offset: int, value: int) -> bool:
        """A 32-bit guest write; False for an offset this model does not implement."""
        self.c[GICV_WRITE] += 1
        lrf = self.lrf
        if offset == GICC_EOIR:
            lrf.end_of_interrupt(value, 0)
        elif offset == GICC_CTLR:
            lrf.grpen0 = value & 1
            lrf.grpen1 = (value >> 1) & 1
            lrf.eoimode = (value >> 9) & 1
        elif offset == GICC_PMR:
            lrf.pmr = value & 0xF8
        elif offset in (GICC_BPR, GICC_DIR):
            pass  # binary point and split deactivation are not modelled
        else:
            return False
        return True


class GicDistributor:
    """The host's physical distributor: only the active-state registers KVM's timer code pokes."""

    STATE = ("active",)

    def __init__(self, counters: list[int]) -> None:
        self.c = counters
        self.active = [0] * 32  # ISACTIVERn / ICACTIVERn bit arrays

    def write_isactiver(self, n: int, value: int) -> None:
        self.c[GICD_WRITE] += 1
        self.active[n] |= value

    def write_icactiver(self, n: int, value: int) -> None:
        self.c[GICD_WRITE] += 1
        self.active[n] &= ~value

    def read_isactiver(self, n: int) -> int:
        self.c[GICD_READ] += 1
        return self.active[n]

    # ---- the GIC's own wiring: no register access, nothing counted ------------------
    def deactivate(self, intid: int) -> None:
        """A virtual interrupt with the HW bit was deactivated: so is its physical one."""
        self.active[intid // 32] &= ~(1 << (intid % 32))

    def is_active(self, intid: int) -> bool:
        """Is the physical interrupt active (so the CPU is not signalled it again)?"""
        return bool((self.active[intid // 32] >> (intid % 32)) & 1)
