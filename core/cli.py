"""The ``worldswitch`` command line."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn

import click

from .errors import ProfileError, Terminated, TransparencyError, WorldswitchError

#: the study designs (worldswitch.designs.DESIGNS, spelled here so the CLI loads without it)
DESIGN_NAMES = ("one-at-a-time", "leave-one-out", "cumulative", "factorial", "random", "shapley")

EXIT_CODES = """Exit codes: 0 success, 1 internal error, 2 usage error, 3 bad guest image,
4 unknown plugin, plugin that failed to load (--strict-plugins) or impossible plugin
combination, 5 guest fault (unknown sysreg or MMIO access, WFI that can never wake),
6 exit, instruction or time budget exhausted, 7 a plugin raised or returned a wrong type
(the run is invalid), 8 bad profile or measurement file, 9 a plugin set changed what the
guest sees (its figures are invalid), 10 a round trip replayed from the cache differed
from its real run (--verify-cache; a bug: please report it), 130 interrupted (Ctrl-C), 141 the output's reader
went away (a closed pipe: nothing is printed), 143 terminated (SIGTERM)."""

#: -q: no progress, no notices (errors still print)
_quiet = False


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    con = Console(stderr=stderr, highlight=False)
    con.on_broken_pipe = _pipe_closed  # rich would exit 1, the code of an internal error here
    return con


def _dumps(data: Any) -> str:
    """JSON that strict parsers accept: a non-finite number is a bug, never output."""
    try:
        return json.dumps(data, indent=2, allow_nan=False)
    except ValueError:
        raise WorldswitchError("internal error: a result is not a finite number") from None


def _exit(code: int, message: str) -> NoReturn:
    click.echo(f"worldswitch: {message}", err=True)
    sys.exit(code)


def handle_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    """One line on stderr and the documented exit code, never a traceback (-v adds one
    for internal errors)."""
    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except WorldswitchError as e:
            _exit(e.exit_code, f"error: {e}")
        except Terminated:
            _exit(143, "terminated")
        except KeyboardInterrupt:
            _exit(130, "interrupted")
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            _pipe_closed()
        except Exception as e:  # noqa: BLE001 - a bug: say so in one line, the traceback with -v
            from .api import _logger

            if _logger.is_enabled_for(logging.DEBUG):
                traceback.print_exc()
            _exit(1, f"internal error: {type(e).__name__}: {e} (-v shows the traceback; please report it)")

    return wrapper


def _pipe_closed() -> NoReturn:
    """The reader of our output went away (`worldswitch results | head`): what it read stands,
    nothing to report. Exit 141 (128 + SIGPIPE) as a shell would say of a Unix tool. SIGPIPE
    itself stays ignored: the worker pools' own pipes must never kill the process. Stdout is
    pointed at /dev/null so that the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(141)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


class _Cli(click.Group):
    """Usage errors in one line too, and signals that end the process cleanly."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        global _quiet
        from .api import set_log_level

        _quiet = False  # -v / -q hold for one invocation (tests invoke many in one process)
        set_log_level(logging.WARNING)
        if threading.current_thread() is threading.main_thread():
            # a shell starts background jobs with SIGINT ignored; the user's Ctrl-C must still stop us
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, _on_sigterm)
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
            _exit(2, f"error: {e.format_message()}{hint}")
        except click.ClickException as e:
            _exit(e.exit_code, f"error: {e.format_message()}")
        except Terminated:
            _exit(143, "terminated")
        except (click.Abort, KeyboardInterrupt):
            _exit(130, "interrupted")
        try:
            sys.stdout.flush()  # what is still buffered: a closed pipe shows here, not in a command
        except BrokenPipeError:
            _pipe_closed()
        sys.exit(rv if isinstance(rv, int) else 0)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    global _quiet
    if not value:
        return
    from .api import set_log_level

    if param.name == "verbose":
        set_log_level(logging.DEBUG)
    else:
        _quiet = True
        set_log_level(logging.ERROR)


def _verbosity(f: Callable[..., Any]) -> Callable[..., Any]:
    """-v / -q, accepted before or after the subcommand."""
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_verbosity,
                     help="No progress bars or notices; errors only.")(f)
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbosity,
                        help="Log each run's start and end, tracebacks of internal errors (stderr).")(f)


def _set_cache(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    # through the environment, so that worker processes (-j, the study runner) follow it
    if param.name == "no_cache" and value:
        os.environ["WORLDSWITCH_CACHE"] = "0"
    elif param.name == "verify_cache" and value is not None:
        os.environ["WORLDSWITCH_VERIFY_CACHE"] = str(value)


def _cache_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--no-cache / --verify-cache K, accepted before or after the subcommand."""
    f = click.option("--verify-cache", type=click.IntRange(1), default=None, expose_value=False, metavar="K",
                     callback=_set_cache, help="Re-run every K-th replayed round trip for real and stop (exit 10) "
                     "if it differs from the cache's record [env: WORLDSWITCH_VERIFY_CACHE].")(f)
    return click.option("--no-cache", is_flag=True, expose_value=False, callback=_set_cache,
                        help="Run every round trip for real instead of replaying memoised ones (same results, "
                        "slower) [env: WORLDSWITCH_CACHE=0].")(f)


class Seconds(click.ParamType):
    """A time budget: a finite number of seconds above zero."""

    name = "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(v) or v <= 0:
            self.fail(f"{value} is not a positive, finite number of seconds", param, ctx)
        return v


class Address(click.ParamType):
    name = "ADDRESS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(value, 0)
        except ValueError:
            self.fail(f"{value!r} is not an address (e.g. 0x3fbf0000)", param, ctx)


@click.group(cls=_Cli, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="worldswitch")
@_verbosity
@_cache_options
@click.option("--profiles", type=click.Path(file_okay=False, path_type=Path), envvar="WORLDSWITCH_PROFILES",
              default=None, help="Also read platform profiles (*.toml) from DIR, e.g. what `calibrate --write DIR` "
              "wrote [env: WORLDSWITCH_PROFILES].")
@click.option("--replace", is_flag=True, help="Let profiles from --profiles replace built-in ones of the same name.")
@click.option("--strict-plugins", is_flag=True, help="A plugin that fails to load is an error (exit 4), not a "
              "warning.")
@click.option("-p", "--plugin", "plugin_args", multiple=True, metavar="MODULE | no:NAME",
              help="Load a plugin module that no package declares (MODULE or MODULE:CLASS, importable from "
                   "the current path), or leave plugin NAME out (no:NAME). Repeatable.")
@click.option("--disable-plugin-autoload", is_flag=True,
              help="Load only the built-in plugins and those given with -p (also: "
                   "WORLDSWITCH_DISABLE_PLUGIN_AUTOLOAD=1).")
def main(profiles: Path | None, replace: bool, strict_plugins: bool, plugin_args: tuple[str, ...],
         disable_plugin_autoload: bool) -> None:
    """Simulate the KVM/ARM world switch (Linux v4.5-rc4) and measure what each of the
    17 entry/exit optimizations of the 2016 series buys, per platform and per exit.

    \b
    Quick start:
      worldswitch table                     # vanilla model vs the study's figures
      worldswitch table --patches series    # vanilla vs all 17 patches: predictions
      worldswitch run null_hvc -p A --patches 7,6
      worldswitch plugins                   # what can be switched on
    """
    from .platform import use_profile_dir
    from .plugin import configure, set_strict

    set_strict(strict_plugins)
    if "" not in sys.path:
        sys.path.insert(0, "")  # -p MODULE: importable from the current directory, as with python -m
    configure(extra=tuple(p for p in plugin_args if not p.startswith("no:")),
              blocked=tuple(p[3:] for p in plugin_args if p.startswith("no:")),
              autoload=not disable_plugin_autoload)
    try:
        use_profile_dir(profiles, replace)
    except WorldswitchError as e:
        _exit(e.exit_code, f"error: {e}")


def _selection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--force", is_flag=True, help="Run even if a plugin's requirements are missing "
                     "(to watch the failure mode; the result is marked FORCED).")(f)
    f = click.option("--without", multiple=True, metavar="NAME", help="Leave this plugin out (repeatable).")(f)
    f = click.option("--patches", default="none", show_default=True, metavar="SEL",
                     help="Plugins to enable, comma-separated: presets all | series (the 17) | none | vanilla, "
                          "patch numbers and ranges (1,7-11), plugin names; e.g. series,my-opt.")(f)
    return f


class _Progress:
    """A rich bar on a terminal; elsewhere one notice line, so redirected runs are not
    silent for minutes. Nothing with -q."""

    def __init__(self, total: int, what: str, workers: int = 1) -> None:
        self.total, self.what, self.workers = total, what, workers
        self.bar: Any = None

    def __enter__(self) -> Callable[[Any], None]:
        con = _console(stderr=True)
        if _quiet:
            return lambda r: None
        if not con.is_terminal:
            on = f" on {self.workers} workers" if self.workers > 1 else ""
            click.echo(f"worldswitch: {self.what}: {self.total} guest runs{on}...", err=True)
            return lambda r: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        # runs done of all, the rate, time so far and the ETA: what a long study needs to show
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                            TextColumn("[progress.data.speed]{task.fields[rate]}"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=con, transient=True)
        self.bar.__enter__()
        task = self.bar.add_task(self.what, total=self.total, rate="")

        def tick(_: Any) -> None:
            self.bar.advance(task)
            speed = self.bar.tasks[0].speed
            self.bar.update(task, rate=f"{speed:.2f} runs/s" if speed else "")

        return tick

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _jobs_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-j", "--jobs", type=click.IntRange(1), default=os.cpu_count() or 1,
                        show_default="CPU count", help="Worker processes (never more than there are runs).")(f)


@main.command()
@click.argument("guest")
@click.option("-p", "--platform", default="A", show_default=True, help="Platform profile (`worldswitch platforms`).")
@_selection_options
@click.option("--max-exits", type=click.IntRange(1), default=None, help="Exit budget: stop with code 6 past it.")
@click.option("--max-instructions", type=click.IntRange(1), default=None,
              help="Instruction budget: stop with code 6 past it.")
@click.option("--timeout", type=Seconds(), default=600.0, show_default=True,
              help="Time budget in host seconds, image preparation included; the result never depends on it.")
@click.option("--redist-base", type=Address(), default="0x3fbf0000", show_default=True,
              help="GICv3 redistributor base address (kvmtool: 0x3fff0000 - nrcpus * 0x20000).")
@click.option("-m", "--mem", "mem_mb", type=click.IntRange(1, 3072), default=64, show_default=True, metavar="MB",
              help="Guest RAM in MiB, at 0x80000000 (lkvm's --mem).")
@click.option("-c", "--cpus", type=click.IntRange(1, 512), default=1, show_default=True,
              help="Number of vCPUs (lkvm's --cpus; only 1 is modelled so far).")
@click.option("--params", default="", metavar="ARGS",
              help="Kernel command line, given to the guest as /chosen/bootargs (lkvm's --params).")
@click.option("--irqchip", type=click.Choice(["gicv2", "gicv3"]), default=None,
              help="The GIC the guest sees (lkvm's --irqchip); picks the platform's profile for that GIC on the "
              "same host (C-v2 or C-v3 on host C). Default: the platform's.")
@click.option("--strict-mmio", is_flag=True,
              help="An MMIO access no device claims is an error (exit 5) instead of a warning; lkvm ignores it.")
@click.option("--check-transparency", is_flag=True,
              help="Also run vanilla and fail (code 9) if the guest saw anything different.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              metavar="FILE", help="Write one JSON line per event, named like the kernel's trace events (kvm_exit, "
              "kvm_entry, kvm_sys_access, kvm_mmio, kvm_hvc_arm64, kvm_wfx_arm64), with the trapping instruction.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_verbosity
@_cache_options
@handle_errors
def run(guest: str, platform: str, patches: str, without: tuple[str, ...], force: bool, max_exits: int | None,
        max_instructions: int | None, timeout: float, redist_base: int, mem_mb: int, cpus: int, params: str,
        irqchip: str | None, strict_mmio: bool, check_transparency: bool, trace_path: Path | None,
        as_json: bool) -> None:
    """Run GUEST (a built-in name such as null_hvc, self_sgi, sysreg, null_hvc_2p20,
    self_sgi-1024, or a path to a flat binary for the platform's architecture) and print a perf-stat-like summary:
    cycles:kh, exits observed (the iterations), cycles per iteration, exits by reason and
    hardware accesses by class.

    \b
    The machine is kvmtool's: the image at RAM + 0x80000, x0 = a device tree, an 8250 UART
    at 0x1000000 whose output is printed as it comes (and kept in --json's console), PSCI
    over hvc. Options that lkvm has keep lkvm's names.

    \b
    Examples:
      worldswitch run self_sgi -p C-v3 --patches 7,13-16
      worldswitch run my_guest.bin --timeout 5 --json
      worldswitch run sysreg-1024 --patches series --check-transparency
      worldswitch run selftest.flat --params "setup smp=1 mem=256" --mem 256 -p C-v2 --irqchip gicv3
    """
    from .api import run_guest, visible_difference
    from .cost import breakdown
    from .events import new_counters
    from .machine import VmConfig
    from .platform import get_platform, platform_for_irqchip

    pf = get_platform(platform)
    if irqchip is not None:
        pf = platform_for_irqchip(pf, int(irqchip[-1]))
    con_err = _console(stderr=True)
    console = None if as_json else _stream_console
    vm = VmConfig(mem_mb=mem_mb, cpus=cpus, params=params, strict_mmio=strict_mmio, console=console)
    budgets = {"max_exits": max_exits, "timeout": timeout, "redist_base": redist_base,
               "max_instructions": max_instructions or 0}
    with contextlib.ExitStack() as stack:
        observers: tuple[Any, ...] = ()
        if trace_path is not None:
            from .trace import Tracer

            try:
                observers = (Tracer(stack.enter_context(trace_path.open("w"))),)
            except OSError as e:
                raise click.BadParameter(f"cannot write {trace_path}: {e.strerror}", param_hint="--trace") from None
        progress = None
        expected = _builtin_iterations(guest)
        if con_err.is_terminal and not _quiet and expected:
            # a built-in guest prints nothing: a bar of its exits cannot garble a console
            progress = _run_bar(stack, con_err, f"{guest} on {pf.name}", expected)
        elif con_err.is_terminal and not _quiet and as_json:  # a spinner would garble the console text
            stack.enter_context(con_err.status(f"running {guest} on {pf.name}..."))
        r = run_guest(guest, pf, patches=patches, without=without, force=force, observers=observers, vm=vm,
                      progress=progress, **budgets)
        problem = None
        if check_transparency:
            quiet_vm = replace(vm, console=None)
            base = run_guest(guest, pf, vm=quiet_vm, **budgets)
            mine = r
            if "clock_used" in r.guest_visible or "clock_used" in base.guest_visible:
                # the guest looked at the clock, which shows the optimization by design: compare
                # both runs on a clock no plugin can change
                on_guest_clock = replace(quiet_vm, clock="guest")
                base = run_guest(guest, pf, vm=on_guest_clock, **budgets)
                mine = run_guest(guest, pf, patches=patches, without=without, force=force, vm=on_guest_clock,
                                 **budgets)
            problem = visible_difference(base.guest_visible, mine.guest_visible)
    if as_json:
        out = r.to_json()
        if check_transparency:
            out["transparency"] = {"checked": True, "difference": problem}
        click.echo(_dumps(out))
    else:
        _print_run(r, guest, pf, breakdown, new_counters)
    if problem:
        raise TransparencyError(f"--patches {patches} changed what the guest sees: {problem}; "
                                "its figures are not a saving")


def _builtin_iterations(guest: str) -> int:
    """The loop count of a built-in guest (its exits, give or take set-up), else 0."""
    from worldswitch import guests

    if guest in guests.GUESTS:
        return guests.GUESTS[guest].iterations
    stem, _, n = guest.rpartition("-")
    return int(n) if stem in guests.GUESTS and n.isdigit() else 0


def _run_bar(stack: contextlib.ExitStack, con: Any, what: str, expected: int) -> Callable[[int], None]:
    """A transient bar of a single run's exits against the guest's loop count."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = stack.enter_context(Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("exits"),
                                       TimeElapsedColumn(), console=con, transient=True))
    task = bar.add_task(what, total=expected)
    return lambda exits: bar.update(task, completed=min(exits, expected))


def _stream_console(data: bytes) -> None:
    """The guest's UART output, to stdout as it comes (lkvm's terminal)."""
    sys.stdout.buffer.write(data)
    if data == b"\n":
        sys.stdout.buffer.flush()


def _print_run(r: Any, guest: str, pf: Any, breakdown: Any, new_counters: Any) -> None:
    from .events import Ev

    counts = new_counters()
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
    if r.spin_skipped:
        con.print(f"\n  {r.spin_skipped:>18,}      guest instructions of spin loops skipped, not emulated")
    con.print(f"\n  {r.wall_seconds:>18.3f}      seconds of simulation (host time, not part of the result)\n")


def _pct(val: float) -> str:
    """A change in percent; a rounding residue is no sign ("-0.00 %" reads as a saving)."""
    return f"{val + 0.0 if round(val, 2) else 0.0:+.2f} %"


def _invalid(vanilla: Any, cell: Any, selection: str) -> str | None:
    """Why a plugin set's cell is invalid (it changed what the guest sees), or None."""
    from .study import transparency_problem

    problem = transparency_problem(vanilla, cell)
    if problem is None:
        return None
    return f"--patches {selection} is not transparent on {cell.platform} {cell.guest}: {problem}"


def _calibration_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--measurements", "measurements", default=None, metavar="FILE | none",
                     help="Board measurements to calibrate on besides the vanilla reference: [[measurement]] rows "
                          "of guest, platform, plugins, cycles_per_iteration and an optional spread (default: the "
                          "shipped example, the study's A and C-v3 series figures; none: vanilla alone).")(f)
    f = click.option("--reference", "reference", default=None, metavar="FILE | none",
                     help="Vanilla figures ([cells.GUEST] PLATFORM = cycles; default: the study's, "
                          "data/reference.toml).")(f)
    return f


def _calibration_rows(reference: str | None, measurements: str | None) -> tuple[dict[str, dict[str, float]], list]:
    """The vanilla reference (for the error column) and every row to calibrate on."""
    from .calibrate import targets
    from .measurements import EXAMPLE, load_measurements, load_reference

    def path(value: str | None, option: str) -> Path | None:
        if value is None or value == "none":
            return None
        if not Path(value).is_file():
            raise click.BadParameter(f"{value!r} is not a file (or 'none')", param_hint=option)
        return Path(value)

    ref_path, meas_path = path(reference, "--reference"), path(measurements, "--measurements")
    ref = {} if reference == "none" else load_reference(ref_path)
    board = [] if measurements == "none" else load_measurements(meas_path)
    rows = targets(ref, board, str(ref_path or "data/reference.toml"), str(meas_path or EXAMPLE))
    if not rows:
        raise click.BadParameter("nothing to calibrate on", param_hint="--reference/--measurements")
    return ref, rows


def _rows_for(rows: list, profiles: dict[str, Any], platforms: list[str]) -> list:
    """The calibration rows that bear on ``platforms``: those of the same hosts (hosts share
    nothing, so the others cannot move a figure shown)."""
    hosts = {profiles[p].host for p in platforms}
    return [t for t in rows if profiles[t.platform].host in hosts]


def _interval(bounds: tuple[float, float], scale: float = 1.0, digits: int = 1) -> list[float]:
    return [round(scale * bounds[0], digits) + 0.0, round(scale * bounds[1], digits) + 0.0]


@main.command()
@click.option("--patches", default="none", show_default=True, metavar="SEL",
              help="Also run with these plugins and show vanilla, patched and the change, each with its 90 % "
                   "interval (series = all 17: the model's predictions).")
@click.option("--platforms", "platform_list", default=None,
              help="Comma-separated platforms (default: all in the reference).")
@click.option("--short", is_flag=True, help="Extrapolate from two short runs per cell instead of full length "
              "(same figures for these guests, seconds instead of minutes).")
@_jobs_option
@_calibration_options
@click.option("--prior", "priors", multiple=True, metavar="[PLATFORM:]NAME=VALUE",
              help="Hold a prior parameter at exactly VALUE cycles (no range), refit, then price: how much does "
                   "a prediction depend on it? Repeatable.")
@click.option("--sources", is_flag=True, help="Also name the priors that make up most of each change's interval.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@_verbosity
@_cache_options
@handle_errors
def table(patches: str, platform_list: str | None, short: bool, jobs: int, reference: str | None,
          measurements: str | None, priors: tuple[str, ...], sources: bool, as_json: bool) -> None:
    """The reference table: per-iteration cycles for Null HVC, Self SGI and SysReg on
    each platform, beside the study's vanilla figures and the error per cell. With
    --patches, the patched prediction and its change against vanilla too, each with a
    90 % interval: the priors' ranges propagated through a fit to the calibration
    measurements (vanilla, plus the shipped A/C-v3 series figures unless --measurements
    says otherwise). Every patched run is checked against vanilla on what the guest sees:
    a plugin set that changes it gets no figure, a message, and exit code 9.

    \b
    Examples:
      worldswitch table --patches series
      worldswitch table --patches series --measurements none    # blind: vanilla alone
      worldswitch table --patches 7-11 --platforms A,B --sources
      worldswitch table --short --patches series --prior gic_mmio_read=150"""
    from .calibrate import calibrate, configurations, set_priors
    from .platform import load_platforms
    from .plugin import discover, parse_selection
    from .study import TABLE_GUESTS, measure_configs, platforms_in

    ref, rows = _calibration_rows(reference, measurements)
    platforms = _platform_names(platform_list) if platform_list else platforms_in(ref)
    if not platforms:
        raise click.BadParameter("no platform to show", param_hint="--platforms")
    guests = [g for g in TABLE_GUESTS if g in ref] or list(TABLE_GUESTS)
    profiles = load_platforms()
    if priors:
        profiles = set_priors(profiles, list(priors))
    selection = ",".join(parse_selection(patches, discover())) or "none"  # fails early on a bad selection
    patched = selection != "none"
    # Fitting needs the runs behind its rows; without --patches, --prior or a calibration
    # option the built-in profiles already hold that fit (tests/test_calibration.py checks it)
    fitting = patched or bool(priors) or reference is not None or measurements is not None
    fit_rows = _rows_for(rows, profiles, platforms)
    shown = [(sel, g, p) for sel in (["none", selection] if patched else ["none"]) for g in guests for p in platforms]
    configs = list(dict.fromkeys(shown + (configurations(fit_rows) if fitting else [])))
    total = len(configs) * (2 if short else 1)
    with _Progress(total, "table", min(jobs, total)) as tick:
        cells = measure_configs(configs, short, jobs, tick)
    cal = calibrate(profiles, cells, fit_rows) if fitting and fit_rows else None
    out, problems = [], []
    for g in guests:
        for p in platforms:
            ref_v = ref.get(g, {}).get(p)
            vcell = cells[("none", g, p)]
            model = cal.model if cal is not None and p in cal.model.platforms else None
            vrow = model.row(vcell.counts, profiles[p]) if model else None
            v = cal.posterior.predict(vrow)[0] if model else _price(vcell, profiles[p])
            row: dict[str, Any] = {"guest": g, "platform": p, "reference": ref_v, "vanilla": round(v, 1),
                                   "vanilla_90": _interval(cal.posterior.interval(vrow)) if model else None,
                                   "error_pct": round(100 * (v - ref_v) / ref_v, 2) if ref_v else None}
            if patched:
                pcell = cells[(selection, g, p)]
                problem = _invalid(vcell, pcell, patches)
                if problem:
                    problems.append(problem)
                    row.update(patched=None, change_pct=None, invalid=problem)
                elif model:
                    prow = model.row(pcell.counts, profiles[p])
                    a = cal.posterior.predict(prow)[0]
                    shares = cal.posterior.shares(prow.a / v - (a / v**2) * vrow.a)
                    row.update(patched=round(a, 1), patched_90=_interval(cal.posterior.interval(prow)),
                               change_pct=round(100 * (a / v - 1), 2) + 0.0,
                               change_90=_interval(cal.posterior.change_interval(vrow, prow), 100, 2),
                               interval_sources={k: round(x, 3) for k, x in
                                                 sorted(shares.items(), key=lambda kv: -kv[1]) if x >= 0.01})
                else:  # a platform no measurement calibrates: its profile's values, no interval
                    a = _price(pcell, profiles[p])
                    row.update(patched=round(a, 1), patched_90=None, change_pct=round(100 * (a - v) / v, 2) + 0.0,
                               change_90=None)
            out.append(row)
    calibrated_on = [t.origin for t in cal.targets] if cal is not None else None
    if as_json:
        click.echo(_dumps({"patches": patches, "short": short, "priors": list(priors), "calibrated_on": calibrated_on,
                           "rows": out}))
    else:
        _print_table(out, guests, platforms, patched, patches, sources)
        if cal is not None:
            boards = len([t for t in cal.targets if t.plugins])
            click.echo(f"Calibrated on {len(cal.targets) - boards} vanilla figure(s) and {boards} board "
                       "measurement(s). [low, high]: the 90 % interval, from the priors' ranges.")
    _fail_if_invalid(problems)


def _price(cell: Any, platform: Any) -> float:
    from .study import price

    return price(cell, platform)


def _fail_if_invalid(problems: list[str]) -> None:
    """After the output: one line per plugin set that changed the guest, exit code 9."""
    if problems:
        for msg in problems[:-1]:
            click.echo(f"worldswitch: {msg}", err=True)
        raise TransparencyError(f"{problems[-1]}; invalid cells get no figure")


def _platform_names(text: str) -> list[str]:
    from .platform import load_platforms

    names = [n.strip() for n in text.split(",") if n.strip()]
    profiles = load_platforms()
    for p in names:
        if p not in profiles:
            raise ProfileError(f"unknown platform {p!r}; known: {', '.join(profiles)}")
    if not names:
        raise click.BadParameter("no platform named", param_hint="--platforms")
    return names


def _print_table(rows: list[dict[str, Any]], guests: list[str], platforms: list[str], patched: bool,
                 patches: str, sources: bool = False) -> None:
    from rich.table import Table

    from .study import TABLE_GUESTS

    by = {(r["guest"], r["platform"]): r for r in rows}
    con = _console()
    # the title goes on its own line: a rich title wraps to the table's width and loses words
    con.print("Cycles per iteration: model (vanilla v4.5-rc4) vs the study" if not patched else
              f"Cycles per iteration: vanilla vs --patches {patches} (predicted)")
    t = Table()
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
                row = by[(g, p)]
                val = row.get(key)
                if row.get("invalid") and key in ("patched", "change_pct"):
                    cells.append("INVALID")
                elif val is None:
                    cells.append("-")
                elif key == "change_pct":
                    iv = row.get("change_90")
                    cells.append(_pct(val) + (f"\n[{iv[0]:+.1f}, {iv[1]:+.1f}]" if iv else ""))
                elif key.endswith("pct"):
                    cells.append(_pct(val))
                elif key == "patched" and row.get("patched_90"):
                    iv = row["patched_90"]
                    cells.append(f"{val:,.0f}\n[{iv[0]:,.0f}, {iv[1]:,.0f}]")
                else:
                    cells.append(f"{val:,.0f}")
            t.add_row(f"{TABLE_GUESTS[g]} {label}", *cells)
        if patched and sources:
            t.add_row(f"{TABLE_GUESTS[g]} interval from", *(
                "\n".join(f"{k.split(':')[-1]} {100 * x:.0f}%" for k, x in list(by[(g, p)].get("interval_sources",
                                                                                         {}).items())[:3]) or "-"
                for p in platforms))
        t.add_section()
    con.print(t)


@main.command()
@click.argument("design", required=False, type=click.Choice(DESIGN_NAMES))
@click.argument("n", type=click.IntRange(1), required=False)
@click.option("--patches", default="series", show_default=True, metavar="SEL", help="The set to ablate.")
@click.option("--guests", "guest_list", default="null_hvc,self_sgi,sysreg", show_default=True)
@click.option("--platforms", "platform_list", default="A,B,C-v2,C-v3", show_default=True)
@click.option("--full", is_flag=True, help="Full-length runs instead of the (identical) short-run extrapolation.")
@_jobs_option
@_calibration_options
@click.option("--seed", type=int, default=None, help="With DESIGN random: the seed of the draw.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default="worldswitch-results.sqlite", show_default=True, help="With DESIGN: the results database.")
@click.option("--name", default=None, help="With DESIGN: the study's name in the database.")
@click.option("--dask", default=None, metavar="ADDRESS", help="With DESIGN: run on this Dask scheduler.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_verbosity
@_cache_options
@handle_errors
@click.pass_context
def ablate(ctx: click.Context, design: str | None, n: int | None, patches: str, guest_list: str, platform_list: str,
           full: bool, jobs: int, reference: str | None, measurements: str | None, seed: int | None, db_path: Path,
           name: str | None, dask: str | None, as_json: bool) -> None:
    """Attribute the savings of a set of plugins, per platform and guest. For each plugin:
    what it saves alone (with the plugins it requires, against vanilla), and what the set
    loses without it (without it and the plugins that require it, against the whole set),
    each with its 90 % interval from the calibrated costs (see `table`). The two differ
    where patches interact, e.g. 10 only saves on top of 7. Every run is checked against
    vanilla on what the guest sees (exit code 9 if a set changes it).

    With a DESIGN (one-at-a-time, leave-one-out, cumulative, factorial, random N, shapley N), this
    is `worldswitch study DESIGN --plugins SEL`: a designed study stored in --db.

    \b
    Examples:
      worldswitch ablate --platforms A,C-v3 --guests self_sgi
      worldswitch ablate one-at-a-time --platforms A,C-v3 && worldswitch report --out report/
    """
    if design is not None:
        from .studycli import study

        ctx.invoke(study, design=design, n=n, seed=seed, selection=patches, guest_list=guest_list,
                   platform_list=platform_list, full=full, db_path=db_path, name=name, dask=dask, jobs=jobs,
                   as_json=as_json)
        return
    from worldswitch import guests as builtin

    from .calibrate import calibrate, configurations
    from .platform import load_platforms
    from .plugin import discover, parse_selection
    from .study import ablation_sets, measure_configs

    found = discover()
    selected = parse_selection(patches, found)
    if not selected:
        raise click.BadParameter("nothing to ablate", param_hint="--patches")
    guests = [g.strip() for g in guest_list.split(",")]
    for g in guests:
        if g not in builtin.GUESTS:
            raise click.BadParameter(f"unknown guest {g!r}; known: {', '.join(builtin.GUESTS)}",
                                     param_hint="--guests")
    platforms_ = _platform_names(platform_list)
    _, rows_ = _calibration_rows(reference, measurements)
    profiles = load_platforms()
    fit_rows = _rows_for(rows_, profiles, platforms_)
    sets = ablation_sets(selected, found)
    selections = sorted({"none", ",".join(selected)} | {x for pair in sets.values() for x in pair})
    configs = list(dict.fromkeys([(s, g, p) for s in selections for g in guests for p in platforms_]
                                 + configurations(fit_rows)))
    total = len(configs) * (1 if full else 2)
    with _Progress(total, "ablation", min(jobs, total)) as tick:
        cells = measure_configs(configs, not full, jobs, tick)
    cal = calibrate(profiles, cells, fit_rows) if fit_rows else None
    invalid = {key: msg for key in cells if key[0] != "none" and key[1] in guests and key[2] in platforms_
               if (msg := _invalid(cells[("none",) + key[1:]], cells[key], key[0]))}
    problems = sorted(invalid.values())
    rows = []
    whole = ",".join(selected)

    def saving(before: tuple[str, str, str], after: tuple[str, str, str]) -> tuple[float, list[float] | None]:
        """Cycles saved from ``before`` to ``after``, priced by the fit where it covers the platform."""
        pf = profiles[before[2]]
        if cal is None or before[2] not in cal.model.platforms:
            return _price(cells[before], pf) - _price(cells[after], pf), None
        diff = cal.model.row(cells[before].counts, pf) - cal.model.row(cells[after].counts, pf)
        return cal.posterior.predict(diff)[0], _interval(cal.posterior.interval(diff))

    for p in platforms_:
        for g in guests:
            total_saved, total_90 = saving(("none", g, p), (whole, g, p))
            for name in selected:
                alone, rest = sets[name]
                bad = [k for k in ((alone, g, p), (rest, g, p), (whole, g, p)) if k in invalid]
                a, a90 = saving(("none", g, p), (alone, g, p))
                m, m90 = saving((rest, g, p), (whole, g, p))
                rows.append({"platform": p, "guest": g, "plugin": name, "patch": found[name].meta.patch,
                             "alone_saves": None if bad else round(a, 1), "alone_90": None if bad else a90,
                             "marginal_saves": None if bad else round(m, 1), "marginal_90": None if bad else m90,
                             "all_save": None if bad else round(total_saved, 1), "all_90": None if bad else total_90,
                             "invalid": bool(bad)})
    if as_json:
        click.echo(_dumps(rows))
    else:
        _print_ablation(rows, selected, guests, platforms_, found)
    _fail_if_invalid(problems)


def _print_ablation(rows: list[dict[str, Any]], selected: list[str], guests: list[str], platforms_: list[str],
                    found: dict[str, Any]) -> None:
    from rich.table import Table

    def saved(v: float | None, iv: list[float] | None) -> str:
        if v is None:
            return "INVALID"
        return f"{v:,.0f}" + (f" [{iv[0]:,.0f}, {iv[1]:,.0f}]" if iv and iv[0] != iv[1] else "")

    con = _console()
    for p in platforms_:
        con.print(f"Platform {p}: cycles saved per iteration, alone / marginal, [90 % interval]")
        t = Table()
        t.add_column("patch")
        t.add_column("plugin", no_wrap=True)
        for g in guests:
            t.add_column(g, justify="right")
        by = {(r["guest"], r["plugin"]): r for r in rows if r["platform"] == p}
        for name in selected:
            t.add_row(str(found[name].meta.patch or "-"), name,
                      *(f"{saved(by[g, name]['alone_saves'], by[g, name]['alone_90'])}\n"
                        f"{saved(by[g, name]['marginal_saves'], by[g, name]['marginal_90'])}" for g in guests))
        t.add_section()
        t.add_row("", "all together", *(saved(by[g, selected[0]]["all_save"], by[g, selected[0]]["all_90"])
                                        for g in guests))
        con.print(t)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_verbosity
@handle_errors
def platforms(as_json: bool) -> None:
    """List the platform profiles: host and guest GIC, list registers, priority bits and
    the unit-cost parameters (fitted or prior)."""
    from .platform import load_platforms

    pfs = load_platforms()
    if as_json:
        out = {n: {"description": p.description, "host": p.host, "host_gic": p.host_gic, "guest_gic": p.guest_gic,
                   "nr_lr": p.nr_lr, "nr_pri_bits": p.nr_pri_bits, "arch": p.arch, "calibrated": p.calibrated,
                   "parameters": {k: {"value": v.value, "fit": v.fit, "prior": None if v.fit or v.range is None else
                                      v.central, "range": list(v.range) if v.range else None, "source": v.source,
                                      "why": v.why} for k, v in p.parameters.items()}}
               for n, p in pfs.items()}
        click.echo(_dumps(out))
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
        params = ", ".join(f"{k}={v.value:.4g}{'*' if v.fit else '' if v.range else ' (fixed)'}"
                           for k, v in p.parameters.items())
        con.print(f"{n}: {params}")
    con.print("* no prior: set by the measurements alone. The others are priors with a range and a source "
              "(`--json`, or the profile files), moved by `worldswitch calibrate` as far as the measurements "
              "inform them; (fixed): no range, held at its value.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_verbosity
@handle_errors
def plugins(as_json: bool) -> None:
    """List every installed plugin, built-in and third-party: name, patch, kind,
    requirements, the hooks it implements, whether it can change a count at all
    (a rename or a refactor cannot), and its version."""
    from .plugin import discover, implemented_hooks

    found = discover()
    rows = []
    for name, info in found.items():
        m = info.meta
        rows.append({"name": name, "patch": m.patch, "title": m.title, "subsystem": m.subsystem, "kind": m.kind,
                     "requires": list(m.requires), "hooks": implemented_hooks(info.module),
                     "countable": m.countable,
                     "builtin": info.builtin, "version": m.version or info.dist_version,
                     "entry_point": info.entry_point, "force_note": m.force_note})
    if as_json:
        click.echo(_dumps(rows))
        return
    from rich.table import Table

    t = Table(title="Installed worldswitch plugins")
    for col in ("patch", "name", "kind", "subsystem", "requires", "hooks", "version", "source"):
        t.add_column(col, no_wrap=col == "name", overflow="fold")
    for r in rows:
        t.add_row(str(r["patch"] or "-"), r["name"], r["kind"] + ("" if r["countable"] else " (no count changes)"),
                  r["subsystem"], ", ".join(r["requires"]) or "-", ", ".join(r["hooks"]) or "-", r["version"],
                  "built-in" if r["builtin"] else "third-party")
    _console().print(t)


@main.command()
@_verbosity
@handle_errors
def hooks() -> None:
    """Print the hook reference for plugin authors (Markdown, as docs/hooks.md): every
    hook with its signature, when it fires, what its answer means, how several answers
    combine, an example, and the built-in plugins that implement it."""
    from .hookdoc import render

    click.echo(render(), nl=False)


@main.command()
@_calibration_options
@click.option("--short", is_flag=True, help="Extrapolate counts from two short runs per cell (same counts, faster).")
@click.option("--write", "write_dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Write the fitted profiles into DIR (never into the installed package); use them with "
                   "`worldswitch --profiles DIR --replace ...`.")
@_jobs_option
@click.option("--json", "as_json", is_flag=True, help="Print the fit as JSON.")
@_verbosity
@_cache_options
@handle_errors
def calibrate(reference: str | None, measurements: str | None, short: bool, write_dir: Path | None, jobs: int,
              as_json: bool) -> None:
    """Fit the profiles to measurements: the study's vanilla figures plus board
    measurements of any plugin sets (default: the shipped A/C-v3 series figures). All
    parameters are fitted jointly by weighted least squares with the priors' ranges as
    their weight (C-v2 and C-v3, one host, share their costs), every cost held >= 0.
    Prints each parameter with its uncertainty and what the data did to its prior
    (fitted, informed, overrode, at zero, prior), the residual of every row, and a
    leave-one-out cross-validation: each row
    predicted from all the others. Reproducible: the same measurements give the same
    profiles, and nothing is written without --write.

    \b
    Examples:
      worldswitch calibrate --short
      worldswitch calibrate --short --measurements my-board.toml --write my-profiles/
      worldswitch --profiles my-profiles --replace table --short --patches series"""
    from .calibrate import calibrate as fit
    from .calibrate import check_out_dir, configurations, host_fits, write_profiles
    from .platform import load_platforms
    from .study import measure_configs

    _, rows = _calibration_rows(reference, measurements)
    if write_dir is not None:
        check_out_dir(write_dir)  # before minutes of runs, not after
    pfs = load_platforms()
    configs = configurations(rows)
    with _Progress(len(configs) * (2 if short else 1), "calibration", jobs) as tick:
        cells = measure_configs(configs, short, jobs, tick)
    cal = fit(pfs, cells, rows)
    written = write_profiles(host_fits(cal), pfs, write_dir) if write_dir is not None else []
    loo = cal.leave_one_out()
    data = {
        "parameters": [{**v, "value": round(v["value"], 4), "sd": round(v["sd"], 4)} for v in cal.verdicts()],
        "rows": [{"guest": t.guest, "platform": t.platform, "plugins": t.selection,
                  "origin": t.origin, "measured": t.cycles, "model": round(m, 2), "model_sd": round(sd, 2),
                  "residual_pct": round(100 * (m - t.cycles) / t.cycles, 3),
                  "loo_model": None if lm is None else round(lm, 2),
                  "loo_error_pct": None if lm is None else round(100 * (lm - t.cycles) / t.cycles, 3)}
                 for (t, m, sd), (_, lm, _) in zip(cal.residuals(), loo)],
        "written": [str(p) for p in written],
    }
    errors = [r["loo_error_pct"] for r in data["rows"] if r["loo_error_pct"] is not None]
    data["loo_rms_pct"] = round(math.sqrt(sum(e * e for e in errors) / len(errors)), 3) if errors else None
    if as_json:
        click.echo(_dumps(data))
        return
    _print_calibration(data)


def _print_calibration(data: dict[str, Any]) -> None:
    from rich.table import Table

    con = _console()
    t = Table(title="Parameters (cycles): prior and range, fit ± 1 sd, what the data did")
    for col in ("host", "parameter", "prior [90 % range]", "fit ± sd", "data"):
        t.add_column(col, justify="right" if col in ("prior [90 % range]", "fit ± sd") else "left")
    for v in data["parameters"]:
        prior = "-" if v["prior"] is None else f"{v['prior']:g} [{v['range'][0]:g}, {v['range'][1]:g}]"
        t.add_row(v["host"], v["name"], prior, f"{v['value']:.4g} ± {v['sd']:.2g}", v["verdict"])
    con.print(t)
    t = Table(title="Rows: measured, fitted, and predicted from the other rows (leave-one-out)")
    for col in ("guest", "platform", "plugins", "measured", "fit", "residual", "left out", "its error"):
        t.add_column(col, justify="left" if col in ("guest", "platform", "plugins") else "right")
    for r in data["rows"]:
        lo = "not identified" if r["loo_model"] is None else f"{r['loo_model']:,.0f}"
        t.add_row(r["guest"], r["platform"], r["plugins"], f"{r['measured']:,.0f}", f"{r['model']:,.0f}",
                  f"{r['residual_pct']:+.2f} %", lo,
                  "-" if r["loo_error_pct"] is None else f"{r['loo_error_pct']:+.2f} %")
    con.print(t)
    if data["loo_rms_pct"] is not None:
        con.print(f"Leave-one-out RMS error: {data['loo_rms_pct']:.2f} % over the rows whose fit survives leaving "
                  "them out.")
    for path in data["written"]:
        con.print(f"wrote {path}")


# the study commands live in their own module; importing it registers them on `main`
from . import studycli  # noqa: E402,F401

if __name__ == "__main__":
    main()
