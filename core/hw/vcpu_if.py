"""The virtual CPU interface: what a guest's GICC_* / ICC_* accesses reach without an exit.

The hyp control interface (GICH on GICv2, ICH_*_EL2 on GICv3) owns the list registers;
this model reads them the way the GIC does: acknowledge the highest-priority pending
LR, drop priority and deactivate on EOI. Both LR layouts are supported through a codec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SPURIOUS = 0x3FF

# LR states, as the architecture encodes them in both layouts
LR_INVALID, LR_PENDING, LR_ACTIVE, LR_PENDING_ACTIVE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class LrCodec:
    """Field positions of one list-register layout (GICH_LRn or ICH_LRn_EL2)."""

    state_shift: int
    prio_shift: int
    prio_bits: int  # bits of priority the LR holds; the low ones are implied zero
    group_bit: int
    hw_bit: int
    eoi_bit: int
    id_mask: int  # what IAR returns: vINTID (+ source CPU for GICv2-model SGIs)
    pintid_shift: int  # with HW set: the physical INTID the LR deactivates with the virtual one

    def intid(self, lr: int) -> int:
        """What IAR returns for this LR: with HW set the field above the vINTID is the
        physical INTID, never a source CPU."""
        return lr & (0x3FF if lr >> self.hw_bit & 1 else self.id_mask)

    def pintid(self, lr: int) -> int:
        return (lr >> self.pintid_shift) & 0x3FF

    def priority(self, lr: int) -> int:
        mask = (1 << self.prio_bits) - 1
        return ((lr >> self.prio_shift) & mask) << (8 - self.prio_bits)


# GICH_LRn: VirtualID[9:0], CPUID[12:10], EOI[19], Priority[27:23], State[29:28], Grp1[30], HW[31];
# with HW set, PhysicalID[19:10] replaces CPUID and EOI
V2_LR = LrCodec(state_shift=28, prio_shift=23, prio_bits=5, group_bit=30, hw_bit=31, eoi_bit=19, id_mask=0x1FFF,
                pintid_shift=10)
# ICH_LRn_EL2: vINTID[31:0], pINTID[41:32] (EOI at 41), Priority[55:48], Group[60], HW[61], State[63:62]
V3_LR = LrCodec(state_shift=62, prio_shift=48, prio_bits=8, group_bit=60, hw_bit=61, eoi_bit=41, id_mask=0xFFFFFFFF,
                pintid_shift=32)


class ListRegisterFile:
    """List registers plus the state the virtual CPU interface keeps beside them.

    Shared by the hyp control interface (which the hypervisor reads and writes) and
    the virtual CPU interface (which the guest reaches). Derived registers (ELRSR,
    EISR, MISR) are computed from the LRs when read, as the hardware does.
    """

    STATE = ("lr", "hcr", "vmcr", "ap0r", "ap1r", "shared_apr", "eoicount", "maintenance", "phys_deactivated")
    #: what the guest saw, counted: never read by the model (core/memo.py adds to them)
    TALLIES = ("acked", "eois")

    def __init__(self, codec: LrCodec, nr_lr: int, nr_pri_bits: int) -> None:
        self.codec = codec
        self.nr_lr = nr_lr
        self.nr_pri_bits = nr_pri_bits
        self.lr = [0] * nr_lr
        self.hcr = 0
        # VMCR in its native layout. Both layouts keep the group enables in bits 0-1 and
        # EOImode in bit 9; only the priority mask moves (GICH: [31:27], ICH: [31:24]).
        self.vmcr = 0
        self.pmr_shift, self.pmr_bits = (24, 8) if codec is V3_LR else (27, 5)
        self._pmr_mask, self._pmr_scale = (1 << self.pmr_bits) - 1, 8 - self.pmr_bits
        self._fields = (codec.state_shift, codec.group_bit, codec.prio_shift, (1 << codec.prio_bits) - 1,
                        8 - codec.prio_bits)
        self.ap0r = [0] * 4
        self.ap1r = [0] * 4
        # Which active-priority bank every interrupt uses, whatever its group; None when
        # the group picks it (ICC/ICV system registers: group 0 -> AP0Rn, 1 -> AP1Rn).
        # A GICv2 host has the single GICH_APR, modelled as ap0r[0]. A GICv3 host sets 1
        # while its guest uses the memory-mapped GICV interface (IchInterface.write_sre_el1).
        self.shared_apr: int | None = 0 if codec is V2_LR else None
        self.eoicount = 0
        # the maintenance interrupt's line, raised by an EOI the hypervisor asked to hear of
        # (the CPU takes it as a host IRQ: an exit); the machine lowers it once taken
        self.maintenance = False
        # Deactivating an LR with HW set deactivates its physical interrupt in the host's
        # GIC (the board wires this to the physical distributor or redistributor); the flag
        # tells the machine that a physical interrupt may fire again, until it looks
        self.deactivate_physical: Callable[[int], None] = lambda intid: None
        self.phys_deactivated = False
        # what the guest saw: acknowledged IDs and EOIs (for transparency checks)
        self.acked: dict[int, int] = {}
        self.eois = 0

    # ---- derived status registers -------------------------------------------------
    def elrsr(self) -> int:
        """Bit set for each empty LR: state invalid, and HW set or EOI clear (nothing
        waiting for an EOI maintenance interrupt). The GICv3 definition, used for both
        layouts."""
        if not any(self.lr):
            return (1 << self.nr_lr) - 1
        sh, hw, eoi = self.codec.state_shift, 1 << self.codec.hw_bit, 1 << self.codec.eoi_bit
        out = 0
        for i, v in enumerate(self.lr):
            if not (v >> sh) & 3 and (v & hw or not v & eoi):
                out |= 1 << i
        return out

    def eisr(self) -> int:
        """Bit set for each LR that is invalid with EOI set and HW clear."""
        if not any(self.lr):
            return 0
        sh, hw, eoi = self.codec.state_shift, 1 << self.codec.hw_bit, 1 << self.codec.eoi_bit
        out = 0
        for i, v in enumerate(self.lr):
            if v & eoi and not v & hw and not (v >> sh) & 3:
                out |= 1 << i
        return out

    def misr(self) -> int:
        """EOI[0], U[1], LRENP[2], NP[3]: the maintenance conditions this model raises."""
        sh = self.codec.state_shift
        hcr = self.hcr
        misr = 1 if self.eisr() else 0
        if hcr & 0xE:
            states = [(v >> sh) & 3 for v in self.lr]
            if hcr & 2 and sum(1 for st in states if st) <= 1:  # UIE
                misr |= 2
            if hcr & 4 and self.eoicount:  # LRENPIE
                misr |= 4
            if hcr & 8 and not any(st & LR_PENDING for st in states):  # NPIE
                misr |= 8
        return misr

    # ---- VMCR fields the guest's CPU-interface registers map onto -------------------
    @property
    def pmr(self) -> int:
        return ((self.vmcr >> self.pmr_shift) & ((1 << self.pmr_bits) - 1)) << (8 - self.pmr_bits)

    @pmr.setter
    def pmr(self, value: int) -> None:
        field = ((1 << self.pmr_bits) - 1) << self.pmr_shift
        self.vmcr = (self.vmcr & ~field) | (((value & 0xFF) >> (8 - self.pmr_bits)) << self.pmr_shift)

    def _bit(self, n: int, value: int) -> None:
        self.vmcr = (self.vmcr & ~(1 << n)) | ((value & 1) << n)

    grpen0 = property(lambda self: self.vmcr & 1, lambda self, v: self._bit(0, v))
    grpen1 = property(lambda self: (self.vmcr >> 1) & 1, lambda self, v: self._bit(1, v))
    eoimode = property(lambda self: (self.vmcr >> 9) & 1, lambda self, v: self._bit(9, v))

    # ---- the guest side ------------------------------------------------------------
    def active_priorities(self, group: int) -> list[int]:
        """The APR bank an interrupt of ``group`` sets on acknowledge and clears on EOI."""
        shared = self.shared_apr
        return self.ap1r if (group if shared is None else shared) else self.ap0r

    def _running_priority(self) -> int:
        """The group priority of the lowest active-priority bit set, 0x100 when idle.

        Only the banks in use count: with a shared bank the other one is not part of
        this interface's state (on GICv3 the hyp code may leave AP0Rn stale for a GICv2
        guest, as patch 17 does)."""
        best = 0x100
        shared = self.shared_apr
        banks = (self.ap0r, self.ap1r) if shared is None else (self.active_priorities(shared),)
        for regs in banks:
            for n, word in enumerate(regs):
                if word:
                    low = (word & -word).bit_length() - 1
                    best = min(best, (n * 32 + low) << (8 - self.nr_pri_bits))
                    break
        return best

    def _deliverable(self, group: int) -> tuple[int, int]:
        """(LR, priority) of the interrupt IAR would take now; LR -1 when there is none."""
        vmcr = self.vmcr
        if not self.hcr & 1 or not (vmcr >> group) & 1:  # En clear, or the group is disabled
            return -1, 0
        sh, gbit, psh, pmask, pscale = self._fields
        best = -1
        best_prio = 0x100
        i = 0
        for v in self.lr:
            if (v >> sh) & LR_PENDING and (v >> gbit) & 1 == group:
                prio = ((v >> psh) & pmask) << pscale  # codec.priority, inlined: this runs per trap
                if prio < best_prio:
                    best, best_prio = i, prio
            i += 1
        if best < 0 or best_prio >= ((vmcr >> self.pmr_shift) & self._pmr_mask) << self._pmr_scale:
            return -1, 0
        # nothing active (the common case) needs no running-priority scan
        busy = any(self.active_priorities(group)) if self.shared_apr is not None else any(self.ap0r) or any(self.ap1r)
        if busy and best_prio >= self._running_priority():
            return -1, 0  # no preemption of an equal or higher active priority
        return best, best_prio

    def signals_virq(self, group: int) -> bool:
        """Does the interface assert the virtual IRQ line (an interrupt IAR would take)?"""
        return self._deliverable(group)[0] >= 0

    def acknowledge(self, group: int) -> int:
        """IAR: take the highest-priority deliverable pending LR and make it active."""
        best, best_prio = self._deliverable(group)
        if best < 0:
            return SPURIOUS
        regs = self.active_priorities(group)
        codec = self.codec
        sh = codec.state_shift
        v = self.lr[best]
        self.lr[best] = (v & ~(3 << sh)) | (LR_ACTIVE << sh)
        bit = best_prio >> (8 - self.nr_pri_bits)
        regs[bit >> 5] |= 1 << (bit & 31)
        intid = codec.intid(v)
        self.acked[intid] = self.acked.get(intid, 0) + 1
        return intid

    def end_of_interrupt(self, value: int, group: int) -> None:
        """EOIR: drop the running priority, then (EOImode 0) deactivate the LR."""
        self.eois += 1
        regs = self.active_priorities(group)
        for n, word in enumerate(regs):
            if word:
                regs[n] = word & (word - 1)
                break
        if (self.vmcr >> 9) & 1:  # EOImode 1: deactivation is a separate DIR write
            return
        codec = self.codec
        sh = codec.state_shift
        intid = value & codec.id_mask
        for i, v in enumerate(self.lr):
            if codec.intid(v) == intid and (v >> sh) & LR_ACTIVE:
                self.lr[i] = v & ~(LR_ACTIVE << sh)
                if v >> codec.hw_bit & 1:
                    # the physical interrupt is deactivated with the virtual one: no exit
                    self.deactivate_physical(codec.pintid(v))
                    self.phys_deactivated = True
                elif v >> codec.eoi_bit & 1 and self.hcr & 1:
                    self.maintenance = True  # EISR now has this LR: the EOI maintenance interrupt fires
                return
        self.eoicount += 1  # no LR matched: the hardware counts it for LRENP


class LrBank:
    """Several list registers in one call, for GICH and ICH_*_EL2 alike. Each LR is
    still one counted access, in the kernel's order; only the Python call per
    register is saved on the hot path."""

    READ: int  # the event class of one register read
    WRITE: int
    DESCENDING: bool  # the order the kernel walks the LRs in
    c: list[int]
    lrf: ListRegisterFile
    nr_lr: int

    def _order(self) -> range:
        return range(self.nr_lr - 1, -1, -1) if self.DESCENDING else range(self.nr_lr)

    def read_lrs(self, mask: int, dest: list[int]) -> None:
        """Read the LRs in ``mask`` into ``dest``."""
        lr = self.lrf.lr
        if mask == (1 << self.nr_lr) - 1:  # the vanilla case: every LR
            dest[:] = lr
            self.c[self.READ] += self.nr_lr
            return
        for i in self._order():
            if (mask >> i) & 1:
                dest[i] = lr[i]
                self.c[self.READ] += 1

    def write_lrs(self, mask: int, values: list[int], live: int) -> None:
        """Write the LRs in ``mask``: the value for a live one, zero otherwise."""
        lr = self.lrf.lr
        for i in self._order():
            if (mask >> i) & 1:
                lr[i] = values[i] if (live >> i) & 1 else 0
                self.c[self.WRITE] += 1

    def zero_lrs(self, mask: int) -> None:
        lr = self.lrf.lr
        for i in self._order():
            if (mask >> i) & 1:
                lr[i] = 0
                self.c[self.WRITE] += 1
