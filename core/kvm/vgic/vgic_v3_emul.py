"""virt/kvm/arm/vgic-v3-emul.c: the GICv3 distributor and redistributor, and the
ICC_SGI1R_EL1 trap (vgic_v3_dispatch_sgi)."""

from __future__ import annotations

from ...events import VGIC_SGI1R_DECODE
from .mmio import MmioRange
from .vgic import NR_IRQS, VgicDist
from .vgic_v2_emul import VGIC_MAX_IRQS, _bytes, _config, _set_clear

GICD_CTLR_ARE_NS = 1 << 4
GICD_CTLR_ENABLE_G1A = 1 << 1


def _v3_ctlr(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    if w:
        d.enabled = 1 if v & GICD_CTLR_ENABLE_G1A else 0
        d.update_state()
    # affinity routing is always on for a GICv3 guest under KVM
    return GICD_CTLR_ARE_NS | (GICD_CTLR_ENABLE_G1A if d.enabled else 0)


def _typer(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    return ((NR_IRQS // 32) - 1) | (9 << 19)  # ITLinesNumber, IDbits = 10 bits


def _raz(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    return 0


def _idregs(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    return 0x3B if off == 0x18 else 0  # GICD/GICR_PIDR2 (+0xFFE8): ArchRev 3


def _group1(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    return 0xFFFFFFFF  # every interrupt is Group 1 (non-secure) in the GICv3 model


def vgic_v3_dist_ranges() -> list[MmioRange]:
    """vgic_v3_dist_ranges[] (the SPI view: private interrupts live in the redistributor)."""
    n = VGIC_MAX_IRQS
    return [
        MmioRange("CTLR", 0x0000, 4, _v3_ctlr),
        MmioRange("TYPER", 0x0004, 4, _typer),
        MmioRange("IIDR", 0x0008, 4, _raz),
        MmioRange("IGROUPR", 0x0080, n // 8, _group1),
        MmioRange("ISENABLER", 0x0100, n // 8, _set_clear("irq_enabled", True)),
        MmioRange("ICENABLER", 0x0180, n // 8, _set_clear("irq_enabled", False)),
        MmioRange("ISPENDR", 0x0200, n // 8, _set_clear("irq_pending", True)),
        MmioRange("ICPENDR", 0x0280, n // 8, _set_clear("irq_pending", False)),
        MmioRange("ISACTIVER", 0x0300, n // 8, _set_clear("irq_active", True)),
        MmioRange("ICACTIVER", 0x0380, n // 8, _set_clear("irq_active", False)),
        MmioRange("IPRIORITYR", 0x0400, n, _bytes("priority", 32)),
        MmioRange("ITARGETSR", 0x0800, n, _raz),
        MmioRange("ICFGR", 0x0C00, n // 4, _config),
        MmioRange("IGRPMODR", 0x0D00, n // 8, _raz),
        MmioRange("NSACR", 0x0E00, n // 4, _raz),
        MmioRange("SGIR", 0x0F00, 4, _raz),
        MmioRange("CPENDSGIR", 0x0F10, 16, _raz),
        MmioRange("SPENDSGIR", 0x0F20, 16, _raz),
        MmioRange("IROUTER", 0x6000, n * 8, _raz),
        MmioRange("IDREGS", 0xFFD0, 0x30, _idregs),
    ]


def _waker(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    return 0  # ProcessorSleep and ChildrenAsleep read as zero: the CPU is awake


def _rd_typer(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    """GICR_TYPER: Processor_Number[23:8], Last[4] for the last frame, Affinity[63:32]."""
    cpu = d.vcpu_id
    aff = (cpu >> 4 & 0xFF) << 8 | (cpu & 0xF)  # KVM's MPIDR: 16 vCPUs per Aff0 cluster
    low = (cpu << 8) | ((cpu == len(d.peers) - 1) << 4)
    value = low | aff << 32
    return value >> 32 if off == 4 else value


def vgic_redist_ranges() -> list[MmioRange]:
    """vgic_redist_ranges[]: RD_base frame then the SGI_base frame at +0x10000."""
    sgi = 0x10000
    return [
        MmioRange("GICR_CTLR", 0x0000, 4, _raz),
        MmioRange("GICR_TYPER", 0x0008, 8, _rd_typer),
        MmioRange("GICR_IIDR", 0x0004, 4, _raz),
        MmioRange("GICR_WAKER", 0x0014, 4, _waker),
        MmioRange("GICR_IDREGS", 0xFFD0, 0x30, _idregs),
        MmioRange("GICR_IGROUPR0", sgi + 0x0080, 4, _group1),
        MmioRange("GICR_ISENABLER0", sgi + 0x0100, 4, _set_clear("irq_enabled", True)),
        MmioRange("GICR_ICENABLER0", sgi + 0x0180, 4, _set_clear("irq_enabled", False)),
        MmioRange("GICR_ISPENDR0", sgi + 0x0200, 4, _set_clear("irq_pending", True)),
        MmioRange("GICR_ICPENDR0", sgi + 0x0280, 4, _set_clear("irq_pending", False)),
        MmioRange("GICR_ISACTIVER0", sgi + 0x0300, 4, _set_clear("irq_active", True)),
        MmioRange("GICR_ICACTIVER0", sgi + 0x0380, 4, _set_clear("irq_active", False)),
        MmioRange("GICR_IPRIORITYR0", sgi + 0x0400, 32, _bytes("priority", 0)),
        MmioRange("GICR_ICFGR0", sgi + 0x0C00, 8, _config),
        MmioRange("GICR_IGRPMODR0", sgi + 0x0D00, 4, _raz),
        MmioRange("GICR_NSACR", sgi + 0x0E00, 4, _raz),
    ]


def vgic_v3_dispatch_sgi(d: VgicDist, reg: int) -> None:
    """ICC_SGI1R_EL1 write: TargetList[15:0], Aff1..3, INTID[27:24], IRM[40]."""
    d.c[VGIC_SGI1R_DECODE] += 1
    sgi = (reg >> 24) & 0xF
    nr = len(d.peers)
    if (reg >> 40) & 1:
        targets = ((1 << nr) - 1) & ~(1 << d.vcpu_id)  # IRM: all but self
    else:
        # the vCPUs whose MPIDR has Aff3.Aff2.Aff1 of the register and Aff0 in its list
        aff321 = (reg >> 48 & 0xFF) << 16 | (reg >> 32 & 0xFF) << 8 | (reg >> 16 & 0xFF)
        targets = 0
        for cpu in range(nr):
            if (cpu >> 4) == aff321 and (reg >> (cpu & 0xF)) & 1:
                targets |= 1 << cpu
    d.dispatch_sgi(sgi, d.vcpu_id, targets)
