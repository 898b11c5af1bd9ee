"""virt/kvm/arm/vgic-v2-emul.c: the GICv2 distributor the guest sees at 0x3fff0000."""

from __future__ import annotations

from .mmio import MmioRange, bitmap_reg
from .vgic import NR_IRQS, VgicDist

VGIC_MAX_IRQS = 1024


def _ctlr(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    if off == 0:  # GICD_CTLR
        if w:
            d.enabled = v & 1
            d.update_state()
        return d.enabled
    if off == 4:  # GICD_TYPER: ITLinesNumber, CPUNumber 0
        return (NR_IRQS // 32) - 1
    return 0x4B00043B  # GICD_IIDR: KVM's implementer code


def _group(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    return 0  # RAZ/WI: every interrupt is Group 0 in the GICv2 model


def _set_clear(attr: str, setting: bool):
    def handle(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
        shift = off * 8
        cur = getattr(d, attr)
        if w and shift < NR_IRQS:
            mask = (v & 0xFFFFFFFF) << shift
            if attr == "irq_enabled" and shift == 0:
                mask &= ~0 if setting else ~0xFFFF  # SGIs cannot be disabled
            setattr(d, attr, cur | mask if setting else cur & ~mask)
            d.update_state()
        return bitmap_reg(getattr(d, attr), shift) if shift < NR_IRQS else 0

    return handle


def _bytes(attr: str, writable_from: int):
    def handle(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
        arr = getattr(d, attr)
        if w:
            for k in range(size):
                if writable_from <= off + k < NR_IRQS:
                    arr[off + k] = (v >> (8 * k)) & 0xFF
        return sum(arr[off + k] << (8 * k) for k in range(size) if off + k < NR_IRQS)

    return handle


def _targets(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    if off < 32:  # private interrupts target the reading CPU
        mine = 1 << d.vcpu_id
        return mine * 0x01010101 if size == 4 else mine
    if w:  # vgic_set_target_reg: one target per SPI, the lowest CPU named (CPU 0 if none)
        for k in range(size):
            b = (v >> (8 * k)) & 0xFF
            if off + k < NR_IRQS:
                d.targets[off + k] = (b & -b) or 1
        d.retarget()
    # vgic_get_target_reg reads back that one CPU
    return sum(d.targets[off + k] << (8 * k) for k in range(size) if off + k < NR_IRQS)


def _config(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    first = off * 4  # two bits per interrupt
    if w and first >= 32:  # SGI and PPI configuration is fixed
        for k in range(16):
            irq = first + k
            if irq < NR_IRQS:
                edge = (v >> (2 * k + 1)) & 1
                d.irq_cfg_edge = (d.irq_cfg_edge & ~(1 << irq)) | (edge << irq)
    return sum(((d.irq_cfg_edge >> (first + k)) & 1) << (2 * k + 1) for k in range(16) if first + k < NR_IRQS)


def handle_mmio_sgi_reg(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
    """GICD_SGIR: decode the target list and dispatch (vgic_dispatch_sgi)."""
    if w:
        sgi = v & 0xF
        target_list = (v >> 16) & 0xFF
        mode = (v >> 24) & 3
        me = 1 << d.vcpu_id
        if mode == 1:
            target_list = ((1 << len(d.peers)) - 1) & ~me  # everybody but me
        elif mode == 2:
            target_list = me
        d.dispatch_sgi(sgi, d.vcpu_id, target_list)
    return 0


def _sgi_pending(setting: bool):
    def handle(d: VgicDist, off: int, w: bool, v: int, size: int) -> int:
        if w:
            for k in range(size):
                sgi = off + k
                bits = (v >> (8 * k)) & 0xFF
                if setting:
                    d.irq_sgi_sources[sgi] |= bits
                else:
                    d.irq_sgi_sources[sgi] &= ~bits
                if d.irq_sgi_sources[sgi]:
                    d.irq_pending |= 1 << sgi
                else:
                    d.irq_pending &= ~(1 << sgi)
            d.update_state()
        return sum(d.irq_sgi_sources[off + k] << (8 * k) for k in range(size))

    return handle


def vgic_dist_ranges() -> list[MmioRange]:
    """vgic_dist_ranges[] of v4.5, in its order (14 ranges; GICD_SGIR is the 12th)."""
    n = VGIC_MAX_IRQS
    return [
        MmioRange("CTRL", 0x000, 12, _ctlr),
        MmioRange("IGROUP", 0x080, n // 8, _group),
        MmioRange("ENABLE_SET", 0x100, n // 8, _set_clear("irq_enabled", True)),
        MmioRange("ENABLE_CLEAR", 0x180, n // 8, _set_clear("irq_enabled", False)),
        MmioRange("PENDING_SET", 0x200, n // 8, _set_clear("irq_pending", True)),
        MmioRange("PENDING_CLEAR", 0x280, n // 8, _set_clear("irq_pending", False)),
        MmioRange("ACTIVE_SET", 0x300, n // 8, _set_clear("irq_active", True)),
        MmioRange("ACTIVE_CLEAR", 0x380, n // 8, _set_clear("irq_active", False)),
        MmioRange("PRI", 0x400, n, _bytes("priority", 0)),
        MmioRange("TARGET", 0x800, n, _targets),
        MmioRange("CONFIG", 0xC00, n // 4, _config),
        MmioRange("SOFTINT", 0xF00, 4, handle_mmio_sgi_reg),
        MmioRange("SGI_PENDING_CLEAR", 0xF10, 16, _sgi_pending(False)),
        MmioRange("SGI_PENDING_SET", 0xF20, 16, _sgi_pending(True)),
    ]


#: the first byte offset, in each range, of a register that is not banked per CPU
_SHARED_FROM = {"CTRL": 0, "ENABLE_SET": 4, "ENABLE_CLEAR": 4, "PENDING_SET": 4, "PENDING_CLEAR": 4,
                "ACTIVE_SET": 4, "ACTIVE_CLEAR": 4, "PRI": 32, "TARGET": 32, "CONFIG": 8}


def dist_write_is_shared(name: str, offset: int) -> bool:
    """Does a write there change state every vCPU sees (GICD_CTLR, the SPIs' registers),
    rather than the writer's banked private interrupts or an SGI it sends?"""
    first = _SHARED_FROM.get(name)
    return first is not None and offset >= first
