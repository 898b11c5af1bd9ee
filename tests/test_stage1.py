"""The stage-1 walk behind the syndrome of an abort the guest's own tables cause, and the
address a faulting load or store accesses (ARM ARM D8)."""

from __future__ import annotations

import pytest
from worldswitch.decode import decode_data_access
from worldswitch.stage1 import ACCESS_FLAG, PERMISSION, TRANSLATION, Fault, walk

VALID, TABLE, AF, RO, EL0 = 1, 2, 1 << 10, 1 << 7, 1 << 6
PXN, UXN = 1 << 53, 1 << 54
# TCR_EL1: T0SZ 25 (39-bit VA: the walk starts at level 1), TG0 4K, EPD1; T1SZ 25 with TG1 4K
TCR = 25 | (1 << 23) | (25 << 16) | (0b10 << 30)
L1, L2, L3 = 0x80001000, 0x80002000, 0x80003000


def tables(**entries: int) -> dict[int, int]:
    """A level-1 table at L1 whose entry 1 leads to L2, whose entry 3 leads to L3."""
    mem = {L1 + 8: L2 | TABLE | VALID, L2 + 24: L3 | TABLE | VALID}
    for name, desc in entries.items():
        level, index = name[1], int(name[3:])
        mem[{"1": L1, "2": L2, "3": L3}[level] + 8 * index] = desc
    return mem


def go(mem: dict[int, int], va: int, access: str = "read", el: int = 1, tcr: int = TCR, sctlr: int = 1,
       ttbr1: int = 0) -> Fault | int | None:
    return walk(lambda pa: mem.get(pa, 0), va, tcr, L1, ttbr1, sctlr, el, access)


def test_translation_faults_name_the_level_where_the_walk_stopped() -> None:
    mem = tables()
    assert go(mem, 0xC000_0000) == Fault(TRANSLATION, 1)
    assert go(mem, 0x4040_0000) == Fault(TRANSLATION, 2)
    assert go(mem, 0x4060_0000) == Fault(TRANSLATION, 3)
    assert go(mem, 0x80_0000_0000) == Fault(TRANSLATION, 0)  # past T0SZ's 39 bits
    assert go(mem, 0xFFFF_FF80_0000_0000) == Fault(TRANSLATION, 0)  # TTBR1's half, walks disabled (EPD1)
    assert Fault(TRANSLATION, 2).fsc == 0x06 and Fault(PERMISSION, 3).fsc == 0x0F


def test_a_mapping_translates() -> None:
    mem = tables(l1_2=0x8000_0000 | AF | VALID, l3_5=0x8123_4000 | AF | TABLE | VALID)
    assert go(mem, 0x8765_4321) == 0x8765_4321  # a 1 GiB block
    assert go(mem, 0x4060_5abc) == 0x8123_4abc  # a 4 KiB page


def test_access_flag_and_permission_faults() -> None:
    mem = tables(l2_0=0x8000_0000 | VALID, l2_1=0x8020_0000 | AF | RO | VALID, l2_2=0x8040_0000 | AF | VALID,
                 l2_4=0x8080_0000 | AF | EL0 | VALID, l2_5=0x80A0_0000 | AF | EL0 | UXN | PXN | RO | VALID)
    assert go(mem, 0x4000_0000) == Fault(ACCESS_FLAG, 2)
    assert go(mem, 0x4000_0000, tcr=TCR | 1 << 39) == 0x8000_0000  # TCR_EL1.HA: the hardware sets AF
    assert go(mem, 0x4020_0000, "read") == 0x8020_0000
    assert go(mem, 0x4020_0000, "write") == Fault(PERMISSION, 2)
    assert go(mem, 0x4040_0000, "read", el=0) == Fault(PERMISSION, 2)  # no EL0 access
    assert go(mem, 0x4080_0000, "write", el=0) == 0x8080_0000
    assert go(mem, 0x4080_0000, "fetch", el=1) == Fault(PERMISSION, 2)  # EL0-writable: never EL1-executable
    assert go(mem, 0x40A0_0000, "fetch", el=0) == Fault(PERMISSION, 2)  # UXN
    assert go(mem, 0x40A0_0000, "fetch", el=1) == Fault(PERMISSION, 2)  # PXN
    assert go(mem, 0x4040_0000, "fetch", sctlr=1 | 1 << 19) == Fault(PERMISSION, 2)  # WXN


def test_table_bits_restrict_what_is_below() -> None:
    mem = tables(l2_7=0x80E0_0000 | AF | VALID)
    mem[L1 + 8] |= 1 << 62  # APTable[1]: read-only below
    assert go(mem, 0x40E0_0000, "write") == Fault(PERMISSION, 2)
    mem[L1 + 8] ^= 1 << 62 | 1 << 59  # PXNTable
    assert go(mem, 0x40E0_0000, "fetch") == Fault(PERMISSION, 2)
    assert go(mem, 0x40E0_0000, "read") == 0x80E0_0000


def test_blocks_only_where_the_granule_allows_them() -> None:
    # level 0 never holds a block: with T0SZ 16 (48 bits) the 4K walk starts there
    mem = {L1: 0x8000_0000 | AF | VALID}
    assert go(mem, 0x0, tcr=16 | 1 << 23) == Fault(TRANSLATION, 0)


def test_other_granules_and_the_upper_half() -> None:
    def at(mem: dict[int, int], base: int, va: int, tcr: int) -> Fault | int | None:
        return walk(lambda pa: mem.get(pa, 0), va, tcr, base, 0, 1, 1, "read")

    # 64 KiB granule, 42-bit VA (T0SZ 22): levels 2 and 3, a 64 KiB first table
    tcr64 = 22 | (0b01 << 14) | (1 << 23)
    mem = {0x8001_0000: 0x8000_0000 | AF | VALID}  # a 512 MiB block at level 2
    assert at(mem, 0x8001_0000, 0x1234_5678, tcr64) == 0x9234_5678
    assert at(mem, 0x8001_0000, 0x2000_0000, tcr64) == Fault(TRANSLATION, 2)
    # TTBR's bits below the first table's size are ignored, as the hardware ignores them
    assert at(mem, 0x8001_0040, 0x1234_5678, tcr64) == 0x9234_5678
    # 16 KiB granule, 36 bits (T0SZ 28): levels 2 and 3; 32 MiB blocks at level 2
    tcr16 = 28 | (0b10 << 14) | (1 << 23)
    assert at({0x8000_4000: 0x8000_0000 | AF | VALID}, 0x8000_4000, 0x1ff_fff8, tcr16) == 0x81ff_fff8
    # TTBR1: the top half, with its own T1SZ and tables
    upper = 25 << 16 | 0b10 << 30 | 1 << 7  # EPD0
    mem = {L1 + 8 * 511: 0x8000_0000 | AF | VALID}
    assert walk(lambda pa: mem.get(pa, 0), 0xFFFF_FFFF_C000_0010, upper, 0, L1, 1, 1, "read") == 0x8000_0010
    assert walk(lambda pa: mem.get(pa, 0), 0x10, upper, 0, L1, 1, 1, "read") == Fault(TRANSLATION, 0)
    # TBI0: the top byte is a tag
    mem = tables(l1_2=0x8000_0000 | AF | VALID)
    assert go(mem, 0x5A00_0000_8000_0000, tcr=TCR | 1 << 37) == 0x8000_0000
    assert go(mem, 0x5A00_0000_8000_0000) == Fault(TRANSLATION, 0)


REGS = {"X1": 0x1000, "X2": 3, "W2": 3, "SP": 0x8000, "X3": 0xFFFF_FFFF, "W3": 0xFFFF_FFFF}


def reg(uc_id: int) -> int:
    from unicorn import arm64_const as a64

    names = {getattr(a64, f"UC_ARM64_REG_{k}"): v for k, v in REGS.items()}
    return names[uc_id]


@pytest.mark.parametrize(("word", "va", "write"), [
    (0xF9400020, 0x1000, False),   # ldr x0, [x1]
    (0xF8408420, 0x1000, False),   # ldr x0, [x1], #8 (post-index: the base)
    (0xF8408C20, 0x1008, False),   # ldr x0, [x1, #8]! (pre-index)
    (0xF8627820, 0x1018, False),   # ldr x0, [x1, x2, lsl #3]
    (0xB8624820, 0x1003, False),   # ldr w0, [x1, w2, uxtw]
    (0xA9BF07E0, 0x7FF0, True),    # stp x0, x1, [sp, #-16]!
    (0xF9000020, 0x1000, True),    # str x0, [x1]
    (0xF8200020, 0x1000, True),    # ldadd x0, x0, [x1]: a read-modify-write
    (0x58000040, 0x2008, False),   # ldr x0, #8 (literal)
])
def test_the_address_a_load_or_store_accesses(word: int, va: int, write: bool) -> None:
    assert decode_data_access(word, 0x2000, reg) == (va, write)


def test_a_sign_extended_index() -> None:
    # ldr x0, [x1, w3, sxtw #3]: w3 = -1
    assert decode_data_access(0xF863D820, 0, reg) == (0x1000 - 8, False)


def test_a_prefetch_makes_no_access() -> None:
    assert decode_data_access(0xF9800020, 0, reg) is None  # prfm pldl1keep, [x1]
