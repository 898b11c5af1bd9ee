"""Patches 7-17: the arm64 vgic hyp save/restore (vgic-v2-sr.c, vgic-v3-sr.c) and the
GICD_SGIR lookup.

The GICv2 and GICv3 patches of a pair (7/13, 8/14, 10/15, 11/16) make the same change
to the two files, so each pair is one class here, with one subclass per GIC version:
the hooks are asked by the hyp code of both versions, and each plugin answers only for
its own (``vgic_cpu.hyp_gic``).
"""

from __future__ import annotations

from typing import Any


class ForHypGic:
    """A vgic plugin that answers only the hyp code of one GIC version."""

    hyp_gic: int

    def mine(self, vgic_cpu: Any) -> bool:
        return vgic_cpu.hyp_gic == self.hyp_gic
