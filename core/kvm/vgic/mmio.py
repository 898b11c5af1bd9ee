"""The old vgic's MMIO range tables and their linear search (vgic_find_range)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# the guest-physical frame of the distributor, where kvmtool places it (KVM_VGIC_V2_ADDR_TYPE_DIST)
GICD_BASE = 0x3FFF0000
GICD_SIZE = 0x10000

# handle(dist, offset_in_range, is_write, value, size) -> value read (ignored for writes)
Handler = Callable[[Any, int, bool, int, int], int]


@dataclass(frozen=True, slots=True)
class MmioRange:
    """struct vgic_io_range: a register block of the emulated distributor."""

    name: str
    base: int
    len: int
    handle: Handler


def vgic_find_range(ranges: list[MmioRange], offset: int, size: int) -> tuple[MmioRange | None, int]:
    """Linear walk, first range holding [offset, offset+size). Returns (range, ranges tested)."""
    tested = 0
    for r in ranges:
        tested += 1
        if offset >= r.base and offset + size <= r.base + r.len:
            return r, tested
    return None, tested


def bitmap_reg(value: int, bit_offset: int) -> int:
    return (value >> bit_offset) & 0xFFFFFFFF
