"""The v4.5 ("old") vgic: distributor state, and the flush/sync of the in-memory list
registers around each guest entry (virt/kvm/arm/vgic.c).

Only memory is touched here. The hyp code (:mod:`..hyp.vgic_v2_sr`, :mod:`..hyp.vgic_v3_sr`)
moves the in-memory LRs to and from the hardware.
"""

from __future__ import annotations

from ...events import VGIC_DISPATCH_SGI, VGIC_LR_SYNC, VGIC_QUEUE_IRQ
from ...hw.vcpu_if import V2_LR, V3_LR, LrCodec

VGIC_NR_PRIVATE_IRQS = 32
PRIVATE_IRQS = (1 << VGIC_NR_PRIVATE_IRQS) - 1
VGIC_NR_SGIS = 16
NR_IRQS = 64  # private interrupts plus one block of SPIs: enough for these guests

# in-memory LR state bits (the architectural values, both layouts)
LR_STATE_PENDING, LR_STATE_ACTIVE = 1, 2


class VgicCpuIf:
    """What the v2 and v3 shadows share: the in-memory LRs and their live set."""

    nr_lr: int
    all_lrs: int
    hyp_gic: int
    lr: LrCodec
    vgic_hcr: int
    vgic_elrsr: int
    vgic_lr: list[int]
    state_shift: int

    def live_mask(self) -> int:
        """The LRs holding a pending or active interrupt (patch 7's ``live_lrs``)."""
        vgic_lr = self.vgic_lr
        live = 0
        if any(vgic_lr):
            sh = self.state_shift
            for i in range(self.nr_lr):
                if (vgic_lr[i] >> sh) & 3:
                    live |= 1 << i
        return live

    def clear_state(self, mask: int) -> None:
        """Mark the LRs in ``mask`` invalid in memory without reading them back."""
        vgic_lr = self.vgic_lr
        for i in range(self.nr_lr):
            if (mask >> i) & 1:
                vgic_lr[i] &= ~(3 << self.state_shift)


class VgicV2Cpu(VgicCpuIf):
    """struct vgic_v2_cpu_if: the GICH shadow the hyp code saves into and restores from."""

    STATE = ("vgic_hcr", "vgic_vmcr", "vgic_misr", "vgic_eisr", "vgic_elrsr", "vgic_apr", "vgic_lr")

    def __init__(self, nr_lr: int) -> None:
        self.nr_lr = nr_lr
        self.all_lrs = (1 << nr_lr) - 1
        self.vgic_hcr = 1  # GICH_HCR_EN, set by vgic_v2_enable
        self.vgic_vmcr = 0
        self.vgic_misr = 0
        self.vgic_eisr = 0
        self.vgic_elrsr = (1 << 64) - 1
        self.vgic_apr = 0
        self.vgic_lr = [0] * nr_lr

    hyp_gic = 2  # saved and restored by vgic-v2-sr.c through GICH
    lr = V2_LR  # the list-register layout, shared with the hardware model and the plugins
    # the layout's fields, for the generic code (declared once, in the codec)
    state_shift = V2_LR.state_shift
    eoi_bit = 1 << V2_LR.eoi_bit

    def build_lr(self, irq: int, source: int, state: int, eoi: bool, phys: int = -1) -> int:
        """vgic_v2_set_lr's encoding; ``phys`` >= 0: HW set, PhysicalID in place of CPUID and EOI."""
        if phys >= 0:
            return irq | (phys << V2_LR.pintid_shift) | (state << self.state_shift) | (1 << V2_LR.hw_bit)
        return irq | (source << 10) | (state << self.state_shift) | (self.eoi_bit if eoi else 0)

    def lr_irq(self, lr: int) -> int:
        return lr & 0x3FF


class VgicV3Cpu(VgicCpuIf):
    """struct vgic_v3_cpu_if: the ICH shadow, with the guest's view of ICC_SRE_EL1."""

    STATE = ("vgic_sre", "vgic_hcr", "vgic_vmcr", "vgic_misr", "vgic_eisr", "vgic_elrsr", "vgic_ap0r", "vgic_ap1r",
             "vgic_lr")

    def __init__(self, nr_lr: int, nr_pri_bits: int, vgic_sre: int) -> None:
        self.nr_lr = nr_lr
        self.all_lrs = (1 << nr_lr) - 1
        self.nr_pri_bits = nr_pri_bits
        self.vgic_sre = vgic_sre  # 1 for a GICv3 guest, 0 for a GICv2 guest on this host
        self.vgic_hcr = 1  # ICH_HCR_EN
        self.vgic_vmcr = 0
        self.vgic_misr = 0
        self.vgic_eisr = 0
        self.vgic_elrsr = 0xFFFF
        self.vgic_ap0r = [0] * 4
        self.vgic_ap1r = [0] * 4
        self.vgic_lr = [0] * nr_lr

    hyp_gic = 3  # saved and restored by vgic-v3-sr.c through ICH_*_EL2
    lr = V3_LR
    state_shift = V3_LR.state_shift
    eoi_bit = 1 << V3_LR.eoi_bit

    def build_lr(self, irq: int, source: int, state: int, eoi: bool, phys: int = -1) -> int:
        """vgic_v3_set_lr's encoding; ``phys`` >= 0: HW set, pINTID in place of EOI."""
        lr = irq | (state << self.state_shift)
        if phys >= 0:
            lr |= (phys << V3_LR.pintid_shift) | (1 << V3_LR.hw_bit)
        elif eoi:
            lr |= self.eoi_bit
        if self.vgic_sre:
            lr |= 1 << V3_LR.group_bit  # a GICv3 guest's interrupts are Group 1
        else:
            lr |= source << 10  # the GICv2 model reports the SGI source in the ID
        return lr

    def lr_irq(self, lr: int) -> int:
        return lr & 0x3FF


class VgicDist:
    """struct vgic_dist for one vCPU, with the in-memory LR bookkeeping of struct vgic_cpu."""

    STATE = ("enabled", "irq_enabled", "irq_pending", "irq_level", "irq_active", "irq_queued", "irq_cfg_edge",
             "priority", "targets", "irq_sgi_sources", "lr_used", "irq_lr_map", "pending_on_cpu", "kicked", "phys_map",
             "mine")

    def __init__(self, counters: list[int], vgic_cpu: VgicV2Cpu | VgicV3Cpu, model: int) -> None:
        self.c = counters
        self.cpu = vgic_cpu
        self.model = model  # 2 or 3: the GIC the guest sees
        self.enabled = 0  # GICD_CTLR enable
        self.irq_enabled = 0xFFFF  # bit per interrupt; vgic_init enables the SGIs, which stay enabled
        self.irq_pending = 0
        self.irq_level = 0
        self.irq_active = 0
        self.irq_queued = 0  # level interrupts sitting in an LR (vgic_irq_set_queued)
        self.irq_cfg_edge = 0xFFFF  # SGIs are edge; everything else level until configured
        self.priority = bytearray(NR_IRQS)
        self.targets = bytearray(NR_IRQS)
        self.targets[VGIC_NR_PRIVATE_IRQS:] = b"\x01" * (NR_IRQS - VGIC_NR_PRIVATE_IRQS)  # vgic_init: vCPU 0
        self.irq_sgi_sources = [0] * VGIC_NR_SGIS
        self.lr_used = 0
        self.irq_lr_map: dict[int, int] = {}
        self.pending_on_cpu = False
        # the VM's vCPUs, by id, each with its own copy of this structure (the private
        # interrupts are banked; writes to the shared registers are applied to every copy)
        self.vcpu_id = 0
        self.peers: list[VgicDist] = [self]
        self.kicked = False  # another vCPU made an interrupt pending here while this one ran
        # kvm_vgic_map_phys_irq: virtual interrupts forwarded from a physical one (the
        # timer's), queued with the HW bit so that the guest's EOI deactivates both
        self.phys_map: dict[int, int] = {}
        # the interrupts this vCPU may take: its private ones and the SPIs targeted at it
        # (irq_spi_target); vgic_init targets every SPI at vCPU 0
        self.mine = (1 << NR_IRQS) - 1

    # ---- state changes from the distributor emulation -----------------------------
    def update_state(self) -> None:
        """vgic_update_state: does this vCPU have something to take?"""
        self.pending_on_cpu = bool(self.enabled and self.irq_pending & self.irq_enabled & self.mine)

    def retarget(self) -> None:
        """irq_spi_target after vgic_set_target_reg: each SPI goes to the one vCPU its
        GICD_ITARGETSR byte names (the lowest set bit; ``targets`` holds it as that one
        bit). A GICv3 guest's SPIs stay on vCPU 0: GICD_IROUTER is not modelled."""
        mine = PRIVATE_IRQS
        for irq in range(VGIC_NR_PRIVATE_IRQS, NR_IRQS):
            t = self.targets[irq] if self.model == 2 else 0
            if (t.bit_length() - 1 if t else 0) == self.vcpu_id:
                mine |= 1 << irq
        self.mine = mine
        self.update_state()

    def dispatch_sgi(self, sgi: int, source: int, targets: int) -> None:
        """vgic_dispatch_sgi / vgic_v3_dispatch_sgi, after the target list is decoded into a
        bitmap of vCPU ids: the SGI becomes pending on each target, from ``source``."""
        self.c[VGIC_DISPATCH_SGI] += 1
        peers = self.peers
        while targets:
            cpu = (targets & -targets).bit_length() - 1
            targets &= targets - 1
            if cpu < len(peers):
                d = peers[cpu]
                d.irq_sgi_sources[sgi] |= 1 << source
                d.irq_pending |= 1 << sgi
                d.update_state()
                if d is not self:
                    d.kicked = True  # kvm_vcpu_kick: the target must exit to see it

    def inject_level(self, irq: int, level: bool) -> None:
        """kvm_vgic_inject_irq for a level-sensitive line (the timer's)."""
        bit = 1 << irq
        if level:
            self.irq_level |= bit
            self.irq_pending |= bit
        else:
            self.irq_level &= ~bit
            self.irq_pending &= ~bit
        self.update_state()

    def irq_is_active(self, irq: int) -> bool:
        """kvm_vgic_map_is_active: active in the distributor or in an in-memory LR."""
        if (self.irq_active >> irq) & 1:
            return True
        lr = self.irq_lr_map.get(irq)
        return lr is not None and bool((self.cpu.vgic_lr[lr] >> self.cpu.state_shift) & LR_STATE_ACTIVE)

    def has_pending(self) -> bool:
        """kvm_vgic_vcpu_pending_irq: something in the distributor or in an LR to deliver."""
        if self.pending_on_cpu:
            return True
        shift = self.cpu.state_shift
        return any((lr >> shift) & LR_STATE_PENDING for lr in self.cpu.vgic_lr)

    # ---- around the world switch -------------------------------------------------
    def queue_irq(self, source: int, irq: int) -> bool:
        """vgic_queue_irq: put (irq, source) in an LR; False when no LR is free."""
        cpu = self.cpu
        lr = self.irq_lr_map.get(irq)
        # vgic_v2_get_lr decodes a source only for an SGI
        if lr is not None and (((cpu.vgic_lr[lr] >> 10) & 7) if irq < VGIC_NR_SGIS else 0) == source:
            cpu.vgic_lr[lr] |= LR_STATE_PENDING << cpu.state_shift
            self.c[VGIC_QUEUE_IRQ] += 1
            return True
        free = ~self.lr_used & cpu.all_lrs
        if not free:
            return False
        lr = (free & -free).bit_length() - 1
        level = not (self.irq_cfg_edge >> irq) & 1
        # vgic_queue_irq_to_lr: a level interrupt asks for its EOI maintenance, unless it is
        # mapped to a physical one (HW set, no EOI: the guest's EOI deactivates both)
        cpu.vgic_lr[lr] = cpu.build_lr(irq, source, LR_STATE_PENDING, eoi=level, phys=self.phys_map.get(irq, -1))
        cpu.vgic_elrsr &= ~(1 << lr)
        self.lr_used |= 1 << lr
        self.irq_lr_map[irq] = lr
        self.c[VGIC_QUEUE_IRQ] += 1
        return True

    def process_maintenance(self) -> None:
        """vgic_process_maintenance: each LR in EISR held a level-triggered interrupt the
        guest has EOId. Clear it (state and EOI bit) so it reads empty, and let the line be
        sampled again: still high, it is pending in the distributor and the flush requeues it."""
        cpu = self.cpu
        eisr = cpu.vgic_eisr & self.lr_used
        eoi = cpu.eoi_bit
        while eisr:
            lr = (eisr & -eisr).bit_length() - 1
            eisr &= eisr - 1
            cpu.vgic_lr[lr] &= ~(eoi | 3 << cpu.state_shift)
            cpu.vgic_elrsr |= 1 << lr
            irq = cpu.lr_irq(cpu.vgic_lr[lr])
            self.irq_queued &= ~(1 << irq)
            if (self.irq_level >> irq) & 1:
                self.irq_pending |= 1 << irq
        if self.enabled and self.irq_pending & self.irq_enabled & self.mine:
            self.pending_on_cpu = True

    def sync_hwirqs(self) -> None:
        """vgic_sync_hwirq for each LR: one with HW set that no longer holds a state was
        deactivated by the guest, which also deactivated the physical interrupt. So
        process_queued_irq: sample the line again (still high, pending again), and clear
        the LR's state and physical ID."""
        cpu = self.cpu
        hw, sh = 1 << cpu.lr.hw_bit, cpu.state_shift
        lrs = cpu.vgic_lr
        used = self.lr_used
        while used:
            lr = (used & -used).bit_length() - 1
            used &= used - 1
            v = lrs[lr]
            if not v & hw or (v >> sh) & 3:
                continue
            irq = cpu.lr_irq(v)
            bit = 1 << irq
            self.irq_queued &= ~bit
            if not self.irq_level & bit:
                self.irq_pending &= ~bit
            lrs[lr] = irq  # vlr.state = 0, vlr.hwirq = 0: only the virtual ID stays

    def flush_hwstate(self) -> None:
        """__kvm_vgic_flush_hwstate: move pending interrupts into free in-memory LRs."""
        if not self.pending_on_cpu:
            return
        overflow = False
        todo = self.irq_pending & self.irq_enabled & self.mine
        while todo:
            irq = (todo & -todo).bit_length() - 1
            todo &= todo - 1
            if irq < VGIC_NR_SGIS:
                sources = self.irq_sgi_sources[irq]
                while sources:
                    src = (sources & -sources).bit_length() - 1
                    if not self.queue_irq(src, irq):
                        overflow = True
                        break
                    sources &= sources - 1
                self.irq_sgi_sources[irq] = sources
                if not sources:
                    self.irq_pending &= ~(1 << irq)
            elif not (self.irq_cfg_edge >> irq) & 1 and (self.irq_queued >> irq) & 1:
                continue  # vgic_can_sample_irq: a level interrupt in an LR until its EOI maintenance
            elif self.queue_irq(0, irq):
                if (self.irq_cfg_edge >> irq) & 1:
                    self.irq_pending &= ~(1 << irq)
                else:
                    self.irq_queued |= 1 << irq
            else:
                overflow = True
        cpu = self.cpu
        if overflow:
            cpu.vgic_hcr |= 2  # underflow maintenance interrupt: tell us when LRs drain
        else:
            cpu.vgic_hcr &= ~2
        self.pending_on_cpu = overflow

    def sync_hwstate(self) -> None:
        """__kvm_vgic_sync_hwstate: vgic_process_maintenance (the LRs whose EOI the guest
        signalled, in EISR), vgic_sync_hwirq (the HW LRs the guest deactivated), then retire
        the LRs the hardware reports empty."""
        cpu = self.cpu
        if cpu.vgic_misr & 1 and cpu.vgic_eisr & self.lr_used:
            self.process_maintenance()
        if self.irq_queued:  # only a queued level interrupt can sit in an LR with HW set
            self.sync_hwirqs()
        empty = cpu.vgic_elrsr & self.lr_used
        if empty:
            lrs = cpu.vgic_lr
            while empty:
                lr = (empty & -empty).bit_length() - 1
                empty &= empty - 1
                self.lr_used &= ~(1 << lr)
                self.irq_lr_map.pop(cpu.lr_irq(lrs[lr]), None)
                self.c[VGIC_LR_SYNC] += 1
        if cpu.vgic_misr & 2:  # underflow: the flush will refill
            cpu.vgic_hcr &= ~2
        if self.irq_pending & self.irq_enabled & self.mine and self.enabled:
            self.pending_on_cpu = True
