"""Patch 6: KVM: arm/arm64: timer: Add active state caching.

Programming the timer PPI's active state on every entry is an irq_set_irqchip_state
call and a GIC write. Only the *inactive* state is cached (the guest's EOI can clear
an active state behind KVM's back): after writing "inactive", later entries that want
"inactive" again skip the call, until the timer line changes level or the vCPU is put.
"""

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="timer-active-cache",
    title="KVM: arm/arm64: timer: Add active state caching",
    subsystem="timer",
    kind="optimization",
    patch=6,
)


@hookimpl
def ws_vcpu_init(vcpu):
    vcpu.timer.active_cleared_last = False


@hookimpl
def kvm_timer_skip_active_write(timer, phys_active):
    if timer.active_cleared_last and not phys_active:
        return True
    timer.active_cleared_last = not phys_active
    return False


@hookimpl
def kvm_timer_update_irq(timer, level):
    timer.active_cleared_last = False


@hookimpl
def kvm_timer_vcpu_put(timer):
    timer.active_cleared_last = False
