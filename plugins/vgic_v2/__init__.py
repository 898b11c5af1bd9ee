"""Patches 7-12: arm64 vgic-v2 hyp save/restore (vgic-v2-sr.c) and the GICD_SGIR lookup."""
