"""Spin loops a vCPU can skip exactly.

A guest that waits for an interrupt often spins on a flag without reading the clock
(kvm-unit-tests' ``while (!irq_received && tries--) cpu_relax();``). Time only moves with
the instructions it executes, so a 10 ms wait costs 2*10^7 emulated instructions. When every
running vCPU is in such a loop, nothing but time can change what they read, and the
machine may jump to the next timer deadline, provided the jump leaves each vCPU exactly
where running the loop would have left it.

:func:`analyse` decides that from two observed iterations of a loop. It accepts a loop only
when every instruction on its path is one of a small set whose effect is known: hints,
loads of one register (no writeback, address from loop-invariant registers), data
processing on registers, and branches. It never writes memory, never traps, and the
registers it changes (*induction registers*, like ``tries``) change by a constant each
iteration, through ``add``/``sub`` of an immediate, and are read only by comparisons with a
constant (``cmp``/``cmn`` immediate, the flags of their own ``subs``/``adds``, ``cbz``/``cbnz``).
Then the k-th iteration takes the same path as the first for every k up to the first value
of an induction register at which one of those comparisons could change its outcome, and
the state after k iterations is the state now plus k times the deltas.
:meth:`Loop.max_iterations` gives that bound. A loop outside these rules is simply run.
"""

from __future__ import annotations

from dataclasses import dataclass

from .decode import decode_ldst

SP = 31  # register 31 as a base or a non-flag-setting add/sub destination
ZR = -1  # register 31 as the zero register: no state

NOP, YIELD, ISB = 0xD503201F, 0xD503203F, 0xD5033FDF
BARRIER_MASK, DMB, DSB = 0xFFFFF0FF, 0xD50330BF, 0xD503309F


@dataclass(frozen=True, slots=True)
class Insn:
    """What one instruction of a skippable loop reads and writes."""

    reads: tuple[int, ...]  # general-purpose registers (SP = 31)
    writes: tuple[int, ...]
    width: int  # 32 or 64: how its register operands are seen
    # for ``add/sub Rd, Rn, #imm``: the signed amount added (None for anything else)
    step: int | None = None
    # a comparison of a register with a constant: (register, constant), both at ``width``
    compares: tuple[int, int] | None = None


def _r(n: int, sp: bool) -> int:
    return SP if n == 31 and sp else (ZR if n == 31 else n)


def _regs(*rs: int) -> tuple[int, ...]:
    return tuple(r for r in rs if r != ZR)


def classify(w: int) -> Insn | None:
    """The instruction word ``w`` as a loop may contain it, or None if it may not."""
    if w in (NOP, YIELD, ISB) or (w & BARRIER_MASK) in (DMB, DSB):
        return Insn((), (), 64)
    width = 64 if w >> 31 else 32
    rd, rn, rm = w & 31, (w >> 5) & 31, (w >> 16) & 31
    if (w & 0x1F800000) == 0x11000000:  # add/sub (immediate)
        sub, flags = bool((w >> 30) & 1), bool((w >> 29) & 1)
        imm = ((w >> 10) & 0xFFF) << (12 if (w >> 22) & 1 else 0)
        src, dst = _r(rn, True), _r(rd, not flags)
        step = -imm if sub else imm
        if dst == ZR:  # cmp/cmn: Rn - imm, or Rn + imm
            return Insn(_regs(src), (), width, compares=(src, (-step) % (1 << width)))
        return Insn(_regs(src), _regs(dst), width, step=step, compares=(src, (-step) % (1 << width)) if flags else None)
    if (w & 0x1F800000) in (0x12000000, 0x13000000):  # logical immediate; bitfield
        bfm = (w & 0x1F800000) == 0x13000000 and (w >> 29) & 3 == 1
        flags = (w & 0x1F800000) == 0x12000000 and (w >> 29) & 3 == 3
        src = _regs(_r(rn, False), _r(rd, False) if bfm else ZR)
        return Insn(src, _regs(_r(rd, not flags and not bfm)), width)
    if (w & 0x1F800000) == 0x12800000:  # move wide: MOVN/MOVZ/MOVK
        keep = _regs(_r(rd, False)) if (w >> 29) & 3 == 3 else ()
        return Insn(keep, _regs(_r(rd, False)), width)
    if (w & 0x1F000000) == 0x0B000000 or (w & 0x1F000000) == 0x0A000000:  # add/sub, logical (shifted reg)
        if (w & 0x1F000000) == 0x0B000000 and (w >> 21) & 1:
            return None  # extended register: SP operands, not worth the rules
        src = _regs(_r(rn, False), _r(rm, False))
        return Insn(src, _regs(_r(rd, False)), width)
    if (w & 0x1FE00000) == 0x1A800000:  # conditional select
        src = _regs(_r(rn, False), _r(rm, False))
        return Insn(src, _regs(_r(rd, False)), width)
    if (w & 0x1F000000) == 0x10000000:  # ADR/ADRP: PC-relative, a constant here
        return Insn((), _regs(_r(rd, False)), 64)
    if (w & 0xFC000000) == 0x14000000 or (w & 0xFF000010) == 0x54000000:  # B, B.cond
        return Insn((), (), 64)
    if (w & 0x7E000000) == 0x34000000:  # CBZ/CBNZ: a comparison with zero
        rt = _r(rd, False)
        return Insn(_regs(rt), (), width, compares=(rt, 0) if rt != ZR else None)
    if (w & 0x7E000000) == 0x36000000:  # TBZ/TBNZ: one bit, not monotonic in the register
        rt = _r(rd, False)
        return Insn(_regs(rt), (), 64 if (w >> 31) else 32)
    site = decode_ldst(w)
    if site is None or site.is_write or not site.valid or (w >> 26) & 1:
        return None  # stores, writeback, pairs, exclusives, SIMD&FP: not in a skippable loop
    if (w & 0x3B000000) == 0x18000000:  # load literal: PC-relative
        base: tuple[int, ...] = ()
    elif (w & 0x3B200C00) == 0x38200800:  # register offset
        base = _regs(_r(rn, True), _r(rm, False))
    else:
        base = (_r(rn, True),)
    return Insn(base, _regs(_r(rd, False)), 64 if site.sf else 32)


@dataclass(frozen=True, slots=True)
class Loop:
    """A loop whose iterations can be skipped: ``length`` instructions each, registers
    ``delta`` changing by a constant, each bounded by the values in ``bounds``."""

    length: int
    delta: dict[int, int]  # register -> signed change per iteration
    width: dict[int, int]
    bounds: dict[int, tuple[int, ...]]  # register -> values it must not come near
    nzcv: int  # the flags at the head after a round

    def max_iterations(self, regs: list[int]) -> int:
        """How many iterations from the state ``regs`` (x0..x30, SP) surely take the path
        observed: no induction register wraps or reaches a value where a comparison on
        the path could change its outcome."""
        best = 1 << 62
        for r, d in self.delta.items():
            v, top, step = regs[r], 1 << self.width[r], abs(d)
            if d > 0:
                room = [b for b in self.bounds[r] if b >= v - step] + [top]
                limit = (min(room) - v - step - 1) // d
            else:
                room = [b for b in self.bounds[r] if b <= v + step] + [-1]
                limit = (v - step - max(room) - 1) // step
            if any(v - step <= b <= v + step for b in self.bounds[r]):
                return 0
            best = min(best, max(limit, 0))
        return best

    def advance(self, regs: list[int], n: int) -> dict[int, int]:
        """What differs ``n`` >= 1 iterations on from ``regs``: the induction registers,
        and the flags (index 32)."""
        out = {r: (regs[r] + n * d) % (1 << self.width[r]) for r, d in self.delta.items()}
        out[32] = self.nzcv
        return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def analyse(path: list[tuple[int, int]], s0: list[int], s1: list[int], s2: list[int]) -> Loop | None:
    """The loop run twice from ``s0`` (registers x0..x30, SP, NZCV), reaching ``s1`` then
    ``s2`` at its head, along ``path`` ((pc, word) per instruction, both times the same).
    None unless it meets the module's rules. The registers must change by the same amount
    in both rounds, the flags must be the same after each."""
    if not path or s1[32] != s2[32]:
        return None  # (the flags the first round starts with may differ: the round sets them)
    delta = {}
    for r in range(32):
        d1, d2 = (s1[r] - s0[r]) % (1 << 64), (s2[r] - s1[r]) % (1 << 64)
        if d1 != d2:
            return None
        if d1:
            delta[r] = _signed(d1)
    insns = []
    for _, w in path:
        insn = classify(w)
        if insn is None:
            return None
        insns.append(insn)
    width: dict[int, int] = {}
    bounds: dict[int, set[int]] = {r: set() for r in delta}
    steps: dict[int, int] = {}
    for insn in insns:
        touched = [r for r in (*insn.reads, *insn.writes) if r in delta]
        if not touched:
            continue
        r = touched[0]
        if width.setdefault(r, insn.width) != insn.width:
            return None
        if insn.writes:  # it must be the one ``add/sub r, r, #imm`` of the iteration
            if insn.step is None or insn.reads != (r,) or insn.writes != (r,) or r in steps:
                return None
            steps[r] = insn.step
        elif insn.compares is None or insn.reads != (r,):
            return None  # an induction register feeds something the rules cannot bound
        if insn.compares is not None:
            # r - c sets Z and C by where r stands against c, N by where it stands against
            # c + 2^(w-1), and V (so the signed conditions) also against 2^(w-1). Wrapping
            # round 0 is what the register's own range rules out (Loop.max_iterations).
            c, half = insn.compares[1], 1 << (insn.width - 1)
            bounds[r].update((c, (c + half) % (2 * half), half))
    for r, d in delta.items():
        if r not in steps:
            return None  # changes without an add/sub on the path: not this loop's doing
        top = 1 << width[r]
        if (steps[r] - d) % top or s0[r] >= top:
            return None
    return Loop(len(path), delta, width, {r: tuple(sorted(b)) for r, b in bounds.items()}, s1[32])
