"""``worldswitch study``, ``results``, ``compare`` and ``report``: designed studies into a
durable store, and what they found."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import click

from .cli import (
    _cache_options,
    _console,
    _dumps,
    _jobs_option,
    _platform_names,
    _Progress,
    _verbosity,
    handle_errors,
    main,
)
from .designs import DESIGNS
from .errors import TransparencyError, UsageError
from .store import DEFAULT_DB

DB_OPTION = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_DB,
                         show_default=True, help="The results database (SQLite), created if missing.")


def _existing_store(db_path: Path) -> Any:
    """The results database for reading: it must exist (reading never creates one)."""
    from .store import Store

    if not db_path.is_file():
        raise UsageError(f"no results database at {db_path} (run a study first, or pass --db)")
    return Store(db_path)


def _notice(text: str) -> None:
    from . import cli

    if not cli._quiet:
        click.echo(f"worldswitch: {text}", err=True)


def run_study(design_name: str, n: int | None, seed: int | None, selection: str, guest_list: str,
              platform_list: str, full: bool, db_path: Path, name: str | None, dask: str | None,
              jobs: int) -> dict[str, Any]:
    """Plan, run what the store lacks, and attribute. Returns the JSON-able summary."""
    from functools import partial

    from worldswitch import guests as builtin

    from .designs import build
    from .platform import load_platforms
    from .plugin import discover, parse_selection
    from .runner import dask_pool, execute, local_pool, missing, plan
    from .store import Store

    found = discover()
    plugins = parse_selection(selection, found)
    design = build(design_name, plugins, found, n, seed)
    guests = [g.strip() for g in guest_list.split(",") if g.strip()]
    for g in guests:
        if g not in builtin.GUESTS:
            raise UsageError(f"--guests: unknown guest {g!r}; known: {', '.join(builtin.GUESTS)}")
    profiles = load_platforms()
    platforms = {p: profiles[p] for p in _platform_names(platform_list)}
    method = "full" if full else "short"
    spec = {"design": design.name, "plugins": list(design.plugins), "guests": guests, "platforms": list(platforms),
            "method": method, "n": n, "seed": design.seed}
    name = name or f"{design.name}:{selection}:{','.join(guests)}:{','.join(platforms)}:{method}" + (
        f":{n}:{design.seed}" if design.name in ("random", "shapley") else "")
    for label, why in design.skipped:
        _notice(f"skipped {label}: {why}")
    runs = len(design.subsets) * len(guests) * len(platforms)
    with Store(db_path) as store:
        store.begin_study(name, spec)
        planned = plan(design, guests, platforms, method, found)
        todo = missing(planned, store, name)
        _notice(f"study {name!r}: {design.name} over {len(design.plugins)} plugin(s): {len(design.subsets)} sets x "
                f"{len(guests)} guests x {len(platforms)} platforms = {runs} configurations; "
                f"{runs - len(todo)} already in {db_path}, {len(todo)} to run")
        factory = partial(dask_pool, dask) if dask else partial(local_pool, max(1, min(jobs, len(todo) or 1)))
        with _Progress(len(todo), f"study {design.name}", jobs if not dask else 1) as tick:
            execute(todo, store, name, factory, tick)
        stored = store.study_runs(name)
    return summarize(name, design, guests, list(platforms), stored, found, len(todo), runs - len(todo))


def summarize(name: str, design: Any, guests: list[str], platforms: list[str], stored: list, found: Any,
              made: int, reused: int) -> dict[str, Any]:
    from .api import visible_difference
    from .attribution import attribute

    by: dict[tuple[str, str], dict[frozenset[str], Any]] = {}
    for _, run in stored:
        by.setdefault((run.guest, run.platform), {})[frozenset(run.plugins)] = run
    cells, problems = [], []
    for g in guests:
        for p in platforms:
            runs = by.get((g, p), {})
            vanilla = runs.get(frozenset())
            cycles = {}
            for key, run in runs.items():
                diff = next((d for a, b in zip(vanilla.visible, run.visible) if (d := visible_difference(a, b))),
                            None) if vanilla is not None and key else None
                if diff:
                    problems.append(f"{run.selection} is not transparent on {p} {g}: {diff}")
                    continue
                cycles[key] = run.cycles
            if vanilla is None:
                continue
            cell = attribute(list(design.plugins), cycles, found, design.orders)
            if design.name == "cumulative":  # what each patch added when it was applied, in order
                prev = cycles.get(frozenset())
                for row, i in zip(cell["plugins"], range(len(design.plugins))):
                    now = cycles.get(frozenset(design.plugins[: i + 1]))
                    row["step"] = None if now is None or prev is None else prev - now
                    prev = now
            # every measured set, in the design's order (cumulative: the order patches were applied)
            order = {sub.plugins: i for i, sub in enumerate(design.subsets)}
            labels = {sub.plugins: sub.label for sub in design.subsets}
            sets = sorted(((tuple(sorted(k, key=list(design.plugins).index)), c) for k, c in cycles.items()),
                          key=lambda kc: order.get(kc[0], len(order)))
            cell["sets"] = [{"label": labels.get(k, "+" + ",".join(k)), "plugins": list(k), "cycles": c}
                            for k, c in sets]
            cells.append({"guest": g, "platform": p, **cell})
    return {"study": name, "design": design.name, "plugins": list(design.plugins),
            # a third-party plugin is named, never numbered: a number means the built-in patch
            "patches": {n: found[n].meta.patch if found[n].builtin else None for n in design.plugins},
            "guests": guests, "platforms": platforms,
            "runs_made": made, "runs_reused": reused, "skipped": [list(x) for x in design.skipped],
            "attribution": cells, "invalid": problems}


METRICS = {"step": "saved when applied (in series order)", "alone": "saved alone",
           "marginal": "lost without it", "shapley": "Shapley share"}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def print_attribution(data: dict[str, Any]) -> None:
    from rich.table import Table

    con = _console()
    con.print(f"Study {data['study']!r}: cycles saved per iteration against vanilla "
              f"({data['runs_made']} run(s) made, {data['runs_reused']} reused from the store)")
    patches = data["patches"]
    metrics = [k for k in ("step", "alone", "marginal", "shapley")
               if any(r.get(k) is not None for c in data["attribution"] for r in c["plugins"])]
    for p in data["platforms"]:
        cells = {c["guest"]: c for c in data["attribution"] if c["platform"] == p}
        if not cells:
            continue
        t = Table(title=f"Platform {p}: " + " / ".join(METRICS[k] for k in metrics))
        t.add_column("patch")
        t.add_column("plugin", no_wrap=True)
        for g in data["guests"]:
            t.add_column(g, justify="right")
        for i, name in enumerate(data["plugins"]):
            row = []
            for g in data["guests"]:
                r = cells[g]["plugins"][i] if g in cells else {}
                row.append(" / ".join(_fmt(r.get(k)) + (f" ± {r['shapley_se']:,.0f}" if k == "shapley" and
                                                         r.get("shapley_se") is not None else "") for k in metrics))
            t.add_row(str(patches.get(name) or "-"), name, *row)
        t.add_section()
        t.add_row("", "all together", *(_fmt(cells[g]["saved"]) if g in cells else "-" for g in data["guests"]))
        con.print(t)
        pairs = [(g, x) for g in data["guests"] if g in cells for x in cells[g]["interactions"] if abs(x["value"]) >= 1]
        for g, x in pairs:
            con.print(f"  interaction on {g}: {x['a']} with {x['b']}: {x['value']:+,.0f} cycles (beyond the sum "
                      "of each alone)")
    if "shapley" not in metrics:
        con.print("Shapley shares need every subset measured (factorial, at most 12 plugins) or sampled orders "
                  "(shapley N).")
    elif any(c.get("shapley_orders") for c in data["attribution"]):
        con.print(f"Shapley shares estimated from {data['attribution'][0]['shapley_orders']} sampled orders: "
                  "± one standard error.")


@main.command()
@click.argument("design", type=click.Choice(DESIGNS))
@click.argument("n", type=click.IntRange(1), required=False)
@click.option("--seed", type=int, default=None, help="random, shapley: the seed of the draw (default 0).")
@click.option("--plugins", "selection", default="series", show_default=True, metavar="SEL",
              help="The plugins to study, as --patches takes them (third-party plugins by name).")
@click.option("--guests", "guest_list", default="null_hvc,self_sgi,sysreg", show_default=True)
@click.option("--platforms", "platform_list", default="A,B,C-v2,C-v3", show_default=True)
@click.option("--full", is_flag=True, help="Full-length runs instead of the exact short-run extrapolation.")
@DB_OPTION
@click.option("--name", default=None, help="The study's name in the database (default: from its parameters).")
@click.option("--dask", "dask", default=None, metavar="ADDRESS",
              help="Run on an existing Dask distributed scheduler (e.g. tcp://host:8786) instead of local processes.")
@_jobs_option
@click.option("--json", "as_json", is_flag=True, help="Print the attribution as JSON.")
@_verbosity
@_cache_options
@handle_errors
def study(design: str, n: int | None, seed: int | None, selection: str, guest_list: str, platform_list: str,
          full: bool, db_path: Path, name: str | None, dask: str | None, jobs: int, as_json: bool) -> None:
    """Run a designed study and attribute the savings per plugin, guest and platform.

    \b
    Designs:
      one-at-a-time   each plugin alone over vanilla (with what it requires)
      leave-one-out   the whole set without each plugin (and what requires it)
      cumulative      plugins added in series order, as the kernel applied them
      factorial       every subset of the plugins (2^k sets: keep k small)
      random N        N seeded random subsets (--seed S)
      shapley N       N seeded random orders and their prefixes: Shapley shares
                      with their standard error when factorial is too large
    Sets that break a plugin's requires are skipped and listed. Results go to a SQLite
    database (--db); configurations already there are not run again, so an interrupted
    study resumes where it stopped.

    \b
    Examples:
      worldswitch study one-at-a-time --platforms A,C-v3
      worldswitch study factorial --plugins 7-11 --platforms A
      worldswitch study random 20 --seed 1 --dask tcp://127.0.0.1:8786
      worldswitch study shapley 20 --seed 1 --platforms A --json > shares.json
      worldswitch report --out report/        # the latest study: report.md and figures"""
    if design in ("random", "shapley") and n is None:
        raise click.BadParameter(f"{design} needs N, the number of {'subsets' if design == 'random' else 'orders'}: "
                                 f"`study {design} 20 --seed 1`", param_hint="N")
    if design not in ("random", "shapley") and n is not None:
        raise click.BadParameter(f"{design} takes no N", param_hint="N")
    data = run_study(design, n, seed, selection, guest_list, platform_list, full, db_path, name, dask, jobs)
    if as_json:
        click.echo(_dumps(data))
    else:
        print_attribution(data)
    if data["invalid"]:
        for msg in data["invalid"][:-1]:
            click.echo(f"worldswitch: {msg}", err=True)
        raise TransparencyError(f"{data['invalid'][-1]}; invalid sets get no figure")


@main.command()
@DB_OPTION
@click.option("--study", "study_name", default=None, help="Only this study's runs (`--studies` lists them).")
@click.option("--studies", "list_studies", is_flag=True, help="List the studies instead of the runs.")
@click.option("--guest", default=None)
@click.option("--platform", default=None)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@_verbosity
@handle_errors
def results(db_path: Path, study_name: str | None, list_studies: bool, guest: str | None, platform: str | None,
            fmt: str) -> None:
    """List, filter and export stored runs: hash, guest, platform, plugins, method, cycles
    per iteration, every counter (csv/json) and the wall time.

    \b
    Examples:
      worldswitch results --platform A --format csv > runs.csv
      worldswitch results --studies
      worldswitch compare 3f2a9c 81bd04"""

    with _existing_store(db_path) as store:
        if list_studies:
            studies = store.studies()
            if fmt == "json":
                click.echo(_dumps(studies))
            else:
                for n, spec in studies.items():
                    click.echo(f"{n}\t{spec['design']}\t{len(store.study_runs(n))} runs")
            return
        if study_name is not None and study_name not in store.studies():
            known = "; ".join(store.studies()) or "none yet"
            raise UsageError(f"--study: no study named {study_name!r} in {db_path}; known: {known}")
        runs = store.runs(guest, platform, study_name)
    rows = [{"hash": r.hash, "guest": r.guest, "platform": r.platform, "plugins": r.selection, "method": r.method,
             "iterations": r.iterations, "cycles_per_iteration": r.cycles, "wall_seconds": r.wall_seconds,
             "counts": r.counts} for r in runs]
    if fmt == "json":
        click.echo(_dumps(rows))
    elif fmt == "csv":
        counters = sorted({k for r in rows for k in r["counts"]})
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["hash", "guest", "platform", "plugins", "method", "iterations", "cycles_per_iteration",
                    "wall_seconds", *counters])
        for r in rows:
            w.writerow([r["hash"], r["guest"], r["platform"], r["plugins"], r["method"], r["iterations"],
                        r["cycles_per_iteration"], r["wall_seconds"], *(r["counts"].get(c, 0) for c in counters)])
        sys.stdout.write(out.getvalue())
    else:
        from rich.table import Table

        t = Table(title=f"{len(rows)} stored run(s) in {db_path}")
        for col in ("hash", "guest", "platform", "plugins", "method", "cycles/iter", "wall s"):
            t.add_column(col, justify="right" if col in ("cycles/iter", "wall s") else "left",
                         overflow="fold")
        for r in rows:
            t.add_row(r["hash"][:12], r["guest"], r["platform"], r["plugins"], r["method"],
                      f"{r['cycles_per_iteration']:,.1f}", f"{r['wall_seconds']:.2f}")
        _console().print(t)


@main.command()
@click.argument("a")
@click.argument("b")
@DB_OPTION
@click.option("--all", "show_all", is_flag=True, help="Show every counter, not only those that differ.")
@click.option("--json", "as_json", is_flag=True)
@_verbosity
@handle_errors
def compare(a: str, b: str, db_path: Path, show_all: bool, as_json: bool) -> None:
    """Per-counter difference between two stored configurations, given by their hashes
    (or unique prefixes, as `worldswitch results` shows them): per iteration, A, B and B − A."""

    with _existing_store(db_path) as store:
        ra, rb = store.find(a), store.find(b)
    counters = sorted(set(ra.counts) | set(rb.counts))
    rows = [{"counter": c, "a": ra.counts.get(c, 0.0), "b": rb.counts.get(c, 0.0),
             "diff": rb.counts.get(c, 0.0) - ra.counts.get(c, 0.0)} for c in counters]
    rows = [r for r in rows if show_all or r["diff"]]
    head = {"a": {"hash": ra.hash, "guest": ra.guest, "platform": ra.platform, "plugins": ra.selection,
                  "method": ra.method, "cycles_per_iteration": ra.cycles},
            "b": {"hash": rb.hash, "guest": rb.guest, "platform": rb.platform, "plugins": rb.selection,
                  "method": rb.method, "cycles_per_iteration": rb.cycles}}
    if as_json:
        click.echo(_dumps({**head, "counters": rows, "cycles_diff": rb.cycles - ra.cycles}))
        return
    from rich.table import Table

    con = _console()
    for k in ("a", "b"):
        h = head[k]
        con.print(f"{k.upper()}: {h['hash'][:12]} {h['guest']} on {h['platform']}, plugins {h['plugins']} "
                  f"({h['method']}): {h['cycles_per_iteration']:,.1f} cycles per iteration")
    t = Table(title="Counters per iteration")
    for col in ("counter", "A", "B", "B − A"):
        t.add_column(col, justify="left" if col == "counter" else "right")
    for r in rows:
        t.add_row(r["counter"], f"{r['a']:g}", f"{r['b']:g}", f"{r['diff']:+g}")
    t.add_section()
    t.add_row("cycles", f"{ra.cycles:,.1f}", f"{rb.cycles:,.1f}", f"{rb.cycles - ra.cycles:+,.1f}")
    con.print(t)


def load_study(db_path: Path, name: str) -> dict[str, Any]:
    """A stored study's summary, as `study --json` prints it (no run is made)."""
    from .designs import build
    from .plugin import discover

    found = discover()
    with _existing_store(db_path) as store:
        studies = store.studies()
        if name not in studies:
            known = "; ".join(studies) or "none yet"
            raise UsageError(f"no study named {name!r} in {db_path}; known: {known}")
        spec = studies[name]
        missing = [p for p in spec["plugins"] if p not in found]
        if missing:
            raise UsageError(f"study {name!r} used plugin {missing[0]!r}, which is not installed now")
        design = build(spec["design"], spec["plugins"], found, spec.get("n"), spec.get("seed"))
        stored = store.study_runs(name)
    return summarize(name, design, spec["guests"], spec["platforms"], stored, found, 0, len(stored))


@main.command()
@click.argument("study_name", metavar="[STUDY]", required=False)
@DB_OPTION
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for report.md and the figures (PNG and SVG), created if missing.")
@_verbosity
@handle_errors
def report(study_name: str | None, db_path: Path, out_dir: Path) -> None:
    """Write a Markdown report of a stored study with its figures: per-patch savings per
    platform and guest, a waterfall from vanilla to the whole set, the interaction matrix,
    and the table of vanilla against the whole set. STUDY defaults to the latest study in
    the database; `worldswitch results --studies` lists them.

    \b
    Example:
      worldswitch study one-at-a-time --platforms A,C-v3
      worldswitch report --out report/          # the latest study
      worldswitch results --studies             # their names"""
    from .report import write_report

    if study_name is None:
        with _existing_store(db_path) as store:
            names = list(store.studies())
        if not names:
            raise UsageError(f"no study in {db_path} yet")
        study_name = names[-1]
    data = load_study(db_path, study_name)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory")
    written = write_report(data, out_dir)
    for path in written:
        click.echo(str(path))
