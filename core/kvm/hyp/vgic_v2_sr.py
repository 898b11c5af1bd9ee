"""arch/arm64/kvm/hyp/vgic-v2-sr.c: GICH save on exit and restore on entry.

The vanilla v4.5 sequence, written as the series' final code names its steps
(``save_maint_int_state``, ``save_elrsr``, ``save_lrs``), each asking the plugins a
yes/no or which-LRs question (patches 7-11). With no plugin the access sequence is
exactly v4.5's: exit R VMCR, MISR, EISR0, ELRSR0, APR, W HCR, R LR0..n; entry W HCR,
VMCR, APR, LR0..n. The patched orderings differ slightly from the kernel's; order is not
priced, only the accesses are.

``build_vgic_v2_sr`` binds the resolved hooks once per run into the two functions the
run loop calls, so that a question nobody answers costs one local ``is None`` test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import narrow

if TYPE_CHECKING:
    from ...hooks import Hooks
    from ...hw.gic_v2 import GicH
    from ..vgic.vgic import VgicV2Cpu

ALL_EMPTY = (1 << 64) - 1
GICH_MISR_EOI = 1


def save_maint_int_state(cpu: VgicV2Cpu, gich: GicH, expect_mi: bool | None) -> None:
    """MISR and EISR: v4.5 reads both (``expect_mi`` None); once the question is asked,
    MISR only if a maintenance interrupt may be pending, EISR only if MISR says EOI."""
    if expect_mi is None or expect_mi:
        cpu.vgic_misr = gich.read_misr()
        if expect_mi is None or cpu.vgic_misr & GICH_MISR_EOI:
            eisr = gich.read_eisr(0)
            if cpu.nr_lr > 32:
                eisr |= gich.read_eisr(1) << 32
            cpu.vgic_eisr = eisr
            return
    else:
        cpu.vgic_misr = 0
    cpu.vgic_eisr = 0


def save_elrsr(cpu: VgicV2Cpu, gich: GicH) -> None:
    elrsr = gich.read_elrsr(0)
    if cpu.nr_lr > 32:
        elrsr |= gich.read_elrsr(1) << 32
    cpu.vgic_elrsr = elrsr


def save_lrs(cpu: VgicV2Cpu, gich: GicH, lrs: int, read: int, wipe: int) -> None:
    """Read back the LRs in ``read``; of the other saved ones only the state is cleared
    in memory (they are known empty); zero the LRs in ``wipe``."""
    gich.read_lrs(read, cpu.vgic_lr)
    if read != lrs:
        cpu.clear_state(lrs & ~read)
    if wipe:
        gich.zero_lrs(wipe)


def build_vgic_v2_sr(hooks: Hooks) -> tuple[Callable[[VgicV2Cpu, GicH], None], Callable[[VgicV2Cpu, GicH], None]]:
    """Return (__vgic_v2_save_state, __vgic_v2_restore_state) with the hooks bound."""
    lrs_to_save = hooks.ws_vgic_lrs_to_save
    expect_mi = hooks.ws_vgic_expect_mi
    lrs_to_read = hooks.ws_vgic_lrs_to_read
    lrs_to_wipe = hooks.ws_vgic_lrs_to_wipe
    lrs_to_restore = hooks.ws_vgic_lrs_to_restore
    save_vmcr = hooks.ws_vgic_save_vmcr

    def vgic_v2_save_state(cpu: VgicV2Cpu, gich: GicH) -> None:
        if save_vmcr is None or save_vmcr(cpu) is not False:
            cpu.vgic_vmcr = gich.read_vmcr()
        lrs = cpu.all_lrs if lrs_to_save is None else narrow(cpu.all_lrs, lrs_to_save(cpu))
        if not lrs:
            # nothing in flight: the hardware state is known without reading it
            cpu.vgic_misr = cpu.vgic_eisr = cpu.vgic_apr = 0
            cpu.vgic_elrsr = ALL_EMPTY
            return
        save_maint_int_state(cpu, gich, None if expect_mi is None else expect_mi(cpu, lrs))
        save_elrsr(cpu, gich)
        cpu.vgic_apr = gich.read_apr()
        gich.write_hcr(0)
        read = lrs if lrs_to_read is None else narrow(lrs, lrs_to_read(cpu, lrs))
        save_lrs(cpu, gich, lrs, read, 0 if lrs_to_wipe is None else lrs & (lrs_to_wipe(cpu, lrs) or 0))

    def vgic_v2_restore_state(cpu: VgicV2Cpu, gich: GicH) -> None:
        live = cpu.live_mask()
        lrs = cpu.all_lrs if lrs_to_restore is None else narrow(cpu.all_lrs, lrs_to_restore(cpu, live))
        if lrs:
            gich.write_hcr(cpu.vgic_hcr)
        if save_vmcr is None or save_vmcr(cpu) is not False:
            gich.write_vmcr(cpu.vgic_vmcr)
        if lrs:
            gich.write_apr(cpu.vgic_apr)
            gich.write_lrs(lrs, cpu.vgic_lr, live)

    return vgic_v2_save_state, vgic_v2_restore_state
