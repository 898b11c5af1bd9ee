"""vmcr-on-load: switch the vGIC's VMCR at vcpu load/put, not on every world switch.

v4.5's hyp code reads GICH_VMCR (ICH_VMCR_EL2 on a GICv3 host) on every exit and writes
it back on every entry. Nothing on the host side of a round trip changes the VMCR or
needs the guest's value of it: only the guest, through its virtual CPU interface, does.
So it can stay in the hardware from ``vcpu_load`` to ``vcpu_put``, written once when the
vCPU is loaded and read back once when it is put: one register read and one write less
per round trip. Linux did this later, in the v4.12 cycle ("KVM: arm/arm64: vgic: Defer
touching GICH_VMCR to vcpu_load/put").

One exception, which Linux keeps too: a GICv2 guest on a GICv3 host.
There ICH_VMCR_EL2.VFIQEn depends on ICC_SRE_EL1.SRE, which the world switch sets for
the host and clears for the guest, so the VMCR has to be switched with it, on every
round trip: this plugin leaves that case to v4.5 (it answers None).

The plugin answers the core's ``ws_vgic_save_vmcr`` question; the core then does the
load/put accesses. A worldswitch without that hook (plugin API v1 as first released)
never asks it: the plugin then implements no hook, changes nothing and says so
(``countable=False``), rather than being refused at discovery for implementing an
unknown hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import worldswitch.hookspecs
from worldswitch.plugin import PluginMeta, hookimpl

if TYPE_CHECKING:
    from worldswitch.kvm.vgic.vgic import VgicCpuIf

__all__ = ["HOOK", "HOOK_AVAILABLE", "VmcrOnLoad"]

#: the question this plugin answers, and whether the installed worldswitch asks it
HOOK = "ws_vgic_save_vmcr"
HOOK_AVAILABLE = hasattr(worldswitch.hookspecs, HOOK)

_F = TypeVar("_F", bound=Callable[..., Any])


def _hookimpl_if_asked(func: _F) -> _F:
    # pluggy refuses an implementation of a hook it has no spec for, and worldswitch then
    # leaves the whole plugin out with a warning: mark it only when the core asks
    return hookimpl(func) if HOOK_AVAILABLE else func


class VmcrOnLoad:
    """Stateless: the answer depends only on which hyp code asks and what the guest is.
    A class all the same, so that it can be registered twice in one run (selected by
    name and passed to a test fixture) without pluggy refusing the second one."""

    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vmcr-on-load",
        title="KVM: arm/arm64: vgic: Defer touching GICH_VMCR to vcpu_load/put",
        subsystem="vgic",
        kind="optimization",
        countable=HOOK_AVAILABLE,
        state=(),  # stateless: the round-trip cache needs nothing of it
    )

    @_hookimpl_if_asked
    def ws_vgic_save_vmcr(self, vgic_cpu: VgicCpuIf) -> bool | None:
        if vgic_cpu.hyp_gic == 3 and not getattr(vgic_cpu, "vgic_sre", 1):
            return None  # a GICv2 guest on GICv3: VFIQEn follows SRE, switched every round trip
        return False
