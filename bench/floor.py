"""The emulator's floor for the reference guests, and worldswitch's ratio to it.

For each guest/platform pair this runs the guest twice, in one process:

1. on a *floor* hypervisor written here with raw ctypes callbacks and no worldswitch
   code: every trap is handled inside its hook with the least state that lets the
   guest finish correctly (unicorn.md, "The floor, end to end");
2. on a *C floor*, the same hypervisor in C (cfloor.c, built here): the physical limit;
3. on worldswitch through ``worldswitch.api.run_guest``: vanilla and all 17 patches,
   each with the round-trip cache (core/memo.py) and without it.

Both are timed with ``time.perf_counter`` around ``emu_start`` only, so the ratio is
what the model's Python costs on top of what Unicorn itself cannot avoid. It is a
benchmark: it reports times and asserts nothing about them.

    python bench/floor.py [--short] [--repeat N] [--uncached N] [--guests null_hvc,self_sgi] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import capstone
from unicorn import UC_ARCH_ARM64, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_INTR, UC_MODE_ARM, Uc, UcError
from unicorn import arm64_const as a64
from unicorn.unicorn_py3.arch.arm64 import HOOK_INSN_SYS_CFUNC
from unicorn.unicorn_py3.unicorn import (
    HOOK_CODE_CFUNC,
    HOOK_INTR_CFUNC,
    MMIO_READ_CFUNC,
    MMIO_WRITE_CFUNC,
    uc_hook_h,
    uclib,
)

# kvmtool's arm64 layout, which the guests hard-code (mission.md).
RAM_BASE, RAM_SIZE, LOAD_ADDR = 0x80000000, 0x4000000, 0x80080000
GICD_BASE, GICD_SIZE = 0x3FFF0000, 0x10000
GICC_BASE, GICC_SIZE = 0x3FFD0000, 0x20000
GICR_BASE, GICR_SIZE = 0x3FBF0000, 0x20000
GICD_SGIR, GICC_IAR = 0xF00, 0x0C
SPURIOUS = 0x3FF

EXCP_HVC = 11  # with SCR_EL3.HCE set, hvc reaches UC_HOOK_INTR as this, PC already past it
PSCI_VERSION, PSCI_SYSTEM_RESET = 0x84000000, 0x84000009

# System registers by (op0, op1, CRn, CRm, op2).
ID_AA64PFR0 = (3, 0, 0, 4, 0)
PMSELR = (3, 3, 9, 12, 5)
ICC_PMR = (3, 0, 4, 6, 0)
ICC_SGI1R = (3, 0, 12, 11, 5)
ICC_IAR1 = (3, 0, 12, 12, 0)
ICC_EOIR1 = (3, 0, 12, 12, 1)
ICC_SRE = (3, 0, 12, 12, 5)
ICC_IGRPEN1 = (3, 0, 12, 12, 7)
ICC_REGS = {ICC_PMR, ICC_SGI1R, ICC_IAR1, ICC_EOIR1, ICC_SRE, ICC_IGRPEN1}

# (guest, platform, GIC the guest sees). A is a GICv2 host; C-v3 gives the guest a GICv3.
PAIRS: list[tuple[str, str, int]] = [
    ("null_hvc", "A", 2),
    ("sysreg", "A", 2),
    ("self_sgi", "A", 2),
    ("self_sgi", "C-v3", 3),
]

Key = tuple[int, int, int, int, int]


class FloorError(RuntimeError):
    """The floor hypervisor met something it does not handle, or the guest did not finish."""


@dataclass(frozen=True)
class SysregSite:
    addr: int
    key: Key
    is_read: bool


@dataclass(frozen=True)
class FloorRun:
    exits: int  # traps KVM would see as a VM exit: hvc, trapped sysregs, GICD/GICR MMIO, wfi
    traps: int  # every hook call, including the accesses a real vCPU interface would serve
    seconds: float  # inside emu_start only


def scan(code: bytes) -> tuple[list[SysregSite], list[int]]:
    """Find the MRS/MSR (register) and WFI sites, so each gets a hook bounded to it."""
    sites: list[SysregSite] = []
    wfis: list[int] = []
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    for addr, _size, mnemonic, _ops in md.disasm_lite(code, LOAD_ADDR):
        w = int.from_bytes(code[addr - LOAD_ADDR : addr - LOAD_ADDR + 4], "little")
        if mnemonic in ("mrs", "msr") and (w & 0xFFD00000) == 0xD5100000:  # not MSR (immediate)
            key = (2 + ((w >> 19) & 1), (w >> 16) & 7, (w >> 12) & 15, (w >> 8) & 15, (w >> 5) & 7)
            sites.append(SysregSite(addr, key, bool((w >> 21) & 1)))
        elif mnemonic == "wfi":
            wfis.append(addr)
    return sites, wfis


class FloorVM:
    """One run of one guest on the floor hypervisor. Use a fresh one per run: hooks are
    compiled into translation blocks, and the GIC state is per VM."""

    def __init__(self, code: bytes, gic: int) -> None:
        self.gic = gic
        self.exits = 0
        self.traps = 0
        self.pending = False  # the one SGI the guests send to themselves
        self.reset = False
        self.error: str | None = None
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        self.h = self.uc._uch
        # One preallocated c_uint64 for every register access through raw uc_reg_* calls:
        # register traffic is the main cost in a hook, and the binding's reg_read costs
        # several times more (unicorn.md).
        self.val = ctypes.c_uint64()
        self.ref = ctypes.byref(self.val)
        self._keep: list[Any] = []  # ctypes callbacks must outlive the run
        self._build(code)

    # ---- set-up (binding calls are fine here: they run once) ---------------------------
    def _hook(self, kind: int, cb: Any, begin: int = 1, end: int = 0, *extra: Any) -> None:
        h = uc_hook_h()
        err = uclib.uc_hook_add(
            self.h, ctypes.byref(h), kind, cb, None, ctypes.c_uint64(begin), ctypes.c_uint64(end), *extra
        )
        if err:
            raise UcError(err)
        self._keep.append(cb)

    def _mmio(self, base: int, size: int, read: Any, write: Any) -> None:
        rcb, wcb = MMIO_READ_CFUNC(read), MMIO_WRITE_CFUNC(write)
        err = uclib.uc_mmio_map(self.h, base, size, rcb, None, wcb, None)
        if err:
            raise UcError(err)
        self._keep += [rcb, wcb]

    def _build(self, code: bytes) -> None:
        uc = self.uc
        uc.mem_map(RAM_BASE, RAM_SIZE)
        uc.mem_write(LOAD_ADDR, code)
        # SCR_EL3.HCE: hvc becomes intno 11 with PC past it (1.2 µs), not a UDEF whose hook
        # must also move PC (3.0 µs).
        scr = uc.cpr_read(3, 6, 1, 1, 0)
        uc.cpr_write(3, 6, 1, 1, 0, scr | (1 << 8))
        self.pfr0 = (uc.cpr_read(*ID_AA64PFR0) & ~(0xF << 24)) | ((1 if self.gic == 3 else 0) << 24)
        self._hook(UC_HOOK_INTR, HOOK_INTR_CFUNC(self._on_intr))
        sites, wfis = scan(code)
        for site in sites:
            ins = a64.UC_ARM64_INS_MRS if site.is_read else a64.UC_ARM64_INS_MSR
            cb = HOOK_INSN_SYS_CFUNC(self._sysreg_handler(site))
            self._hook(UC_HOOK_INSN, cb, site.addr, site.addr, ctypes.c_int(ins))
        wfi_cb = HOOK_CODE_CFUNC(self._on_wfi)
        for addr in wfis:
            self._hook(UC_HOOK_CODE, wfi_cb, addr, addr)
        self._mmio(GICD_BASE, GICD_SIZE, self._gicd_read, self._gicd_write)
        self._mmio(GICC_BASE, GICC_SIZE, self._gicc_read, self._gicc_write)
        self._mmio(GICR_BASE, GICR_SIZE, self._gicr_read, self._gicr_write)

    # ---- the hooks (the hot path) --------------------------------------------------------
    def _fail(self, msg: str) -> None:
        # A raw ctypes callback cannot raise into emu_start: record, stop, raise after.
        if self.error is None:
            self.error = msg
        uclib.uc_emu_stop(self.h)

    def _ack(self) -> int:
        """IAR / ICC_IAR1: the pending SGI0 (INTID 0) once, else spurious."""
        if self.pending:
            self.pending = False
            return 0
        return SPURIOUS

    def _on_intr(self, uch: Any, intno: int, ud: Any) -> None:
        self.traps += 1
        if intno != EXCP_HVC:
            self._fail(f"exception {intno}: the floor only handles hvc")
            return
        self.exits += 1
        try:  # free unless it raises (3.11); ctypes would print and swallow the error
            uclib.uc_reg_read(self.h, a64.UC_ARM64_REG_X0, self.ref)
            x0 = self.val.value
            if x0 == PSCI_VERSION:
                self.val.value = 2  # PSCI 0.2
                uclib.uc_reg_write(self.h, a64.UC_ARM64_REG_X0, self.ref)
            elif x0 == PSCI_SYSTEM_RESET:
                self.reset = True
                uclib.uc_emu_stop(self.h)
            else:
                self._fail(f"hvc with x0 = 0x{x0:x}: not a PSCI call the floor knows")
        except Exception as e:  # noqa: BLE001
            self._fail(f"hvc hook raised {e!r}")

    def _sysreg_handler(self, site: SysregSite) -> Callable[[Any, int, int, Any], int]:
        """Build the hook for one MRS/MSR site, specialised at build time so the hot path
        does no dispatch. Unknown registers fail only if the guest really executes them."""
        h, val, ref = self.h, self.val, self.ref
        key = site.key
        # Unicorn lacks every ICC_* register: unless the hook moves PC past it, the
        # instruction re-executes forever (a silent hang).
        next_pc = site.addr + 4 if key in ICC_REGS else 0
        is_exit = key in (PMSELR, ICC_SGI1R)  # the ones that trap to KVM on hardware
        sends_sgi = key == ICC_SGI1R and not site.is_read
        consts = {ID_AA64PFR0: self.pfr0, PMSELR: 0, ICC_SRE: 1 if self.gic == 3 else 0}
        read: Callable[[], int] | None = None
        if site.is_read and key == ICC_IAR1:
            read = self._ack
        elif site.is_read and key in consts:
            value = consts[key]

            def const() -> int:
                return value

            read = const
        # The other writes the guests make are dropped: nothing reads them back.
        dropped = not site.is_read and key in (ICC_SGI1R, PMSELR, ICC_PMR, ICC_EOIR1, ICC_IGRPEN1, ICC_SRE)
        what = f"{'mrs' if site.is_read else 'msr'} s{key[0]}_{key[1]}_c{key[2]}_c{key[3]}_{key[4]} at 0x{site.addr:x}"
        if read is None and not dropped:

            def unknown(uch: Any, reg: int, cp: int, ud: Any) -> int:
                self._fail(f"{what}: not handled by the floor")
                return 1

            return unknown

        def hook(uch: Any, reg: int, cp: int, ud: Any) -> int:
            self.traps += 1
            if is_exit:
                self.exits += 1
            try:
                if read is not None:
                    val.value = read()
                    uclib.uc_reg_write(h, reg, ref)  # reg is the destination Xt
                elif sends_sgi:
                    self.pending = True  # SGI0 to self: the only SGI the guest sends
                if next_pc:
                    val.value = next_pc
                    uclib.uc_reg_write(h, a64.UC_ARM64_REG_PC, ref)
            except Exception as e:  # noqa: BLE001
                self._fail(f"{what} hook raised {e!r}")
            return 1  # skip the instruction

        return hook

    def _on_wfi(self, uch: Any, addr: int, size: int, ud: Any) -> None:
        self.traps += 1
        self.exits += 1
        if not self.pending:  # nothing will ever wake it: a real hypervisor would hang here
            self._fail(f"wfi at 0x{addr:x} with nothing pending")
            return
        self.val.value = addr + 4  # no AArch64 WFI hook in 2.1.4: skip it by hand
        uclib.uc_reg_write(self.h, a64.UC_ARM64_REG_PC, self.ref)

    # MMIO callbacks get the offset and carry on without a stop (0.3 µs). GICD and GICR
    # accesses are stage-2 faults on hardware (exits); GICC is the GICV page (no exit).
    def _gicd_read(self, uch: Any, offset: int, size: int, ud: Any) -> int:
        self.traps += 1
        self.exits += 1
        return 0

    def _gicd_write(self, uch: Any, offset: int, size: int, value: int, ud: Any) -> None:
        self.traps += 1
        self.exits += 1
        if offset == GICD_SGIR:
            self.pending = True

    def _gicc_read(self, uch: Any, offset: int, size: int, ud: Any) -> int:
        self.traps += 1
        return self._ack() if offset == GICC_IAR else 0

    def _gicc_write(self, uch: Any, offset: int, size: int, value: int, ud: Any) -> None:
        self.traps += 1  # CTLR, PMR, EOIR: nothing to keep

    def _gicr_read(self, uch: Any, offset: int, size: int, ud: Any) -> int:
        self.traps += 1
        self.exits += 1
        return 0

    def _gicr_write(self, uch: Any, offset: int, size: int, value: int, ud: Any) -> None:
        self.traps += 1
        self.exits += 1

    # ---- running --------------------------------------------------------------------------
    def _reg(self, reg: int) -> int:
        uclib.uc_reg_read(self.h, reg, self.ref)
        return self.val.value

    def run(self, timeout_s: float = 0.0) -> FloorRun:
        """Run to SYSTEM_RESET, check the guest really finished, return counts and time."""
        t0 = time.perf_counter()
        err = uclib.uc_emu_start(self.h, LOAD_ADDR, 1 << 63, int(timeout_s * 1_000_000), 0)
        seconds = time.perf_counter() - t0
        if self.error is not None:
            raise FloorError(self.error)
        if err:
            raise FloorError(f"emulation stopped at pc 0x{self._reg(a64.UC_ARM64_REG_PC):x}: {UcError(err)}")
        if not self.reset:
            raise FloorError(f"no SYSTEM_RESET (timeout?) at pc 0x{self._reg(a64.UC_ARM64_REG_PC):x}")
        x19 = self._reg(a64.UC_ARM64_REG_X19)
        if x19 != 0:
            raise FloorError(f"SYSTEM_RESET with the loop counter x19 = {x19}, not 0")
        return FloorRun(self.exits, self.traps, seconds)


def run_floor(path: Path, gic: int, timeout_s: float = 0.0) -> FloorRun:
    """One complete floor run of the guest image at ``path``."""
    return FloorVM(path.read_bytes(), gic).run(timeout_s)


# ---- the benchmark --------------------------------------------------------------------------
@dataclass
class Row:
    guest: str
    platform: str
    iterations: int  # exits worldswitch observed (run_guest's .iterations)
    floor_exits: int
    c_floor_us: float | None  # per iteration, median; None without a C compiler
    floor_us: float
    # worldswitch: vanilla and all 17 patches, each without and with the round-trip cache
    vanilla_nocache_us: float | None
    vanilla_us: float
    series_nocache_us: float | None
    series_us: float
    states: int  # model states the series run visited (the cache's table)
    hit_rate: float  # replayed round trips / all round trips, series run

    def ratio(self, us: float | None) -> float | None:
        return None if us is None else us / self.floor_us


def guest_path(name: str, short: int | None) -> Path:
    from worldswitch import guests

    image = guests.short_variant(name, short) if short else guests.GUESTS[name]
    return guests.image_path(image)


def _ws(path: Path, platform: str, patches: str, cache: bool) -> Any:
    from worldswitch.api import run_guest

    return run_guest(str(path), platform, patches=patches, cache=cache, verify_cache=0)


def measure(name: str, platform: str, gic: int, short: int | None, repeat: int, uncached: int,
            c_floor: Path | None) -> Row:
    path = guest_path(name, short)
    times: dict[str, list[float]] = {k: [] for k in ("c", "floor", "vanilla", "series", "vanilla_nc", "series_nc")}
    floor_run = res = None
    c_exits = 0
    # Interleaved, so that a slow patch of the machine hits every column alike.
    for i in range(repeat):
        if c_floor is not None:
            from cfloor import run_c_floor

            seconds, c_exits = run_c_floor(c_floor, path, gic)
            times["c"].append(seconds)
        floor_run = run_floor(path, gic)
        times["floor"].append(floor_run.seconds)
        times["vanilla"].append(_ws(path, platform, "none", True).wall_seconds)
        res = _ws(path, platform, "all", True)
        times["series"].append(res.wall_seconds)
        if i < uncached:  # the model run for real every time: slow, so fewer repeats
            times["vanilla_nc"].append(_ws(path, platform, "none", False).wall_seconds)
            times["series_nc"].append(_ws(path, platform, "all", False).wall_seconds)
    assert floor_run is not None and res is not None
    if c_floor is not None and c_exits != floor_run.exits:
        raise FloorError(f"{name}: the C floor saw {c_exits} exits, the Python floor {floor_run.exits}")

    def us(key: str, exits: int) -> float | None:
        return statistics.median(times[key]) / exits * 1e6 if times[key] else None

    n = res.iterations
    stats = res.cache
    lookups = stats["hits"] + stats["misses"]
    return Row(path.stem, platform, n, floor_run.exits, us("c", floor_run.exits), us("floor", floor_run.exits) or 0.0,
               us("vanilla_nc", n), us("vanilla", n) or 0.0, us("series_nc", n), us("series", n) or 0.0,
               stats["states"], stats["hits"] / lookups if lookups else 0.0)


def print_table(rows: list[Row], repeat: int) -> None:
    from rich.console import Console
    from rich.table import Table

    def cell(r: Row, us: float | None) -> str:
        ratio = r.ratio(us)
        return "-" if us is None or ratio is None else f"{us:.2f} ({ratio:.2f}x)"

    table = Table(title=f"µs per iteration (median of {repeat}) and the ratio to the Python floor")
    cols = ("guest", "platform", "iterations", "C floor", "Python floor", "vanilla, no cache", "vanilla",
            "series, no cache", "series", "states", "hits")
    for col in cols:
        table.add_column(col, justify="left" if col in ("guest", "platform") else "right")
    for r in rows:
        table.add_row(r.guest, r.platform, str(r.iterations), cell(r, r.c_floor_us), f"{r.floor_us:.2f}",
                      cell(r, r.vanilla_nocache_us), cell(r, r.vanilla_us), cell(r, r.series_nocache_us),
                      cell(r, r.series_us), str(r.states), f"{100 * r.hit_rate:.2f}%")
    Console(width=180).print(table)  # piped output would otherwise wrap at 80


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is kept (default 3)")
    ap.add_argument("--uncached", type=int, default=1,
                    help="of those, how many also run without the cache (slow at full length; default 1, 0: none)")
    ap.add_argument("--short", action="store_true", help="use the -1024 short variants, for a quick check")
    ap.add_argument("--guests", default="", help="comma-separated guest names to keep (default: all)")
    ap.add_argument("--no-c-floor", action="store_true", help="skip the C floor (it needs a C compiler)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    wanted = {g for g in args.guests.split(",") if g}
    known = {g for g, _, _ in PAIRS}
    if wanted - known:
        ap.error(f"unknown guest(s) {', '.join(sorted(wanted - known))}; known: {', '.join(sorted(known))}")
    if args.repeat < 1 or not 0 <= args.uncached <= args.repeat:
        ap.error("--repeat must be at least 1, and --uncached between 0 and --repeat")
    with tempfile.TemporaryDirectory() as tmp:
        c_floor = None
        if not args.no_c_floor:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from cfloor import build

            try:
                c_floor = build(Path(tmp))
            except RuntimeError as e:
                print(f"warning: no C floor: {e}", file=sys.stderr)
        rows = [
            measure(g, pf, gic, 1024 if args.short else None, args.repeat, args.uncached, c_floor)
            for g, pf, gic in PAIRS
            if not wanted or g in wanted
        ]
    for r in rows:
        if r.floor_exits != r.iterations:  # both must see the same guest behaviour
            print(f"warning: {r.guest} on {r.platform}: floor saw {r.floor_exits} exits, "
                  f"worldswitch {r.iterations}", file=sys.stderr)
    if args.json:
        print(json.dumps({"repeat": args.repeat, "uncached": args.uncached, "rows": [asdict(r) for r in rows]},
                         indent=2))
    else:
        print_table(rows, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
