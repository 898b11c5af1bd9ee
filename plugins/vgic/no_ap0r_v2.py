"""Patch 17: arm64: KVM: vgic-v3: Do not save ICH_AP0Rn_EL2 for GICv2 emulation.

A GICv2 guest on a GICv3 host (``vgic_sre == 0``, the memory-mapped interface) keeps all
its active priorities in ICH_AP1Rn, so the AP0Rn group is neither saved nor restored.
[inferred: patches.md]
"""

from __future__ import annotations

from typing import Any

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v3-no-ap0r-v2",
    title="arm64: KVM: vgic-v3: Do not save ICH_AP0Rn_EL2 for GICv2 emulation",
    subsystem="vgic-v3",
    kind="optimization",
    patch=17,
    state=(),
    requires=("vgic-v3-live-lrs",),
    force_note="Without patch 13 the APRs are saved on every exit, so the AP0Rn skip applies on every exit "
    "of a GICv2 guest (one ICH read and one write fewer per round trip).",
)


@hookimpl
def ws_vgic_v3_save_ap0rn(vgic_cpu: Any) -> bool | None:
    return bool(vgic_cpu.vgic_sre)
