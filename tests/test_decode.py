"""The data-abort syndrome the machine builds from the faulting instruction, field by field.

Words assembled with binutils 2.40 (aarch64-linux-gnu-as); the expected fields are the ARM
ARM's ISS encoding for a data abort (ISV, SAS, SSE, SRT, SF, WnR)."""

from __future__ import annotations

import pytest
from worldswitch.decode import decode_ldst, decode_sysreg, sysreg_esr
from worldswitch.events import Exit

# word, asm, (size, Rt, is_write, sign-extend, SF) for a valid syndrome
VALID = [
    (0xB9000022, "str w2, [x1]", (4, 2, True, False, False)),
    (0xF9000433, "str x19, [x1, #8]", (8, 19, True, False, True)),
    (0xB9400C40, "ldr w0, [x2, #12]", (4, 0, False, False, False)),
    (0x39400083, "ldrb w3, [x4]", (1, 3, False, False, False)),
    (0x794004C5, "ldrh w5, [x6, #2]", (2, 5, False, False, False)),
    (0x39800107, "ldrsb x7, [x8]", (1, 7, False, True, True)),
    (0x79C00149, "ldrsh w9, [x10]", (2, 9, False, True, False)),
    (0xB980018B, "ldrsw x11, [x12]", (4, 11, False, True, True)),
    (0xB85FC1CD, "ldur w13, [x14, #-4]", (4, 13, False, False, False)),
    (0xB8716A0F, "ldr w15, [x16, x17]", (4, 15, False, False, False)),
    (0x88DFFCC5, "ldar w5, [x6]", (4, 5, False, False, False)),
    (0xC89FFD07, "stlr x7, [x8]", (8, 7, True, False, True)),
    (0xB8400862, "ldtr w2, [x3]", (4, 2, False, False, False)),
    (0x3900003F, "strb wzr, [x1]", (1, 31, True, False, False)),
]
# no valid syndrome on hardware: KVM cannot emulate these
INVALID = [
    (0xB8004420, "str w0, [x1], #4", "writeback"),
    (0xB8004C20, "str w0, [x1, #4]!", "writeback"),
    (0xA9BF07E0, "stp x0, x1, [sp, #-16]!", "pair"),
    (0x29400C82, "ldp w2, w3, [x4]", "pair"),
    (0x885F7D49, "ldxr w9, [x10]", "exclusive"),
    (0xBD400020, "ldr s0, [x1]", "SIMD&FP"),
]


@pytest.mark.parametrize(("word", "asm", "fields"), VALID, ids=[v[1] for v in VALID])
def test_single_register_accesses_have_a_valid_syndrome(word: int, asm: str, fields: tuple) -> None:
    site = decode_ldst(word)
    assert site is not None and site.valid
    assert (site.size, site.rt, site.is_write, site.sign_extend, site.sf) == fields
    esr = site.esr()
    size, rt, is_write, sse, sf = fields
    assert esr >> 26 == Exit.DABT_LOW and esr >> 25 & 1  # EC, IL
    assert esr >> 24 & 1 == 1  # ISV
    assert esr >> 22 & 3 == {1: 0, 2: 1, 4: 2, 8: 3}[size]  # SAS
    assert (esr >> 21 & 1, esr >> 16 & 31, esr >> 15 & 1, esr >> 6 & 1) == (sse, rt, sf, is_write)


@pytest.mark.parametrize(("word", "asm", "what"), INVALID, ids=[v[1] for v in INVALID])
def test_pairs_writeback_exclusives_and_fp_have_none(word: int, asm: str, what: str) -> None:
    site = decode_ldst(word)
    assert site is not None and not site.valid and what in site.what
    assert site.esr() >> 24 & 1 == 0  # ISV clear: the abort tells KVM nothing it can emulate


@pytest.mark.parametrize("word", [0xF9800000, 0xD503201F, 0xD4000002, 0x14000000, 0x58000201])
def test_what_is_not_a_data_access(word: int) -> None:
    # prfm, nop, hvc, b, ldr (literal: reads the code stream, never MMIO here)
    assert decode_ldst(word) is None


def test_sysreg_syndrome_fields() -> None:
    # mrs x7, pmselr_el0 = 0xd53b9ca7: op0 3, op1 3, CRn 9, CRm 12, op2 5
    fields = decode_sysreg(0xD53B9CA7)
    assert fields == (3, 3, 9, 12, 5, 7, True)
    esr = sysreg_esr(*fields)
    assert esr >> 26 == Exit.SYS64 and esr & 1 == 1 and esr >> 5 & 31 == 7
    assert (esr >> 20 & 3, esr >> 17 & 7, esr >> 14 & 7, esr >> 10 & 15, esr >> 1 & 15) == (3, 5, 3, 9, 12)
    assert decode_sysreg(0xD51B9CA7)[-1] is False  # msr pmselr_el0, x7
    assert decode_sysreg(0xD503201F) is None  # nop is a hint, not a register move
