"""arch/arm64/kvm/hyp/vgic-v2-sr.c: GICH save on exit and restore on entry.

The vanilla v4.5 sequence is written as steps, each a policy question a plugin may
answer through a hook (patches 7-11). With no plugin the access sequence is exactly
v4.5's: exit R VMCR, MISR, EISR0, ELRSR0, APR, W HCR, R LR0..n; entry W HCR, VMCR,
APR, LR0..n. The patched orderings differ slightly from the kernel's; order is not
priced, only the accesses are.

``build_vgic_v2_sr`` binds the resolved hooks once per run into the two functions the
run loop calls, so that an unimplemented hook costs one local ``is None`` test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...hooks import Hooks
    from ...hw.gic_v2 import GicH
    from ..vgic.vgic import VgicV2Cpu

ALL_EMPTY = (1 << 64) - 1


def save_maint_int_state(cpu: VgicV2Cpu, gich: GicH, lrs: int) -> None:
    """Vanilla: read MISR and EISR unconditionally."""
    cpu.vgic_misr = gich.read_misr()
    eisr = gich.read_eisr(0)
    if cpu.nr_lr > 32:
        eisr |= gich.read_eisr(1) << 32
    cpu.vgic_eisr = eisr


def save_elrsr(cpu: VgicV2Cpu, gich: GicH) -> None:
    elrsr = gich.read_elrsr(0)
    if cpu.nr_lr > 32:
        elrsr |= gich.read_elrsr(1) << 32
    cpu.vgic_elrsr = elrsr


def build_vgic_v2_sr(hooks: Hooks) -> tuple[Callable[[VgicV2Cpu, GicH], None], Callable[[VgicV2Cpu, GicH], None]]:
    """Return (__vgic_v2_save_state, __vgic_v2_restore_state) with the hooks bound."""
    lrs_to_save = hooks.vgic_v2_lrs_to_save
    maint = hooks.vgic_v2_save_maint_int_state
    elrsr_step = hooks.vgic_v2_save_elrsr
    lrs_to_read = hooks.vgic_v2_lrs_to_read
    lrs_to_wipe = hooks.vgic_v2_lrs_to_wipe
    lrs_to_restore = hooks.vgic_v2_lrs_to_restore

    def vgic_v2_save_state(cpu: VgicV2Cpu, gich: GicH) -> None:
        cpu.vgic_vmcr = gich.read_vmcr()
        lrs = cpu.all_lrs if lrs_to_save is None else lrs_to_save(cpu)
        if not lrs:
            # nothing in flight: the hardware state is known without reading it
            cpu.vgic_misr = cpu.vgic_eisr = cpu.vgic_apr = 0
            cpu.vgic_elrsr = ALL_EMPTY
            return
        if maint is None or not maint(cpu, gich, lrs):
            save_maint_int_state(cpu, gich, lrs)
        if elrsr_step is None or not elrsr_step(cpu, gich):
            save_elrsr(cpu, gich)
        cpu.vgic_apr = gich.read_apr()
        gich.write_hcr(0)
        # save_lrs: read back what must be read, forget the state of the rest
        read = lrs if lrs_to_read is None else lrs_to_read(cpu, lrs)
        gich.read_lrs(read, cpu.vgic_lr)
        if read != lrs:
            cpu.clear_state(lrs & ~read)
        if lrs_to_wipe is not None:
            gich.zero_lrs(lrs_to_wipe(cpu, lrs))
        cpu.live_lrs = 0

    def vgic_v2_restore_state(cpu: VgicV2Cpu, gich: GicH) -> None:
        vgic_lr = cpu.vgic_lr
        live = cpu.live_lrs = cpu.live_mask()
        lrs = cpu.all_lrs if lrs_to_restore is None else lrs_to_restore(cpu, live)
        if lrs:
            gich.write_hcr(cpu.vgic_hcr)
        gich.write_vmcr(cpu.vgic_vmcr)
        if lrs:
            gich.write_apr(cpu.vgic_apr)
            gich.write_lrs(lrs, vgic_lr, live)

    return vgic_v2_save_state, vgic_v2_restore_state
