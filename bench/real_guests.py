"""The round-trip cache on guests that are not trap loops: hit rate and speed-up.

Runs each of the project's own guests (guests/unit/*.flat) and, if WORLDSWITCH_KUT_DIR
names an arm64 kvm-unit-tests build (built by the user, outside this repository), the
kvm-unit-tests cases of tests/test_kvm_unit_tests.py, with the cache and without it, in
pairs whose order alternates, and reports the time of each (median or fastest), the
speed-up, the median of the pairs' own ratios, and the cache's hit rate and states.
Several vCPUs turn the cache off (core/memo.py): those rows show what an idle cache costs.
It is a benchmark: it reports and asserts nothing.

These runs take tens of milliseconds, and a shared 2-core machine's spread between
identical runs is several per cent, as large as what is being measured. ``--instructions``
adds a figure that no noise blurs: the instructions the host CPU executes for one run,
counted by valgrind's callgrind (each case in its own process under valgrind, two runs
each way after a warm-up, counted from the ``os.getppid()`` before a run to the
``os.getpgrp()`` after it; about a minute per case, two at a time).

    python bench/real_guests.py [--repeat N] [--stat median|min] [--clock wall|cpu] [--instructions]
                                [--skip NAME,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

UNIT = Path(__file__).resolve().parent.parent / "guests" / "unit"
# (name, image, --params, vCPUs, MiB of RAM, platform)
OWN = [(n, UNIT / f"{n}.flat", "", 1, 64, pf) for n in ("boot", "vectors", "irq", "timer", "exitcost", "mmu")
       for pf in ("A", "C-v3")] + [("smp", UNIT / "smp.flat", "", 2, 64, "A"),
                                   ("spinwait-smp", UNIT / "spinwait.flat", "us=2000 smp", 2, 64, "C-v3")]
KUT = [
    ("kut selftest-setup", "selftest.flat", "setup smp=2 mem=256", 2, 256, "A"),
    ("kut selftest-vectors-kernel", "selftest.flat", "vectors-kernel", 1, 64, "A"),
    ("kut selftest-vectors-user", "selftest.flat", "vectors-user", 1, 64, "A"),
    ("kut psci", "psci.flat", "", 2, 64, "A"),
    ("kut gicv2-ipi", "gic.flat", "ipi", 2, 64, "A"),
    ("kut gicv3-ipi", "gic.flat", "ipi", 2, 64, "C-v3"),
    ("kut timer", "timer.flat", "", 1, 64, "A"),
    ("kut micro-bench", "micro-bench.flat", "", 2, 64, "A"),
]
Case = tuple[str, Path, str, int, int, str]


@dataclass
class Row:
    guest: str
    platform: str
    cpus: int
    exits: int
    cached_s: float
    uncached_s: float
    speedup: float  # uncached_s / cached_s
    paired: float  # the median of each pair's uncached / cached
    hit_rate: float  # replayed / every round trip (those run while the cache slept included)
    states: int
    cache: str  # "on", or why it was off
    insns_cached: int = 0  # instructions of one run (--instructions), 0 if not counted
    insns_uncached: int = 0


def _once(case: Case, cache: bool) -> Any:
    from worldswitch.api import run_guest
    from worldswitch.machine import VmConfig

    _, image, params, cpus, mem, platform = case
    return run_guest(str(image), platform, vm=VmConfig(params=params, cpus=cpus, mem_mb=mem, console=None),
                     cache=cache, verify_cache=0, timeout=1800)


def measure(name: str, image: Path, params: str, cpus: int, mem: int, platform: str, repeat: int,
            stat: str = "median", clock: str = "wall") -> Row:
    case = (name, image, params, cpus, mem, platform)

    def timed(cache: bool) -> tuple[Any, float]:
        if clock == "wall":
            res = _once(case, cache)
            return res, res.wall_seconds
        t0 = time.process_time()  # the whole run_guest, set-up included, on this process's CPU time
        res = _once(case, cache)
        return res, time.process_time() - t0

    r, _ = timed(True)  # warm-up: first-use costs (imports, the compiled hit path) are not the cache's per run
    timed(False)
    on: list[float] = []
    off: list[float] = []
    for i in range(repeat):
        for cache in (True, False) if i % 2 == 0 else (False, True):  # neither always goes first
            got, t = timed(cache)
            (on if cache else off).append(t)
            if cache:
                r = got
    s = r.cache
    lookups = s["hits"] + s["misses"] + s.get("slept", 0)
    keep = min if stat == "min" else statistics.median
    a, b = keep(on), keep(off)
    return Row(name, platform, cpus, r.iterations, a, b, b / a, statistics.median(y / x for x, y in zip(on, off)),
               s["hits"] / lookups if lookups else 0.0, s["states"], "on" if s["on"] else f"off: {s['reason']}")


# ---- instruction counts (--instructions) ------------------------------------------------
def _worker(case: Case) -> None:
    """Under callgrind: warm up, then two runs each way, each between a getppid (counts
    zeroed) and a getpgrp (counts dumped)."""
    _once(case, True)
    _once(case, False)
    for cache in (True, False, False, True):
        os.getppid()
        _once(case, cache)
        os.getpgrp()


def count_instructions(index: int, case: Case) -> tuple[int, int]:
    """The instructions of one run with the cache and one without: (cached, uncached)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", "--smc-check=all-non-file", "--zero-before=getppid",
               "--dump-before=getpgrp", f"--callgrind-out-file={out}", sys.executable, __file__,
               "--_worker", str(index)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        if done.returncode or len(dumps) != 4:
            raise SystemExit(f"real_guests: callgrind on {case[0]} ({case[5]}) failed "
                             f"(exit {done.returncode}, {len(dumps)} counts): {done.stderr.strip()[-300:]}")
        n = [next(int(line.split()[1]) for line in p.read_text().splitlines() if line.startswith("summary:"))
             for p in dumps]
    return (n[0] + n[3]) // 2, (n[1] + n[2]) // 2


def all_cases(kut: str | None) -> list[Case]:
    cases = list(OWN)
    if kut:
        cases += [(n, Path(kut) / "arm" / f, p, c, m, pf) for n, f, p, c, m, pf in KUT]
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15,
                    help="pairs of runs (with and without the cache, the order alternating; default 15: these runs "
                    "take tens of ms, and this machine's run-to-run spread is several per cent)")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="what to keep of each side's runs: the median, or the fastest (what a run costs when "
                    "nothing else on the machine interferes; timeit's choice)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: the host time of the run (worldswitch's wall_seconds); cpu: this process's CPU "
                    "time over the whole run_guest call, set-up included (blind to time the host gave others)")
    ap.add_argument("--instructions", action="store_true",
                    help="also count the host instructions of one run each way with valgrind's callgrind "
                    "(deterministic; about a minute per case)")
    ap.add_argument("--skip", default="", metavar="NAME,...",
                    help="leave out the cases whose name contains one of these")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--_worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    kut = os.environ.get("WORLDSWITCH_KUT_DIR")
    if args._worker is not None:
        _worker(all_cases(kut)[args._worker])
        return 0
    if args.instructions and shutil.which("valgrind") is None:
        print("real_guests: --instructions needs valgrind (callgrind) on PATH", file=sys.stderr)
        return 2
    skip = [w for w in args.skip.split(",") if w]
    chosen = [(i, c) for i, c in enumerate(all_cases(kut)) if not any(w in c[0] for w in skip)]
    counts: dict[int, tuple[int, int]] = {}
    if args.instructions:  # first, on both cores; the timed runs below then have the machine to themselves
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {i: pool.submit(count_instructions, i, c) for i, c in chosen}
            counts = {i: f.result() for i, f in futures.items()}
    rows = []
    for i, case in chosen:
        row = measure(*case, args.repeat, args.stat, args.clock)
        row.insns_cached, row.insns_uncached = counts.get(i, (0, 0))
        rows.append(row)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"the cache on real guests ({args.stat} of {args.repeat} pairs, {args.clock} time)")
    cols = ["guest", "platform", "vCPUs", "exits", "cache on s", "cache off s", "speed-up", "paired", "hits",
            "states", "cache"]
    if args.instructions:
        cols[8:8] = ["insns on", "insns off", "insns off/on"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("guest", "platform", "cache") else "right")
    for r in rows:
        cells = [r.guest, r.platform, str(r.cpus), str(r.exits), f"{r.cached_s:.3f}", f"{r.uncached_s:.3f}",
                 f"{r.speedup:.3f}x", f"{r.paired:.3f}x", f"{100 * r.hit_rate:.1f}%", str(r.states), r.cache]
        if args.instructions:
            cells[8:8] = [f"{r.insns_cached / 1e6:.1f}M", f"{r.insns_uncached / 1e6:.1f}M",
                          f"{r.insns_uncached / r.insns_cached:.4f}"]
        table.add_row(*cells)
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
