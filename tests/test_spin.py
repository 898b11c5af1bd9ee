"""Spin loops the scheduler skips (core/spin.py): which loops qualify, and that skipping
``max_iterations`` rounds leaves exactly the state running them would.

The soundness property runs real code in a bare Unicorn: a loop whose counter starts near
a value where its comparison flips, stepped round by round, against the analysis."""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn import arm64_const as a64
from worldswitch.machine import GPR_IDS
from worldswitch.spin import analyse, classify

BASE, FLAG = 0x10000, 0x20000
YIELD, NOP = 0xD503203F, 0xD503201F


def asm(*words: int) -> bytes:
    return b"".join(struct.pack("<I", w) for w in words)


def b_back(frm: int, to: int) -> int:
    return 0x14000000 | (((to - frm) >> 2) & 0x3FFFFFF)


def b_cond(cond: int, frm: int, to: int) -> int:
    return 0x54000000 | ((((to - frm) >> 2) & 0x7FFFF) << 5) | cond


def cbz(rt: int, frm: int, to: int, nonzero: bool = False, sf: bool = False) -> int:
    return (0x35000000 if nonzero else 0x34000000) | (sf << 31) | ((((to - frm) >> 2) & 0x7FFFF) << 5) | rt


def addsub_imm(rd: int, rn: int, imm: int, sub: bool, flags: bool, sf: bool = False) -> int:
    return 0x11000000 | (sf << 31) | (sub << 30) | (flags << 29) | (imm << 10) | (rn << 5) | rd


LDR_W1_X3 = 0xB9400061  # ldr w1, [x3]
EQ, NE, MI, HI, LS, GE, LT = 0, 1, 4, 8, 9, 10, 11


class Core:
    """A bare Unicorn running one loop at BASE, the flag it polls at FLAG (zero)."""

    def __init__(self, code: bytes, regs: dict[int, int]) -> None:
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        self.uc.mem_map(BASE, 0x1000)
        self.uc.mem_map(FLAG, 0x1000)
        self.uc.mem_write(BASE, code)
        self.uc.reg_write(a64.UC_ARM64_REG_X3, FLAG)
        for r, v in regs.items():
            self.uc.reg_write(GPR_IDS[r], v)
        self.pc = BASE
        self.end = BASE + len(code)

    def state(self) -> list[int]:
        return self.uc.reg_read_batch(GPR_IDS)

    def round(self) -> list[tuple[int, int]] | None:
        """One round from BASE back to BASE (None: the loop was left)."""
        path, pc = [], self.pc
        for _ in range(64):
            word = struct.unpack("<I", self.uc.mem_read(pc, 4))[0]
            path.append((pc, word))
            self.uc.emu_start(pc, self.end, 0, 1)
            pc = self.uc.reg_read(a64.UC_ARM64_REG_PC)
            if pc == BASE:
                return path
            if pc >= self.end:
                return None
        raise AssertionError("no round in 64 steps")

    def probe(self):
        """Two rounds, as the machine's probe runs them: (loop or None, path, state after)."""
        s0 = self.state()
        p1 = self.round()
        s1 = self.state()
        p2 = self.round()
        s2 = self.state()
        if p1 is None or p1 != p2:
            return None, p1, s2
        return analyse(p1, s0, s1, s2), p1, s2


def kvm_unit_tests_loop() -> bytes:
    """micro-bench's ``while (!irq_received && tries--) cpu_relax();`` as gcc builds it,
    entered at the subs: subs w0, w0, #1; b.eq out; yield; ldr w1, [x3]; cbz w1, loop."""
    return asm(addsub_imm(0, 0, 1, True, True), b_cond(EQ, BASE + 4, BASE + 24), YIELD, LDR_W1_X3,
               cbz(1, BASE + 16, BASE), NOP)


def test_classify_takes_pure_code_and_refuses_anything_with_an_effect() -> None:
    assert classify(YIELD) is not None and classify(NOP) is not None
    assert classify(LDR_W1_X3).reads == (3,) and classify(LDR_W1_X3).writes == (1,)
    for word, what in [(0xB9000061, "str w1, [x3]"), (0xA9BF7BFD, "stp x29, x30, [sp, #-16]!"),
                       (0xF8408C20, "ldr x0, [x1, #8]!"), (0xC85F7C20, "ldxr x0, [x1]"),
                       (0xD4000002, "hvc #0"), (0xD53BE040, "mrs x0, cntvct_el0"),
                       (0xD503207F, "wfi"), (0xD503205F, "wfe"), (0x94000000, "bl"),
                       (0xD65F03C0, "ret"), (0x1AC00800, "udiv w0, w0, w0")]:
        assert classify(word) is None, what


def test_the_kvm_unit_tests_wait_is_a_loop_with_one_counter() -> None:
    loop, _, s = Core(kvm_unit_tests_loop(), {0: 1 << 28}).probe()
    assert loop is not None and loop.length == 5 and loop.delta == {0: -1} and loop.width == {0: 32}
    # the counter may fall to just above the value where its subs would set Z
    n = loop.max_iterations(s)
    assert 0 < (1 << 28) - 2 - n < 8


def test_a_forever_loop_has_no_bound() -> None:
    loop, _, s = Core(asm(YIELD, YIELD, b_back(BASE + 8, BASE)), {}).probe()
    assert loop is not None and loop.delta == {} and loop.max_iterations(s) >= 1 << 40


@pytest.mark.parametrize("code, regs, why", [
    # tbz on the counter: one bit of it, not monotonic (bit 3 stays set for two rounds)
    (asm(addsub_imm(0, 0, 1, True, False), 0x36180000 | (2 << 5), b_back(BASE + 8, BASE)), {0: 15}, "bit test"),
    # the counter copied into another register (mov w2, w0), which a cbz then reads
    (asm(addsub_imm(0, 0, 1, True, False), 0x2A0003E2, cbz(2, BASE + 8, BASE + 16),
         b_back(BASE + 12, BASE)), {0: 1000}, "copy"),
    # a counter used as a load's address
    (asm(addsub_imm(3, 3, 4, False, False, sf=True), LDR_W1_X3, b_back(BASE + 8, BASE)), {}, "address"),
    # a register that changes by a different amount each round (add x0, x0, x0)
    (asm(0x8B000000, b_back(BASE + 4, BASE)), {0: 1}, "not linear"),
])
def test_loops_outside_the_rules_are_not_skipped(code: bytes, regs: dict[int, int], why: str) -> None:
    core = Core(code, regs)
    s0 = core.state()
    first = core.round()
    s1 = core.state()
    assert first is not None and core.round() == first, "the case must loop: it is the analysis that refuses"
    assert analyse(first, s0, s1, core.state()) is None, why


# (loop, the counter's register width) for the soundness property: each compares the
# counter with a constant in a different way
TEMPLATES = {
    "subs/b.eq": lambda c: asm(addsub_imm(0, 0, c, True, True), b_cond(EQ, BASE + 4, BASE + 24), YIELD,
                               LDR_W1_X3, cbz(1, BASE + 16, BASE), NOP),
    "add/cmp/b.hi": lambda c: asm(addsub_imm(0, 0, 3, False, False), addsub_imm(31, 0, c, True, True),
                                  b_cond(HI, BASE + 8, BASE + 24), LDR_W1_X3, cbz(1, BASE + 16, BASE), NOP),
    "sub/cmn/b.lt": lambda c: asm(addsub_imm(0, 0, 2, True, False, sf=True),
                                  addsub_imm(31, 0, c, False, True, sf=True),
                                  b_cond(LT, BASE + 8, BASE + 24), LDR_W1_X3, cbz(1, BASE + 16, BASE), NOP),
    "add/cmp/b.mi": lambda c: asm(addsub_imm(0, 0, 1, False, False), addsub_imm(31, 0, c, True, True),
                                  b_cond(MI, BASE + 8, BASE + 24), LDR_W1_X3, cbz(1, BASE + 16, BASE), NOP),
    "add/cmp/b.lt": lambda c: asm(addsub_imm(0, 0, 1, False, False), addsub_imm(31, 0, c, True, True),
                                  b_cond(LT, BASE + 8, BASE + 24), LDR_W1_X3, cbz(1, BASE + 16, BASE), NOP),
    "add/cmn/b.mi": lambda c: asm(addsub_imm(0, 0, 1, False, False), addsub_imm(31, 0, c, False, True),
                                  b_cond(MI, BASE + 8, BASE + 24), LDR_W1_X3, cbz(1, BASE + 16, BASE), NOP),
    "cbnz/sub": lambda c: asm(cbz(0, BASE, BASE + 24), addsub_imm(0, 0, 1, True, False), LDR_W1_X3,
                              cbz(1, BASE + 12, BASE), NOP, NOP),
}


@settings(max_examples=120, deadline=None)
# a case at each kind of boundary: the comparison's constant, the sign of the difference,
# the sign of the register, zero
@example("add/cmp/b.lt", 10, (1 << 31) - 100)
@example("add/cmp/b.mi", 10, (1 << 31) - 100)
@example("add/cmn/b.mi", 10, (1 << 31) - 100)
@example("add/cmp/b.hi", 30, 0)
@example("subs/b.eq", 1, 300)
@example("cbnz/sub", 0, 200)
@given(template=st.sampled_from(sorted(TEMPLATES)), c=st.integers(0, 40),
       start=st.one_of(st.integers(0, 400), st.integers((1 << 31) - 200, (1 << 31) + 200),
                       st.integers((1 << 32) - 300, (1 << 32) - 1)))
def test_skipping_max_iterations_rounds_is_exactly_running_them(template: str, c: int, start: int) -> None:
    core = Core(TEMPLATES[template](c), {0: start})
    loop, path, s = core.probe()
    if loop is None:
        return  # the loop ended within two rounds, or took two different paths
    n = min(loop.max_iterations(s), 2000)  # far from any boundary: the first 2000 rounds
    if n == 0:
        return
    expected = loop.advance(s, n)
    for _ in range(n):
        assert core.round() == path, "a round inside the bound took another path"
    after = core.state()
    assert {r: after[r] for r in expected} == expected
    assert [v for i, v in enumerate(after) if i not in expected] == [v for i, v in enumerate(s) if i not in expected]
