"""The round-trip cache on guests that are not trap loops: hit rate and speed-up.

Runs each of the project's own guests (guests/unit/*.flat) and, if WORLDSWITCH_KUT_DIR
names an arm64 kvm-unit-tests build (built by the user, outside this repository), the
kvm-unit-tests cases of tests/test_kvm_unit_tests.py, with the cache and without it,
interleaved, and reports the median wall time of each, the speed-up, and the cache's
hit rate and states. Several vCPUs turn the cache off (core/memo.py): those rows show
what an idle cache costs. It is a benchmark: it reports and asserts nothing.

    python bench/real_guests.py [--repeat N] [--stat median|min] [--clock wall|cpu] [--skip micro-bench] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
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


@dataclass
class Row:
    guest: str
    platform: str
    cpus: int
    exits: int
    cached_s: float
    uncached_s: float
    speedup: float
    hit_rate: float
    states: int
    cache: str  # "on", or why it was off


def measure(name: str, image: Path, params: str, cpus: int, mem: int, platform: str, repeat: int,
            stat: str = "median", clock: str = "wall") -> Row:
    from worldswitch.api import run_guest
    from worldswitch.machine import VmConfig

    def once(cache: bool) -> Any:
        return run_guest(str(image), platform, vm=VmConfig(params=params, cpus=cpus, mem_mb=mem, console=None),
                         cache=cache, verify_cache=0, timeout=1800)

    def timed(cache: bool) -> tuple[Any, float]:
        if clock == "wall":
            res = once(cache)
            return res, res.wall_seconds
        t0 = time.process_time()  # the whole run_guest, set-up included, on this process's CPU time
        res = once(cache)
        return res, time.process_time() - t0

    on: list[float] = []
    off: list[float] = []
    r = None
    for _ in range(repeat):
        r, t = timed(True)
        on.append(t)
        off.append(timed(False)[1])
    assert r is not None
    s = r.cache
    lookups = s["hits"] + s["misses"]
    keep = min if stat == "min" else statistics.median
    a, b = keep(on), keep(off)
    return Row(name, platform, cpus, r.iterations, a, b, b / a, s["hits"] / lookups if lookups else 0.0,
               s["states"], "on" if s["on"] else f"off: {s['reason']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15,
                    help="runs of each, interleaved; the median is kept (default 15: these runs take tens of ms, "
                    "and this machine's run-to-run spread is several per cent)")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="what to keep of the runs: the median, or the fastest (what a run costs when "
                    "nothing else on the machine interferes; timeit's choice)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: the host time of the run (worldswitch's wall_seconds); cpu: this process's CPU "
                    "time over the whole run_guest call, set-up included (blind to time the host gave others)")
    ap.add_argument("--skip", default="", metavar="NAME,...",
                    help="leave out the cases whose name contains one of these")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    cases = list(OWN)
    kut = os.environ.get("WORLDSWITCH_KUT_DIR")
    if kut:
        cases += [(n, Path(kut) / "arm" / f, p, c, m, pf) for n, f, p, c, m, pf in KUT]
    skip = [w for w in args.skip.split(",") if w]
    rows = [measure(*case, args.repeat, args.stat, args.clock) for case in cases
            if not any(w in case[0] for w in skip)]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"the cache on real guests ({args.stat} of {args.repeat})")
    for col in ("guest", "platform", "vCPUs", "exits", "cache on s", "cache off s", "speed-up", "hits", "states",
                "cache"):
        table.add_column(col, justify="left" if col in ("guest", "platform", "cache") else "right")
    for r in rows:
        table.add_row(r.guest, r.platform, str(r.cpus), str(r.exits), f"{r.cached_s:.3f}", f"{r.uncached_s:.3f}",
                      f"{r.speedup:.2f}x", f"{100 * r.hit_rate:.1f}%", str(r.states), r.cache)
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
