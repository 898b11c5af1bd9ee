"""Patches 8 and 14: arm64: KVM: vgic-v2/vgic-v3: Save maintenance interrupt state only
if required.

A maintenance interrupt can only be pending if underflow was requested (HCR.UIE, bit 1
of both GICH_HCR and ICH_HCR_EL2) or a saved LR asked for an EOI notification (EOI
set, HW clear). Otherwise MISR and EISR are known to be zero and are not read; the core
reads EISR only when MISR says EOI.
"""

from __future__ import annotations

from typing import Any

from worldswitch.plugin import PluginMeta, hookimpl
from worldswitch.plugins.vgic import ForHypGic

HCR_UIE = 1 << 1


def expect_mi(vgic_cpu: Any, lrs: int) -> bool:
    """The kernel's ``expect_mi``: underflow requested, or an LR in ``lrs`` wants its EOI."""
    if vgic_cpu.vgic_hcr & HCR_UIE:
        return True
    eoi, hw = 1 << vgic_cpu.lr.eoi_bit, 1 << vgic_cpu.lr.hw_bit
    vgic_lr = vgic_cpu.vgic_lr
    for i in range(vgic_cpu.nr_lr):
        if (lrs >> i) & 1 and vgic_lr[i] & eoi and not vgic_lr[i] & hw:
            return True
    return False


class MaintOnDemand(ForHypGic):
    @hookimpl
    def ws_vgic_expect_mi(self, vgic_cpu: Any, lrs: int) -> bool | None:
        return expect_mi(vgic_cpu, lrs) if self.mine(vgic_cpu) else None


class VgicV2MaintOnDemand(MaintOnDemand):
    hyp_gic = 2
    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vgic-v2-maint-on-demand",
        title="arm64: KVM: vgic-v2: Save maintenance interrupt state only if required",
        subsystem="vgic-v2",
        kind="optimization",
        patch=8,
        state=(),
        requires=("vgic-v2-live-lrs",),
        force_note="Without patch 7 every LR counts as saved, so the check runs on every exit; "
        "MISR/EISR are still skipped when no LR asks for an EOI. Guest-visible behaviour is unchanged.",
    )


class VgicV3MaintOnDemand(MaintOnDemand):
    hyp_gic = 3
    WORLDSWITCH_PLUGIN = PluginMeta(
        name="vgic-v3-maint-on-demand",
        title="arm64: KVM: vgic-v3: Save maintenance interrupt state only if required",
        subsystem="vgic-v3",
        kind="optimization",
        patch=14,
        state=(),
        requires=("vgic-v3-live-lrs",),
        force_note="Without patch 13 every LR counts as saved: the check runs on every exit and MISR/EISR are "
        "skipped when no LR asks for an EOI. Guest-visible behaviour is unchanged.",
    )
