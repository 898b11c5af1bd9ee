"""Runs over guests × platforms: the reference table, and per-iteration counts.

Full-length runs take seconds to a minute each. ``extrapolate`` gives the same
per-iteration figures from two short runs: every counter of these guests is
``setup + per_iteration × N`` exactly, which ``tests/test_study.py`` checks against a
full-length run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from .api import RunResult, run_guest, visible_difference
from .designs import closure
from .measurements import load_reference  # noqa: F401 - re-exported
from .platform import Platform, load_platforms

#: the reference table's rows: the study's guest name -> the built-in image
TABLE_GUESTS = {"null_hvc": "Null HVC", "self_sgi": "Self SGI", "sysreg": "SysReg"}
SHORT_LENGTHS = (256, 1024)


@dataclass(frozen=True)
class Cell:
    guest: str
    platform: str
    counts: dict[str, float]  # per iteration
    iterations: float
    cycles: float  # per iteration
    run: RunResult | None = None
    #: what the guest saw in each run behind the cell: equal across plugin sets, or a plugin is not transparent
    visible: tuple[dict, ...] = ()


Job = tuple[str, "str | Platform", str, bool]  # guest, platform, plugin selection, force


def _job(args: Job) -> RunResult:
    guest, platform, patches, force = args
    return run_guest(guest, platform, patches=patches, force=force)


def _worker_init(parent: int) -> None:
    """A worker never outlives its parent and leaves Ctrl-C to it: the parent stops
    the pool; SIGTERM (the parent's kill) ends a worker at once, mid-run or not."""
    from . import budget

    budget.CATCH_SIGNALS = False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Kill the workers now: ``shutdown`` alone waits for the runs in flight, which can
    take minutes. The pool then fails its pending futures itself (cancelling them
    would race with that inside concurrent.futures). A second Ctrl-C meanwhile must not
    cut the clean-up short, so SIGINT waits until it is done."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError):
                proc.kill()
        pool.shutdown(wait=True)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def run_many(
    jobs: list[Job], workers: int = 1, progress: Callable[[RunResult], None] | None = None
) -> list[RunResult]:
    """Run jobs (guest, platform, patches, force), in worker processes when workers > 1.

    Results come back in job order; each run is independent and deterministic, so the
    number of workers never changes a figure. There are never more workers than jobs."""
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        out = []
        for job in jobs:
            out.append(_job(job))
            if progress:
                progress(out[-1])
        return out
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),))
    try:
        out = []
        # not pool.map: on an interrupt it cancels futures that the pool then fails to fail
        for future in [pool.submit(_job, job) for job in jobs]:
            out.append(future.result())
            if progress:
                progress(out[-1])
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown()
    return out


def full_iterations(guest: str) -> int:
    from worldswitch import guests

    return guests.GUESTS[guest].iterations


def extrapolate(short: RunResult, longer: RunResult, n_short: int, n_long: int, n_full: int) -> Cell:
    """Per-iteration figures of the full-length guest from two short runs (exact for
    counters linear in the loop count)."""
    def at_full(a: float, b: float) -> float:
        slope = (b - a) / (n_long - n_short)
        return a + slope * (n_full - n_short)

    exits = at_full(short.iterations, longer.iterations)
    counts = {k: at_full(short.counts[k], longer.counts[k]) / exits for k in short.counts}
    cycles = at_full(short.cycles, longer.cycles) / exits
    return Cell(short.guest.split("-")[0], short.platform, counts, exits, cycles,
                visible=(short.guest_visible, longer.guest_visible))


def cell_from_run(r: RunResult) -> Cell:
    return Cell(r.guest, r.platform, {k: v / r.iterations for k, v in r.counts.items()}, r.iterations,
                r.cycles_per_iteration, r, (r.guest_visible,))


def transparency_problem(vanilla: Cell, other: Cell) -> str | None:
    """None when the guest saw the same under both cells' plugin sets, else the first difference."""
    for a, b in zip(vanilla.visible, other.visible):
        diff = visible_difference(a, b)
        if diff:
            return diff
    return None


def measure_many(
    selections: Iterable[str], guests: Iterable[str], platforms: Iterable[str], short: bool = False,
    workers: int = 1, progress: Callable[[RunResult], None] | None = None, force: bool = False,
) -> dict[tuple[str, str, str], Cell]:
    """Per-iteration counts and cycles for each (selection, guest, platform), all runs in
    one pool."""
    guests, platforms = list(guests), list(platforms)
    return measure_configs([(sel, g, p) for sel in selections for g in guests for p in platforms], short, workers,
                           progress, force)


def measure_configs(
    keys: Iterable[tuple[str, str, str]], short: bool = False, workers: int = 1,
    progress: Callable[[RunResult], None] | None = None, force: bool = False,
) -> dict[tuple[str, str, str], Cell]:
    """Per-iteration counts and cycles for each (selection, guest, platform) given, once
    each, all runs in one pool."""
    keys = list(dict.fromkeys(keys))
    # workers get the profiles themselves, not names: a --profiles directory is the parent's setting
    profiles = load_platforms()
    if not short:
        results = run_many([(g, profiles[p], sel, force) for sel, g, p in keys], workers, progress)
        return {k: cell_from_run(r) for k, r in zip(keys, results)}
    a, b = SHORT_LENGTHS
    results = run_many([(f"{g}-{n}", profiles[p], sel, force) for sel, g, p in keys for n in (a, b)], workers,
                       progress)
    return {k: extrapolate(results[2 * i], results[2 * i + 1], a, b, full_iterations(k[1]))
            for i, k in enumerate(keys)}


def measure_cells(
    guests: Iterable[str], platforms: Iterable[str], patches: str = "none", short: bool = False,
    workers: int = 1, progress: Callable[[RunResult], None] | None = None, force: bool = False,
) -> dict[tuple[str, str], Cell]:
    """Per-iteration counts and cycles for each (guest, platform)."""
    cells = measure_many([patches], list(guests), list(platforms), short, workers, progress, force)
    return {(g, p): cell for (_, g, p), cell in cells.items()}


def ablation_sets(selected: list[str], plugins: dict) -> dict[str, tuple[str, str]]:
    """For each plugin of a set: (the plugin with its requirements, the set without the
    plugin and whatever requires it). Both are valid selections, so nothing is forced."""
    out = {}
    for name in selected:
        alone = [n for n in selected if n in closure(name, plugins)]
        rest = [n for n in selected if name not in closure(n, plugins)]
        out[name] = (",".join(alone), ",".join(rest) or "none")
    return out


def price(cell: Cell, platform: Platform) -> float:
    """A cell's cycles per iteration under ``platform``'s costs (see :mod:`worldswitch.cost`)."""
    from .cost import cycles

    return cycles(cell.counts, platform)


def platforms_in(reference: dict[str, dict[str, float]]) -> list[str]:
    known = load_platforms()
    names = {p for row in reference.values() for p in row}
    return [p for p in known if p in names]
