"""arch/arm64/kvm/hyp: the world switch's save and restore of the vgic state."""

from __future__ import annotations


def narrow(mask: int, answer: int | None) -> int:
    """An LR mask narrowed by the plugins' combined answer (None: nobody answered)."""
    return mask if answer is None else mask & answer
