"""Patches 7 and 13: arm64: KVM: vgic-v2/vgic-v3: Avoid accessing GICH/ICH registers.

Track the LRs live at entry (``live_lrs``: those holding a pending or active interrupt).
With none live, the exit reads only the VMCR and the entry writes only the VMCR (on
GICv3 it also reads ICH_VTR_EL2); with some, only the live LRs are saved on exit, and
the entry writes every LR as vanilla does.
"""

from __future__ import annotations

from typing import Any

from worldswitch.plugin import PluginMeta, hookimpl
from worldswitch.plugins.vgic import ForHypGic


class LiveLrs(ForHypGic):
    def __init__(self) -> None:
        # the field the patches add to struct vgic_cpu; it belongs to this plugin's run
        self.live_lrs = 0

    @hookimpl
    def ws_vgic_lrs_to_restore(self, vgic_cpu: Any, live_lrs: int) -> int | None:
        if not self.mine(vgic_cpu):
            return None
        self.live_lrs = live_lrs
        # with something live, every LR is written (a live value or zero), as in the patch
        return vgic_cpu.all_lrs if live_lrs else 0

    @hookimpl
    def ws_vgic_lrs_to_save(self, vgic_cpu: Any) -> int | None:
        if not self.mine(vgic_cpu):
            return None
        live, self.live_lrs = self.live_lrs, 0
        return live


class VgicV2LiveLrs(LiveLrs):
    hyp_gic = 2
    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vgic-v2-live-lrs",
        title="arm64: KVM: vgic-v2: Avoid accessing GICH registers",
        subsystem="vgic-v2",
        kind="optimization",
        patch=7,
        state=("live_lrs",),
    )


class VgicV3LiveLrs(LiveLrs):
    hyp_gic = 3
    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vgic-v3-live-lrs",
        title="arm64: KVM: vgic-v3: Avoid accessing ICH registers",
        subsystem="vgic-v3",
        kind="optimization",
        patch=13,
        state=("live_lrs",),
        requires=("vgic-v2-live-lrs",),
        force_note="The kernel patch reuses the live_lrs field patch 7 adds to struct vgic_cpu; each plugin "
        "keeps its own here, so without patch 7 it works the same.",
    )
