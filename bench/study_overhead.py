"""The study runner's overhead per run, against a full-length run.

Runs a designed study into a fresh results database with one worker, then compares the
study's wall time with the time its workers spent measuring (each stored run's
``wall_seconds``): the difference, per run, is everything that is not simulation (the
configuration hashes, the process pool, pickling, one SQLite commit per result). It then
times one full-length run, the unit a study is made of, and prints the overhead as a
fraction of it (issue 10's bound: under 5 %).

    python bench/study_overhead.py            # cumulative over the series, A, short runs
    python bench/study_overhead.py --json
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner
from worldswitch.api import run_guest
from worldswitch.cli import main


def study_overhead(design: str, platform: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        start = time.perf_counter()
        r = CliRunner().invoke(main, ["study", design, "--platforms", platform, "--db", str(db), "-j", "1", "-q",
                                      "--json"])
        total = time.perf_counter() - start
        if r.exit_code != 0:
            raise SystemExit(r.stderr)
        with sqlite3.connect(db) as con:
            runs, simulated = con.execute("SELECT COUNT(*), SUM(wall_seconds) FROM runs").fetchone()
    return {"runs": runs, "study_seconds": total, "simulated_seconds": simulated,
            "overhead_per_run_ms": 1000 * (total - simulated) / runs}


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--design", default="cumulative")
    ap.add_argument("--platform", default="A")
    ap.add_argument("--full-guest", default="sysreg", help="the full-length run to compare with")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = study_overhead(args.design, args.platform)
    full = run_guest(args.full_guest, args.platform)
    out["full_run_seconds"] = full.wall_seconds
    out["overhead_pct_of_full_run"] = 100 * out["overhead_per_run_ms"] / 1000 / full.wall_seconds
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"study {args.design} on {args.platform}: {out['runs']} runs in {out['study_seconds']:.2f} s, "
          f"{out['simulated_seconds']:.2f} s of it measuring")
    print(f"runner overhead: {out['overhead_per_run_ms']:.1f} ms per run = {out['overhead_pct_of_full_run']:.2f} % "
          f"of a full-length {args.full_guest} run ({full.wall_seconds:.1f} s)")


if __name__ == "__main__":
    main_()
