"""Patches 10 and 15: arm64: KVM: vgic-v2/vgic-v3: Do not save an LR known to be empty.

ELRSR (saved before the LRs) says which LRs the guest has emptied: their content is
known (state invalid), so only the state bits of the in-memory copy are cleared.
"""

from __future__ import annotations

from typing import Any

from worldswitch.plugin import PluginMeta, hookimpl
from worldswitch.plugins.vgic import ForHypGic


class SkipEmptyLrs(ForHypGic):
    @hookimpl
    def ws_vgic_lrs_to_read(self, vgic_cpu: Any, lrs: int) -> int | None:
        return lrs & ~vgic_cpu.vgic_elrsr if self.mine(vgic_cpu) else None


class VgicV2SkipEmptyLrs(SkipEmptyLrs):
    hyp_gic = 2
    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vgic-v2-skip-empty-lrs",
        title="arm64: KVM: vgic-v2: Do not save an LR known to be empty",
        subsystem="vgic-v2",
        kind="optimization",
        patch=10,
        state=(),
        requires=("vgic-v2-save-elrsr",),
        force_note="The model's save path always reads ELRSR before the LRs, so the skip works without patch 9; "
        "without patch 7 all LRs are candidates and the idle ones are skipped too.",
    )


class VgicV3SkipEmptyLrs(SkipEmptyLrs):
    hyp_gic = 3
    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vgic-v3-skip-empty-lrs",
        title="arm64: KVM: vgic-v3: Do not save an LR known to be empty",
        subsystem="vgic-v3",
        kind="optimization",
        patch=15,
        state=(),
        requires=("vgic-v3-live-lrs", "vgic-v3-maint-on-demand"),
        force_note="ELRSR is read before the LRs at every level in the model, so the skip works without 13 and 14; "
        "without 13 the idle LRs are skipped as well.",
    )
