"""Patches 13-17: arm64 vgic-v3 hyp save/restore (vgic-v3-sr.c)."""
