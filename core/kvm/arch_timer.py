"""virt/kvm/arm/arch_timer.c: the virtual timer's host side.

Before every entry, ``kvm_timer_flush_hwstate`` programs the host interrupt
controller's active state for the virtual timer PPI (v4.5 does it unconditionally,
through irq_set_irqchip_state). Patch 6 caches the inactive state via the
``ws_timer_skip_active_write`` hook.

The guest's timer interrupt is mapped to the physical one (``kvm_timer_vcpu_reset``): its
LR carries the HW bit, so the guest's EOI deactivates the physical interrupt too, with no
maintenance exit; while it is active the physical timer cannot take the CPU out of the
guest. That is why the flush sets it active whenever the line is high or the virtual
interrupt is active, and why patch 6 may cache only the inactive state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .arm import Vcpu

VTIMER_PPI = 27
CNTV_CTL_ENABLE, CNTV_CTL_IMASK, CNTV_CTL_ISTATUS = 1, 2, 4


class ArchTimerCpu:
    """struct arch_timer_cpu: the guest's virtual timer as KVM tracks it.

    Plugins keep their own state (patch 6's cache lives in its plugin object).
    """

    #: the fields the round-trip cache captures (core/memo.py)
    STATE = ("cntv_ctl", "cntv_cval", "irq_level", "enabled")

    def __init__(self) -> None:
        self.cntv_ctl = 0
        self.cntv_cval = 0
        self.irq_level = False
        self.enabled = True  # kvm_timer_enable ran: the vgic is ready

    def should_fire(self, now: int) -> bool:
        ctl = self.cntv_ctl
        return bool(ctl & CNTV_CTL_ENABLE and not ctl & CNTV_CTL_IMASK and self.cntv_cval <= now)


def kvm_timer_vcpu_reset(vcpu: Vcpu) -> None:
    """The virtual timer's interrupt is forwarded from the host's: kvm_vgic_map_phys_irq
    maps the guest's PPI 27 to the physical PPI 27, so it is queued with the HW bit."""
    vcpu.dist.phys_map[VTIMER_PPI] = VTIMER_PPI


def kvm_timer_update_state(vcpu: Vcpu) -> None:
    """Raise or lower the timer line when its condition changed."""
    timer = vcpu.timer
    level = timer.should_fire(vcpu.counter)
    if level != timer.irq_level:
        kvm_timer_update_irq(vcpu, level)


def kvm_timer_update_irq(vcpu: Vcpu, level: bool) -> None:
    timer = vcpu.timer
    timer.irq_level = level
    vcpu.dist.inject_level(VTIMER_PPI, level)
    if vcpu.hooks.ws_timer_update_irq:
        vcpu.hooks.ws_timer_update_irq(timer, level)


def kvm_timer_flush_hwstate(vcpu: Vcpu) -> None:
    timer = vcpu.timer
    if timer.cntv_ctl & CNTV_CTL_ENABLE or timer.irq_level:
        kvm_timer_update_state(vcpu)
    phys_active = timer.irq_level or vcpu.dist.irq_is_active(VTIMER_PPI)
    skip = vcpu.hooks.ws_timer_skip_active_write
    if skip is not None and skip(timer, phys_active):
        return
    vcpu.host_irqchip.irq_set_irqchip_state(VTIMER_PPI, phys_active)


def kvm_timer_sync_hwstate(vcpu: Vcpu) -> None:
    """After the exit only the level is re-evaluated; nothing is written."""
    kvm_timer_update_state(vcpu)
