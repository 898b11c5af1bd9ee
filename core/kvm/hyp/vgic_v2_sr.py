"""arch/arm64/kvm/hyp/vgic-v2-sr.c: GICH save on exit and restore on entry.

The vanilla v4.5 sequence is written as steps, each a policy question a plugin may
answer through a hook (patches 7-11). With no plugin the access sequence is exactly
v4.5's: exit R VMCR, MISR, EISR0, ELRSR0, APR, W HCR, R LR0..n; entry W HCR, VMCR,
APR, LR0..n. The patched orderings differ slightly from the kernel's; order is not
priced, only the accesses are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...hw.gic_v2 import GicH
    from ..vgic.vgic import VgicV2Cpu
    from ..arm import Hooks

GICH_LR_STATE = 3 << 28
GICH_MISR_EOI = 1


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


def vgic_v2_save_state(cpu: VgicV2Cpu, gich: GicH, hooks: Hooks) -> None:
    """__vgic_v2_save_state."""
    cpu.vgic_vmcr = gich.read_vmcr()
    lrs = hooks.vgic_v2_lrs_to_save(cpu) if hooks.vgic_v2_lrs_to_save else cpu.all_lrs
    if not lrs:
        # nothing in flight: the hardware state is known without reading it
        cpu.vgic_misr = cpu.vgic_eisr = cpu.vgic_apr = 0
        cpu.vgic_elrsr = (1 << 64) - 1
        return
    if not (hooks.vgic_v2_save_maint_int_state and hooks.vgic_v2_save_maint_int_state(cpu, gich, lrs)):
        save_maint_int_state(cpu, gich, lrs)
    if not (hooks.vgic_v2_save_elrsr and hooks.vgic_v2_save_elrsr(cpu, gich)):
        save_elrsr(cpu, gich)
    cpu.vgic_apr = gich.read_apr()
    gich.write_hcr(0)
    save_lrs(cpu, gich, lrs, hooks)
    cpu.live_lrs = 0


def save_lrs(cpu: VgicV2Cpu, gich: GicH, lrs: int, hooks: Hooks) -> None:
    needs_read = hooks.vgic_v2_lr_needs_read
    wipe = hooks.vgic_v2_wipe_lr_on_exit
    vgic_lr = cpu.vgic_lr
    for i in range(cpu.nr_lr):
        if not (lrs >> i) & 1:
            continue
        if needs_read is None or needs_read(cpu, i):
            vgic_lr[i] = gich.read_lr(i)
        else:
            vgic_lr[i] &= ~GICH_LR_STATE
        if wipe is not None and wipe(cpu, i):
            gich.write_lr(i, 0)


def vgic_v2_restore_state(cpu: VgicV2Cpu, gich: GicH, hooks: Hooks) -> None:
    """__vgic_v2_restore_state."""
    vgic_lr = cpu.vgic_lr
    live = 0
    for i in range(cpu.nr_lr):
        if vgic_lr[i] & GICH_LR_STATE:
            live |= 1 << i
    cpu.live_lrs = live
    lrs = hooks.vgic_v2_lrs_to_restore(cpu, live) if hooks.vgic_v2_lrs_to_restore else cpu.all_lrs
    if lrs:
        gich.write_hcr(cpu.vgic_hcr)
    gich.write_vmcr(cpu.vgic_vmcr)
    if lrs:
        gich.write_apr(cpu.vgic_apr)
        for i in range(cpu.nr_lr):
            if (lrs >> i) & 1:
                gich.write_lr(i, vgic_lr[i] if (live >> i) & 1 else 0)
