"""The C floor: floor.py's floor hypervisor written in C (cfloor.c), next to the Python one.

The Python floor still pays for ctypes and the interpreter in every hook; the C floor
does the same traps with none of that, so its time per exit is the physical limit of
running these guests on Unicorn. The capstone scan stays in Python (floor.scan) and the
sites go to the C program on stdin, so the C side needs no disassembler.

    python bench/cfloor.py [--short] [--repeat N] [--guests null_hvc,self_sgi]
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
from pathlib import Path

import unicorn

# bench/ is a script folder, not a package: reuse floor.py's scan, guests and rows.
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import floor  # noqa: E402

SOURCE = BENCH / "cfloor.c"


def build(out_dir: Path) -> Path:
    """Compile cfloor.c against the libunicorn of the installed wheel; return the program."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise RuntimeError("no C compiler found (cc, gcc or clang; or set CC)")
    # The wheel ships its headers and the very library the Python floor runs on, so both
    # floors run the same Unicorn build.
    wheel = Path(unicorn.__file__).resolve().parent
    include, lib = wheel / "include", wheel / "lib"
    if not (include / "unicorn" / "unicorn.h").is_file() or not (lib / "libunicorn.so.2").is_file():
        raise RuntimeError(f"the unicorn wheel at {wheel} has no include/unicorn/unicorn.h or lib/libunicorn.so.2")
    exe = Path(out_dir) / "cfloor"
    cmd = [cc, "-O2", "-std=c11", "-o", str(exe), str(SOURCE), f"-I{include}",
           f"-L{lib}", "-l:libunicorn.so.2", f"-Wl,-rpath,{lib}"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"compiling {SOURCE.name} failed:\n{' '.join(cmd)}\n{res.stderr}")
    return exe


def run_c_floor(exe: Path, image: Path, gic: int, timeout_s: float = 0.0) -> tuple[float, int]:
    """One complete C floor run of ``image``: (seconds inside uc_emu_start, exits)."""
    sites, wfis = floor.scan(image.read_bytes())
    lines = [f"s {s.addr:x} {' '.join(map(str, s.key))} {int(s.is_read)}" for s in sites]
    lines += [f"w {a:x}" for a in wfis]
    res = subprocess.run([str(exe), str(image), str(gic), str(int(timeout_s * 1_000_000))],
                         input="\n".join(lines) + "\n", capture_output=True, text=True)
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise floor.FloorError(f"{exe.name} exited {res.returncode} without a result: {res.stderr.strip()}") from None
    if not out["ok"]:
        raise floor.FloorError(out["error"])  # the same checks, and messages, as FloorVM.run
    return out["seconds"], out["exits"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is kept (default 3)")
    ap.add_argument("--short", action="store_true", help="use the -1024 short variants, for a quick check")
    ap.add_argument("--guests", default="", help="comma-separated guest names to keep (default: all)")
    args = ap.parse_args(argv)
    wanted = {g for g in args.guests.split(",") if g}
    known = {g for g, _, _ in floor.PAIRS}
    if wanted - known:
        ap.error(f"unknown guest(s) {', '.join(sorted(wanted - known))}; known: {', '.join(sorted(known))}")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    mismatch = False
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        print(f"{'guest':<16} {'platform':<8} {'exits':>8} {'C µs/exit':>10} {'Py µs/exit':>11} {'Py/C':>6}"
              f"   (median of {args.repeat})")
        for name, platform, gic in floor.PAIRS:
            if wanted and name not in wanted:
                continue
            path = floor.guest_path(name, 1024 if args.short else None)
            c_s: list[float] = []
            py_s: list[float] = []
            # Interleave the two so a slow patch of the machine hits both alike.
            for _ in range(args.repeat):
                seconds, c_exits = run_c_floor(exe, path, gic)
                c_s.append(seconds)
                py = floor.run_floor(path, gic)
                py_s.append(py.seconds)
            c_us = statistics.median(c_s) / c_exits * 1e6
            py_us = statistics.median(py_s) / py.exits * 1e6
            print(f"{path.stem:<16} {platform:<8} {c_exits:>8} {c_us:>10.3f} {py_us:>11.3f} {py_us / c_us:>5.1f}x")
            if c_exits != py.exits:  # the two must see the same guest behaviour
                mismatch = True
                print(f"warning: {path.stem} on {platform}: C floor saw {c_exits} exits, Python floor {py.exits}",
                      file=sys.stderr)
    return 1 if mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
