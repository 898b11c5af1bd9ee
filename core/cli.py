"""The ``worldswitch`` command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from .errors import ProfileError, WorldswitchError

EXIT_CODES = """Exit codes: 0 success, 1 internal error, 2 usage error, 3 bad guest image,
4 unknown plugin or impossible plugin combination, 5 guest fault (unknown sysreg or
MMIO access, WFI that can never wake), 6 exit or time budget exhausted, 7 a plugin
raised (the run is invalid), 8 bad profile or measurement file."""


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


def handle_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    """One line on stderr and the documented exit code, never a traceback."""
    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except WorldswitchError as e:
            click.echo(f"worldswitch: error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("worldswitch: interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="worldswitch")
@click.option("-v", "--verbose", is_flag=True, help="Log each run's start and end (to stderr).")
def main(verbose: bool) -> None:
    """Simulate the KVM/ARM world switch (Linux v4.5-rc4) and measure what each of the
    17 entry/exit optimizations of the 2016 series buys, per platform and per exit.

    \b
    Quick start:
      worldswitch table                     # vanilla model vs the study's figures
      worldswitch table --patches series    # vanilla vs all 17 patches: predictions
      worldswitch run null_hvc -p A --patches 7,6
      worldswitch plugins                   # what can be switched on
    """
    if verbose:
        import logging

        from .api import set_log_level

        set_log_level(logging.DEBUG)


def _selection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--force", is_flag=True, help="Run even if a plugin's requirements are missing "
                     "(to watch the failure mode).")(f)
    f = click.option("--without", multiple=True, metavar="NAME", help="Leave this plugin out (repeatable).")(f)
    f = click.option("--patches", default="none", show_default=True, metavar="SEL",
                     help="Plugins to enable: all | none | series | vanilla | 1,7-11 | NAME,...")(f)
    return f


@main.command()
@click.argument("guest")
@click.option("-p", "--platform", default="A", show_default=True, help="Platform profile (`worldswitch platforms`).")
@_selection_options
@click.option("--max-exits", type=click.IntRange(1), default=None, help="Exit budget: stop with code 6 past it.")
@click.option("--timeout", type=click.FloatRange(0), default=600.0, show_default=True,
              help="Time budget in seconds (0: none); the result never depends on it.")
@click.option("--redist-base", default="0x3fbf0000", show_default=True,
              help="GICv3 redistributor base address (kvmtool: 0x3fff0000 - nrcpus * 0x20000).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def run(guest: str, platform: str, patches: str, without: tuple[str, ...], force: bool, max_exits: int | None,
        timeout: float, redist_base: str, as_json: bool) -> None:
    """Run GUEST (a built-in name such as null_hvc, self_sgi, sysreg, null_hvc_2p20,
    self_sgi-1024, or a path to a flat binary for the platform's architecture) and print a perf-stat-like summary:
    cycles:kh, exits observed (the iterations), cycles per iteration, exits by reason and
    hardware accesses by class."""
    from .api import run_guest
    from .cost import breakdown
    from .events import new_counters
    from .platform import get_platform

    try:
        base = int(redist_base, 0)
    except ValueError:
        raise click.BadParameter(f"{redist_base!r} is not an address", param_hint="--redist-base") from None
    pf = get_platform(platform)
    con_err = _console(stderr=True)
    with con_err.status(f"running {guest} on {pf.name}...") if con_err.is_terminal and not as_json else _null():
        r = run_guest(guest, pf, patches=patches, without=without, force=force, max_exits=max_exits,
                      timeout=timeout, redist_base=base)
    if as_json:
        click.echo(json.dumps(r.to_json(), indent=2, sort_keys=True))
        return
    counts = new_counters()
    from .events import Ev

    for k, v in r.counts.items():
        counts[Ev[k]] = v
    con = _console()
    con.print(f"\n Performance counter stats for 'worldswitch run {guest}' on platform {pf.name} "
              f"({pf.description}):\n")
    con.print(f"  {r.cycles:>18,.0f}      cycles:kh")
    con.print(f"  {r.iterations:>18,}      iterations (exits observed)")
    con.print(f"  {r.cycles_per_iteration:>18,.1f}      cycles per iteration")
    con.print(f"\n  plugins: {', '.join(r.plugins) if r.plugins else 'none (vanilla v4.5-rc4)'}"
              f"{'  [FORCED past missing requirements]' if r.forced else ''}")
    con.print("\n  exits by reason:")
    for k, v in r.exits.items():
        con.print(f"  {v:>18,}      {k}")
    con.print("\n  events (count, cycles):")
    cyc = breakdown(counts, pf)
    for k, v in r.counts.items():
        if v:
            con.print(f"  {v:>18,}      {k:<20} {cyc.get(k, 0.0):>16,.0f}")
    con.print(f"\n  {r.wall_seconds:>18.3f}      seconds of simulation (host time, not part of the result)\n")


@main.command()
@click.option("--patches", default="none", show_default=True, metavar="SEL",
              help="Also run with these plugins and show vanilla, patched and the change "
                   "(series = all 17: the model's predictions).")
@click.option("--platforms", "platform_list", default=None,
              help="Comma-separated platforms (default: all in the reference).")
@click.option("--short", is_flag=True, help="Extrapolate from two short runs per cell instead of full length "
              "(same figures for these guests, seconds instead of minutes).")
@click.option("-j", "--jobs", type=click.IntRange(1), default=os.cpu_count() or 1, show_default="CPU count",
              help="Worker processes.")
@click.option("--measurements", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Reference figures (TOML, like data/reference.toml).")
@click.option("--prior", "priors", multiple=True, metavar="[PLATFORM:]NAME=VALUE",
              help="Change a prior parameter (cycles), refit the free ones to the vanilla figures, then "
                   "price: how much does a prediction depend on it? Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@handle_errors
def table(patches: str, platform_list: str | None, short: bool, jobs: int, measurements: Path | None,
          priors: tuple[str, ...], as_json: bool) -> None:
    """The reference table: per-iteration cycles for Null HVC, Self SGI and SysReg on
    each platform, beside the study's vanilla figures and the error per cell. With
    --patches, the patched prediction and its change against vanilla too.

    \b
    Examples:
      worldswitch table --patches series
      worldswitch table --patches 7-11 --platforms A,B
      worldswitch table --short --patches series --prior gic_mmio_read=150"""
    from rich.progress import Progress

    from .calibrate import refit, set_priors
    from .platform import load_platforms
    from .plugin import discover, parse_selection
    from .study import TABLE_GUESTS, load_reference, measure_cells, platforms_in, price

    reference = load_reference(measurements)
    platforms = platform_list.split(",") if platform_list else platforms_in(reference)
    guests = [g for g in TABLE_GUESTS if g in reference] or list(TABLE_GUESTS)
    profiles = load_platforms()
    for p in platforms:
        if p not in profiles:
            raise ProfileError(f"unknown platform {p!r}; known: {', '.join(profiles)}")
    if priors:
        profiles = set_priors(profiles, list(priors))
        # refitting needs every calibrated platform's vanilla cells
        platforms_run = sorted(set(platforms) | set(platforms_in(reference)), key=list(profiles).index)
    else:
        platforms_run = platforms
    patched = patches not in ("none", "vanilla", "")
    if patched:
        parse_selection(patches, discover())  # fail early on a bad selection
    per = 2 if short else 1
    total = len(guests) * (len(platforms_run) + (len(platforms) if patched else 0)) * per
    with Progress(console=_console(stderr=True), transient=True, disable=as_json) as progress:
        task = progress.add_task("running guests", total=total)

        def tick(r: Any) -> None:
            progress.advance(task)

        vanilla = measure_cells(guests, platforms_run, "none", short, jobs, tick)
        after = measure_cells(guests, platforms, patches, short, jobs, tick) if patched else {}
    if priors:
        profiles = refit(profiles, vanilla, reference)
    rows = []
    for g in guests:
        for p in platforms:
            ref = reference.get(g, {}).get(p)
            v = price(vanilla[(g, p)], profiles[p])
            row: dict[str, Any] = {"guest": g, "platform": p, "reference": ref, "vanilla": round(v, 1),
                                   "error_pct": round(100 * (v - ref) / ref, 2) if ref else None}
            if patched:
                a = price(after[(g, p)], profiles[p])
                row.update(patched=round(a, 1), change_pct=round(100 * (a - v) / v, 2))
            rows.append(row)
    if as_json:
        click.echo(json.dumps({"patches": patches, "short": short, "priors": list(priors), "rows": rows}, indent=2))
        return
    _print_table(rows, guests, platforms, patched, patches)


def _print_table(rows: list[dict[str, Any]], guests: list[str], platforms: list[str], patched: bool,
                 patches: str) -> None:
    from rich.table import Table

    from .study import TABLE_GUESTS

    by = {(r["guest"], r["platform"]): r for r in rows}
    title = "Cycles per iteration: model (vanilla v4.5-rc4) vs the study" if not patched else \
        f"Cycles per iteration: vanilla vs --patches {patches} (predicted)"
    t = Table(title=title)
    t.add_column("guest")
    for p in platforms:
        t.add_column(p, justify="right")
    for g in guests:
        if patched:
            lines = [("vanilla", "vanilla"), ("patched", "patched"), ("change", "change_pct")]
        else:
            lines = [("study", "reference"), ("model", "vanilla"), ("error", "error_pct")]
        for label, key in lines:
            cells = []
            for p in platforms:
                val = by[(g, p)].get(key)
                if val is None:
                    cells.append("-")
                elif key.endswith("pct"):
                    cells.append(f"{val:+.2f} %")
                else:
                    cells.append(f"{val:,.0f}")
            t.add_row(f"{TABLE_GUESTS[g]} {label}", *cells)
        t.add_section()
    _console().print(t)


@main.command()
@click.option("--patches", default="series", show_default=True, metavar="SEL", help="The set to ablate.")
@click.option("--guests", "guest_list", default="null_hvc,self_sgi,sysreg", show_default=True)
@click.option("--platforms", "platform_list", default="A,B,C-v2,C-v3", show_default=True)
@click.option("--full", is_flag=True, help="Full-length runs instead of the (identical) short-run extrapolation.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=os.cpu_count() or 1, show_default="CPU count")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def ablate(patches: str, guest_list: str, platform_list: str, full: bool, jobs: int, as_json: bool) -> None:
    """Attribute the savings of a set of plugins, per platform and guest. For each plugin:
    what it saves alone (with the plugins it requires, against vanilla), and what the set
    loses without it (without it and the plugins that require it, against the whole set).
    The two differ where patches interact, e.g. 10 only saves on top of 7.

    \b
    Example:
      worldswitch ablate --platforms A,C-v3 --guests self_sgi
    """
    from rich.progress import Progress

    from .platform import load_platforms
    from .plugin import discover, parse_selection
    from .study import ablation_sets, measure_many

    found = discover()
    selected = parse_selection(patches, found)
    if not selected:
        raise click.BadParameter("nothing to ablate", param_hint="--patches")
    guests, platforms_ = guest_list.split(","), platform_list.split(",")
    profiles = load_platforms()
    for p in platforms_:
        if p not in profiles:
            raise ProfileError(f"unknown platform {p!r}; known: {', '.join(profiles)}")
    sets = ablation_sets(selected, found)
    selections = sorted({"none", ",".join(selected)} | {x for pair in sets.values() for x in pair})
    total = len(selections) * len(guests) * len(platforms_) * (1 if full else 2)
    with Progress(console=_console(stderr=True), transient=True, disable=as_json) as progress:
        task = progress.add_task("ablation runs", total=total)
        cells = measure_many(selections, guests, platforms_, not full, jobs, lambda r: progress.advance(task))
    rows = []
    whole = ",".join(selected)
    for p in platforms_:
        for g in guests:
            vanilla, series = cells[("none", g, p)].cycles, cells[(whole, g, p)].cycles
            for name in selected:
                alone, rest = sets[name]
                rows.append({"platform": p, "guest": g, "plugin": name, "patch": found[name].meta.patch,
                             "alone_saves": round(vanilla - cells[(alone, g, p)].cycles, 1),
                             "marginal_saves": round(cells[(rest, g, p)].cycles - series, 1),
                             "vanilla": round(vanilla, 1), "all": round(series, 1)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    con = _console()
    for p in platforms_:
        t = Table(title=f"Platform {p}: cycles saved per iteration (alone / marginal)")
        t.add_column("patch")
        t.add_column("plugin", no_wrap=True)
        for g in guests:
            t.add_column(g, justify="right")
        for name in selected:
            cells_txt = []
            for g in guests:
                r = next(x for x in rows if x["platform"] == p and x["guest"] == g and x["plugin"] == name)
                cells_txt.append(f"{r['alone_saves']:,.0f} / {r['marginal_saves']:,.0f}")
            t.add_row(str(found[name].meta.patch or "-"), name, *cells_txt)
        totals = [next(x for x in rows if x["platform"] == p and x["guest"] == g) for g in guests]
        t.add_section()
        t.add_row("", "all together", *(f"{r['vanilla'] - r['all']:,.0f}" for r in totals))
        con.print(t)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def platforms(as_json: bool) -> None:
    """List the platform profiles: host and guest GIC, list registers, priority bits and
    the unit-cost parameters (fitted or prior)."""
    from .platform import load_platforms

    pfs = load_platforms()
    if as_json:
        out = {n: {"description": p.description, "host": p.host, "host_gic": p.host_gic, "guest_gic": p.guest_gic,
                   "nr_lr": p.nr_lr, "nr_pri_bits": p.nr_pri_bits, "arch": p.arch, "calibrated": p.calibrated,
                   "parameters": {k: {"value": v.value, "fit": v.fit, "why": v.why} for k, v in p.parameters.items()}}
               for n, p in pfs.items()}
        click.echo(json.dumps(out, indent=2))
        return
    from rich.table import Table

    t = Table(title="Platform profiles")
    for col in ("name", "host", "host GIC", "guest GIC", "LRs", "pri bits", "arch", "calibrated", "description"):
        t.add_column(col)
    for n, p in pfs.items():
        t.add_row(n, p.host, f"v{p.host_gic}", f"v{p.guest_gic}", str(p.nr_lr), str(p.nr_pri_bits), p.arch,
                  "yes" if p.calibrated else "no", p.description)
    con = _console()
    con.print(t)
    for n, p in pfs.items():
        params = ", ".join(f"{k}={v.value:g}{'*' if v.fit else ''}" for k, v in p.parameters.items())
        con.print(f"{n}: {params}")
    con.print("* fitted by `worldswitch calibrate`; the others are documented priors (`why` in the profile files).")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def plugins(as_json: bool) -> None:
    """List every installed plugin, built-in and third-party: name, patch, kind,
    requirements, the hooks it implements, and its version."""
    from .plugin import discover, implemented_hooks

    found = discover()
    rows = []
    for name, info in found.items():
        m = info.meta
        rows.append({"name": name, "patch": m.patch, "title": m.title, "subsystem": m.subsystem, "kind": m.kind,
                     "requires": list(m.requires), "hooks": implemented_hooks(info.module),
                     "builtin": info.builtin, "version": m.version or info.dist_version,
                     "entry_point": info.entry_point, "force_note": m.force_note})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    t = Table(title="Installed worldswitch plugins")
    for col in ("patch", "name", "kind", "subsystem", "requires", "hooks", "version", "source"):
        t.add_column(col, no_wrap=col == "name", overflow="fold")
    for r in rows:
        t.add_row(str(r["patch"] or "-"), r["name"], r["kind"], r["subsystem"], ", ".join(r["requires"]) or "-",
                  ", ".join(r["hooks"]), r["version"], "built-in" if r["builtin"] else "third-party")
    _console().print(t)


@main.command()
@click.option("--measurements", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Measurement file (default: the study's vanilla figures, data/reference.toml).")
@click.option("--short", is_flag=True, help="Extrapolate counts from two short runs per cell (same counts, faster).")
@click.option("--write", is_flag=True, help="Write the fitted values into the profile files.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=os.cpu_count() or 1, show_default="CPU count")
@click.option("--json", "as_json", is_flag=True, help="Print the fit as JSON.")
@handle_errors
def calibrate(measurements: Path | None, short: bool, write: bool, jobs: int, as_json: bool) -> None:
    """Fit each profile's free parameters (fit = true) to the vanilla measurements by
    least squares per host, keeping the documented priors fixed, and print the fitted
    values and the residual of every cell. Reproducible: the same measurements give
    the same profiles."""
    from .calibrate import calibrate as fit
    from .calibrate import write_values
    from .platform import load_platforms
    from .study import load_reference, measure_cells

    reference = load_reference(measurements)
    pfs = load_platforms()
    names = [n for n in pfs if any(n in row for row in reference.values())]
    cells = measure_cells(list(reference), names, "none", short, jobs)
    fits = fit(pfs, cells, reference)
    if as_json:
        click.echo(json.dumps([{"host": f.host, "params": f.params,
                                "cells": [{"guest": g, "platform": p, "measured": m, "model": round(x, 2),
                                           "residual_pct": round(100 * (x - m) / m, 3)}
                                          for (g, p), (m, x) in f.residuals.items()]} for f in fits], indent=2))
    else:
        con = _console()
        for f in fits:
            con.print(f"[bold]host {f.host}[/bold]: " + ", ".join(f"{k} = {v:.4f}" for k, v in f.params.items()))
            for (g, p), (m, x) in f.residuals.items():
                con.print(f"  {g:<10} {p:<6} measured {m:>8.0f}  model {x:>10.2f}  residual {100 * (x - m) / m:+.3f} %")
    if write:
        for f in fits:
            for pf in pfs.values():
                if pf.host == f.host and pf.path is not None:
                    write_values(pf.path, f.params)
        if not as_json:
            click.echo("profiles updated")


if __name__ == "__main__":
    main()
