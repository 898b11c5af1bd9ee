"""Patch 6: KVM: arm/arm64: timer: Add active state caching.

Programming the timer PPI's active state on every entry is an irq_set_irqchip_state
call and a GIC write. Only the *inactive* state is cached (the guest's EOI can clear
an active state behind KVM's back): after writing "inactive", later entries that want
"inactive" again skip the call, until the timer line changes level or the vCPU is put.
"""

from __future__ import annotations

from typing import Any

from worldswitch.plugin import PluginMeta, hookimpl


class TimerActiveCache:
    """One per vCPU (each vCPU gets its own plugin instances): the cache is the
    ``active_cleared_last`` field the patch adds to struct arch_timer_cpu."""

    WORLDSWITCH_PLUGIN = PluginMeta(
        name="timer-active-cache",
        title="KVM: arm/arm64: timer: Add active state caching",
        subsystem="timer",
        kind="optimization",
        patch=6,
        state=("active_cleared_last",),
    )

    def __init__(self) -> None:
        self.active_cleared_last = False

    @hookimpl
    def ws_timer_skip_active_write(self, timer: Any, phys_active: bool) -> bool:
        if self.active_cleared_last and not phys_active:
            return True
        self.active_cleared_last = not phys_active
        return False

    @hookimpl
    def ws_timer_update_irq(self, timer: Any, level: bool) -> None:
        self.active_cleared_last = False

    @hookimpl
    def ws_vcpu_put(self, vcpu: Any) -> None:
        self.active_cleared_last = False
