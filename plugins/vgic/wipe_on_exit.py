"""Patches 11 and 16: arm64: KVM: vgic-v2/vgic-v3: Only wipe LRs on vcpu exit.

Instead of writing every LR on entry (zero for the unused ones), zero each saved LR on
exit and write only the live LRs on entry. Correctness relies on unused LRs being zero
in hardware from boot, which the models' reset provides.
"""

from __future__ import annotations

from typing import Any

from worldswitch.plugin import PluginMeta, hookimpl
from worldswitch.plugins.vgic import ForHypGic


class WipeOnExit(ForHypGic):
    @hookimpl
    def ws_vgic_lrs_to_wipe(self, vgic_cpu: Any, lrs: int) -> int | None:
        return lrs if self.mine(vgic_cpu) else None

    @hookimpl
    def ws_vgic_lrs_to_restore(self, vgic_cpu: Any, live_lrs: int) -> int | None:
        return live_lrs if self.mine(vgic_cpu) else None


class VgicV2WipeOnExit(WipeOnExit):
    hyp_gic = 2
    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vgic-v2-wipe-on-exit",
        title="arm64: KVM: vgic-v2: Only wipe LRs on vcpu exit",
        subsystem="vgic-v2",
        kind="optimization",
        patch=11,
        state=(),
        requires=("vgic-v2-skip-empty-lrs",),
        force_note="Without patch 10 every saved LR is read, then wiped: more GICH accesses than vanilla on the "
        "SGI loop, same guest-visible behaviour. Without patch 7 all LRs are saved and wiped on every exit.",
    )


class VgicV3WipeOnExit(WipeOnExit):
    hyp_gic = 3
    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vgic-v3-wipe-on-exit",
        title="arm64: KVM: vgic-v3: Only wipe LRs on vcpu exit",
        subsystem="vgic-v3",
        kind="optimization",
        patch=16,
        state=(),
        requires=("vgic-v3-skip-empty-lrs",),
        force_note="Without patch 15 each saved LR is read and then wiped; without 13 all LRs are. "
        "Guest-visible behaviour is unchanged.",
    )
