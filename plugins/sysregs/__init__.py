"""Patches 1-5: system-register table search (arm64 sys_regs.c, 32-bit coproc.c)."""
