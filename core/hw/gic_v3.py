"""GICv3 hardware: the ICH_*_EL2 hyp interface, the guest's ICV system registers, and the
host's physical redistributor (the timer PPI's active state lives there)."""

from __future__ import annotations

from ..events import GICR_READ, GICR_WRITE, ICC_SRE_ACCESS, ICH_READ, ICH_WRITE, ICV_READ, ICV_WRITE
from .vcpu_if import V3_LR, ListRegisterFile, LrBank

ICC_SRE_SRE, ICC_SRE_ENABLE = 1, 1 << 3


class IchInterface(LrBank):
    """ICH_*_EL2 plus the ICC_SRE_EL1/EL2 accesses the hyp code makes around them."""

    STATE = ("sre_el2", "sre_el1")
    HOLDS = ("lrf",)

    READ, WRITE = ICH_READ, ICH_WRITE
    DESCENDING = True  # vgic-v3-sr.c's fall-through switch runs from max_lr_idx down

    def __init__(self, counters: list[int], nr_lr: int = 4, nr_pri_bits: int = 5) -> None:
        self.c = counters
        self.lrf = ListRegisterFile(V3_LR, nr_lr, nr_pri_bits)
        self.nr_lr = nr_lr
        self.nr_pri_bits = nr_pri_bits
        self.sre_el2 = ICC_SRE_SRE | ICC_SRE_ENABLE
        self.sre_el1 = ICC_SRE_SRE  # what EL1 sees: the host's value until the hyp code sets the guest's

    def read_vtr(self) -> int:
        self.c[ICH_READ] += 1
        pri = self.nr_pri_bits - 1
        return (self.nr_lr - 1) | (pri << 26) | (pri << 29)  # ListRegs, PREbits, PRIbits

    def read_vmcr(self) -> int:
        self.c[ICH_READ] += 1
        return self.lrf.vmcr

    def write_vmcr(self, value: int) -> None:
        self.c[ICH_WRITE] += 1
        self.lrf.vmcr = value & 0xFFFFFFFF

    def read_misr(self) -> int:
        self.c[ICH_READ] += 1
        return self.lrf.misr()

    def read_eisr(self) -> int:
        self.c[ICH_READ] += 1
        return self.lrf.eisr()

    def read_elrsr(self) -> int:
        self.c[ICH_READ] += 1
        return self.lrf.elrsr() | (0xFFFF & ~((1 << self.nr_lr) - 1))

    def write_hcr(self, value: int) -> None:
        self.c[ICH_WRITE] += 1
        self.lrf.hcr = value & 0x7FFFFFF
        self.lrf.eoicount = (value >> 27) & 0x1F

    def read_lr(self, i: int) -> int:
        self.c[ICH_READ] += 1
        return self.lrf.lr[i]

    def write_lr(self, i: int, value: int) -> None:
        self.c[ICH_WRITE] += 1
        self.lrf.lr[i] = value

    def read_ap0r(self, n: int) -> int:
        self.c[ICH_READ] += 1
        return self.lrf.ap0r[n]

    def write_ap0r(self, n: int, value: int) -> None:
        self.c[ICH_WRITE] += 1
        self.lrf.ap0r[n] = value

    def read_ap1r(self, n: int) -> int:
        self.c[ICH_READ] += 1
        return self.lrf.ap1r[n]

    def write_ap1r(self, n: int, value: int) -> None:
        self.c[ICH_WRITE] += 1
        self.lrf.ap1r[n] = value

    def read_ap0rs(self, n: int, dest: list[int]) -> None:
        for k in range(n - 1, -1, -1):
            dest[k] = self.read_ap0r(k)

    def read_ap1rs(self, n: int, dest: list[int]) -> None:
        for k in range(n - 1, -1, -1):
            dest[k] = self.read_ap1r(k)

    def write_ap0rs(self, n: int, values: list[int]) -> None:
        for k in range(n - 1, -1, -1):
            self.write_ap0r(k, values[k])

    def write_ap1rs(self, n: int, values: list[int]) -> None:
        for k in range(n - 1, -1, -1):
            self.write_ap1r(k, values[k])

    # ICC_SRE_EL1/EL2: system-register-enable controls, accessed from EL2
    def read_sre_el2(self) -> int:
        self.c[ICC_SRE_ACCESS] += 1
        return self.sre_el2

    def write_sre_el2(self, value: int) -> None:
        self.c[ICC_SRE_ACCESS] += 1
        self.sre_el2 = value

    def write_sre_el1(self, value: int) -> None:
        self.c[ICC_SRE_ACCESS] += 1
        self.sre_el1 = value & ICC_SRE_SRE
        # SRE == 0: the guest uses the memory-mapped GICV interface (legacy operation),
        # which keeps every active priority in ICH_AP1Rn_EL2 whatever the group (GICv3
        # spec, GICV_APR<n>; KVM's vgic-mmio-v2.c: "GICv3 only uses ICH_AP1Rn for memory
        # mapped (GICv2) guests"). Patch 17 relies on it to drop the AP0Rn save/restore.
        self.lrf.shared_apr = None if self.sre_el1 else 1


class IcvInterface:
    """The guest's ICC_* system registers, served from the ICH state without an exit.

    Only group 1 is used by a GICv3 guest under KVM (every LR KVM writes has Group=1).
    """

    STATE = ()  # a view of the ListRegisterFile

    def __init__(self, counters: list[int], ich: IchInterface) -> None:
        self.c = counters
        self.ich = ich
        self.lrf = ich.lrf

    def read_iar1(self) -> int:
        self.c[ICV_READ] += 1
        return self.lrf.acknowledge(1)

    def write_eoir1(self, value: int) -> None:
        self.c[ICV_WRITE] += 1
        self.lrf.end_of_interrupt(value, 1)

    def read_pmr(self) -> int:
        self.c[ICV_READ] += 1
        return self.lrf.pmr

    def write_pmr(self, value: int) -> None:
        self.c[ICV_WRITE] += 1
        self.lrf.pmr = value & 0xFF & (0xFF << (8 - self.lrf.nr_pri_bits))

    def read_igrpen1(self) -> int:
        self.c[ICV_READ] += 1
        return self.lrf.grpen1

    def write_igrpen1(self, value: int) -> None:
        self.c[ICV_WRITE] += 1
        self.lrf.grpen1 = value & 1

    def read_sre(self) -> int:
        self.c[ICV_READ] += 1
        return self.ich.sre_el1 | 6  # DIB and DFB read as one


class GicRedistributor:
    """The host's physical redistributor for this CPU: SGI frame active state and RWP."""

    STATE = ("active0",)

    def __init__(self, counters: list[int]) -> None:
        self.c = counters
        self.active0 = 0

    def write_isactiver0(self, value: int) -> None:
        self.c[GICR_WRITE] += 1
        self.active0 |= value

    def write_icactiver0(self, value: int) -> None:
        self.c[GICR_WRITE] += 1
        self.active0 &= ~value

    def read_ctlr(self) -> int:
        """GICR_CTLR: RWP (bit 3) reads zero, the write having already taken effect here."""
        self.c[GICR_READ] += 1
        return 0

    # ---- the GIC's own wiring: no register access, nothing counted ------------------
    def deactivate(self, intid: int) -> None:
        """A virtual interrupt with the HW bit was deactivated: so is its physical one (a PPI here)."""
        if intid < 32:
            self.active0 &= ~(1 << intid)

    def is_active(self, intid: int) -> bool:
        """Is the physical PPI active (so the CPU is not signalled it again)?"""
        return intid < 32 and bool((self.active0 >> intid) & 1)
