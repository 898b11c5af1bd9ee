"""Running a study: every (plugin set, guest, platform) of a design, through an executor,
into the results store.

Runs go to a ``concurrent.futures.Executor``: a local process pool by default, or a Dask
distributed scheduler's executor (``--dask ADDRESS``). A worker only measures and returns
plain data; the calling process is the store's one writer and commits each result as it
arrives. A configuration already in the store (same hash) is not run again, so an
interrupted study resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .designs import Design
from .platform import Platform
from .store import Run, Store, config_hash, resolved_config


@dataclass(frozen=True)
class Job:
    """One configuration to measure. Plain data: it crosses process and machine borders."""

    guest: str
    platform: Platform
    plugins: tuple[str, ...]
    method: str  # "full", or "short": extrapolated exactly from two short runs


def measure(job: Job) -> dict[str, Any]:
    """Run a job (in a worker) and return its per-iteration figures as plain data."""
    from .api import run_guest
    from .study import SHORT_LENGTHS, extrapolate, full_iterations

    selection = ",".join(job.plugins) or "none"
    start = time.perf_counter()
    if job.method == "short":
        a, b = SHORT_LENGTHS
        runs = [run_guest(f"{job.guest}-{n}", job.platform, patches=selection) for n in (a, b)]
        cell = extrapolate(runs[0], runs[1], a, b, full_iterations(job.guest))
        counts, cycles, iterations = cell.counts, cell.cycles, cell.iterations
        visible = [r.guest_visible for r in runs]
    else:
        r = run_guest(job.guest, job.platform, patches=selection)
        counts = {k: v / r.iterations for k, v in r.counts.items()}
        cycles, iterations, visible = r.cycles_per_iteration, float(r.iterations), [r.guest_visible]
    return {"counts": counts, "cycles": cycles, "iterations": iterations, "visible": visible,
            "wall_seconds": time.perf_counter() - start}


@dataclass
class Planned:
    job: Job
    hash: str
    label: str
    config: dict[str, Any]


def plan(design: Design, guests: Sequence[str], platforms: Mapping[str, Platform], method: str,
         found: Mapping[str, Any]) -> list[Planned]:
    """Every configuration of the design, with its hash, in a fixed order."""
    out = []
    for subset in design.subsets:
        for g in guests:
            for pf in platforms.values():
                config = resolved_config(g, pf, subset.plugins, method, found)
                out.append(Planned(Job(g, pf, subset.plugins, method), config_hash(config), subset.label, config))
    return out


def missing(planned: Sequence[Planned], store: Store, study: str) -> list[Planned]:
    """What the store lacks, once each; what it has is linked to ``study`` at once."""
    todo: list[Planned] = []
    seen: set[str] = set()
    for p in planned:
        if store.has(p.hash):
            store.link(study, p.hash, p.label)
        elif p.hash not in seen:
            seen.add(p.hash)
            todo.append(p)
    return todo


def execute(todo: Sequence[Planned], store: Store, study: str, executor_factory: Callable[[], Any],
            on_done: Callable[[Planned], None] | None = None) -> None:
    """Run ``todo`` and commit each result as it arrives (the only writer is this process)."""
    if not todo:
        return
    with executor_factory() as pool:
        futures: dict[Future, Planned] = {pool.submit(measure, p.job): p for p in todo}
        for future in as_completed(futures):
            p = futures[future]
            data = future.result()
            store.add(Run(p.hash, p.job.guest, p.job.platform.name, p.job.plugins, p.job.method, data["iterations"],
                          data["cycles"], data["counts"], tuple(data["visible"]), p.config, data["wall_seconds"]),
                      study, p.label)
            if on_done:
                on_done(p)


@contextmanager
def local_pool(workers: int) -> Iterator[Executor]:
    """A process pool that never outlives this process and stops at once on Ctrl-C."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from .study import _stop_pool, _worker_init

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown()


@contextmanager
def dask_pool(address: str) -> Iterator[Executor]:
    """An existing Dask distributed scheduler's executor (the workers must have worldswitch
    and the same plugins installed)."""
    from .errors import UsageError

    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--dask needs the 'distributed' package: pip install 'worldswitch[dask]'") from None
    try:
        client = Client(address, timeout=10)
    except OSError as e:
        raise UsageError(f"--dask {address}: cannot reach the scheduler: {e}") from None
    try:
        with client.get_executor(pure=False) as ex:
            yield ex
    finally:
        client.close()
