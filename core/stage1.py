"""The stage-1 translation walk, as far as a fault's syndrome needs it.

When a guest with its MMU on touches a VA its page tables do not allow, the CPU takes a
Data or Instruction Abort to EL1, never to the hypervisor (ARM ARM D8, "The VMSAv8-64
address translation system"). Unicorn stops at such an abort without saying which fault
it was, so the machine walks the guest's tables itself, in guest RAM, to find what the
hardware would report: the fault status code (translation, access flag or permission
fault) and the level at which the walk stopped.

Covered: the 4, 16 and 64 KiB granules, TTBR0/TTBR1 with T0SZ/T1SZ and EPD0/EPD1, table,
block and page descriptors, the access flag (unless TCR_EL1.HA), AP[2:1], PXN/UXN, the
hierarchical APTable/PXNTable/UXNTable bits, SCTLR_EL1.WXN and "EL0-writable is never
EL1-executable". Not covered (the walk returns None and the machine reports that it
cannot deliver the abort): address size faults, synchronous external aborts, PAN, and
alignment faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TRANSLATION, ACCESS_FLAG, PERMISSION = 0x04, 0x08, 0x0C  # DFSC/IFSC: kind | level


@dataclass(frozen=True)
class Fault:
    kind: int  # TRANSLATION, ACCESS_FLAG or PERMISSION
    level: int

    @property
    def fsc(self) -> int:
        return self.kind | self.level


# TG0 and TG1 encode the granule differently (ARM ARM D17.2.131)
_TG0 = {0b00: 12, 0b01: 16, 0b10: 14}
_TG1 = {0b10: 12, 0b11: 16, 0b01: 14}


def walk(read: Callable[[int], int | None], va: int, tcr: int, ttbr0: int, ttbr1: int, sctlr: int, el: int,
         access: str) -> Fault | int | None:
    """The fault an ``access`` ("read", "write" or "fetch") at ``va`` from EL ``el`` (0 or 1)
    takes; else the physical address it reaches; None where the walk leaves what is
    modelled (then the abort is something else). ``read(pa)`` gives a 64-bit descriptor,
    or None where there is no RAM."""
    upper = (va >> 55) & 1
    if (tcr >> (38 if upper else 37)) & 1:  # TBI: the top byte is a tag, not address
        va = (va & ((1 << 56) - 1)) | ((0xFF << 56) if upper else 0)
    tsz = (tcr >> 16) & 0x3F if upper else tcr & 0x3F
    epd = (tcr >> 23) & 1 if upper else (tcr >> 7) & 1
    granule = _TG1.get((tcr >> 30) & 3) if upper else _TG0.get((tcr >> 14) & 3)
    if granule is None:
        return None
    bits = 64 - tsz
    top = va >> bits
    if top != ((1 << tsz) - 1 if upper else 0) or epd:
        return Fault(TRANSLATION, 0)  # outside this half's VA range, or its walks disabled
    stride = granule - 3
    levels = -(-(bits - granule) // stride)
    level = 4 - levels
    # the first table holds only the entries the VA size needs, and is aligned to its size
    first = (bits - granule - stride * (3 - level)) + 3
    table = ((ttbr1 if upper else ttbr0) & ((1 << 48) - 1)) & ~((1 << max(6, first)) - 1)
    ap_table = xn_table = pxn_table = 0
    while True:
        shift = granule + stride * (3 - level)
        index = (va >> shift) & ((1 << min(stride, bits - shift)) - 1)
        desc = read(table + 8 * index)
        if desc is None:
            return None  # the tables are not in RAM: not a fault this model reports
        if not desc & 1:
            return Fault(TRANSLATION, level)
        if level == 3:
            if not desc & 2:
                return Fault(TRANSLATION, level)  # reserved encoding at level 3
            break
        if desc & 2:  # a table: the next level, and its restrictions
            ap_table |= (desc >> 61) & 3
            xn_table |= (desc >> 60) & 1
            pxn_table |= (desc >> 59) & 1
            table = desc & ((1 << 48) - 1) & ~((1 << granule) - 1)
            level += 1
            continue
        # a block: allowed at level 1 (4 KiB granule) and level 2
        if level == 0 or (level == 1 and granule != 12):
            return Fault(TRANSLATION, level)
        break
    if not (desc >> 10) & 1 and not (tcr >> 39) & 1:  # AF clear, and no hardware update (HA)
        return Fault(ACCESS_FLAG, level)
    ap = (desc >> 6) & 3
    read_only = bool(ap & 2) or bool(ap_table & 2)
    el0_access = bool(ap & 1) and not ap_table & 1
    uxn = bool((desc >> 54) & 1 or xn_table)
    pxn = bool((desc >> 53) & 1 or pxn_table)
    writable = not read_only
    if el == 0:
        if not el0_access:
            return Fault(PERMISSION, level)
        if access == "write" and read_only:
            return Fault(PERMISSION, level)
        if access == "fetch" and (uxn or (writable and (sctlr >> 19) & 1)):
            return Fault(PERMISSION, level)
    else:
        if access == "write" and read_only:
            return Fault(PERMISSION, level)
        if access == "fetch" and (pxn or (el0_access and writable) or (writable and (sctlr >> 19) & 1)):
            return Fault(PERMISSION, level)
    offset = (1 << shift) - 1  # the block's or page's size
    return (desc & ((1 << 48) - 1) & ~offset) | (va & offset)
