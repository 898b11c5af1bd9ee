"""Run a guest on a platform with a set of plugins: the library entry point."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from .errors import GuestImageError, PluginFailure, UsageError, WorldswitchError
from .events import EXIT_NAMES, Ev, new_counters
from .platform import Platform, get_platform


def _make_logger(level: int) -> Any:
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        processors=[structlog.processors.add_log_level, structlog.dev.ConsoleRenderer(colors=False)],
    )


# Bound once; below its level a log call costs nothing. Quiet unless asked (-v).
_logger = _make_logger(logging.WARNING)


# Guest-caused warnings (what KVM would pr_warn, what lkvm ignores) go to stderr as they
# happen, once each; they are also kept in the result. ``-q`` silences them.
_quiet_warnings = False


def _warn(msg: str) -> None:
    print(f"worldswitch: warning: {msg}", file=sys.stderr, flush=True)


VERIFY_CACHE_ENV = "WORLDSWITCH_VERIFY_CACHE"
CACHE_ENV = "WORLDSWITCH_CACHE"


def verify_cache_default() -> int:
    """K from ``WORLDSWITCH_VERIFY_CACHE`` (the test suite sets it), else 0."""
    text = os.environ.get(VERIFY_CACHE_ENV, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise UsageError(f"{VERIFY_CACHE_ENV}={text!r}: expected a whole number of hits (0: no verification)")
    return int(text)


def set_log_level(level: int) -> None:
    global _logger, _quiet_warnings
    _logger = _make_logger(level)
    _quiet_warnings = level > logging.WARNING


@dataclass
class RunResult:
    guest: str
    platform: str
    plugins: list[str]
    iterations: int  # exits observed
    counts: dict[str, int]
    exits: dict[str, int]
    cycles: float
    cycles_per_iteration: float
    guest_visible: dict[str, Any]
    wall_seconds: float = field(compare=False, default=0.0)
    forced: bool = False
    warnings: list[str] = field(default_factory=list)
    # guest instructions of spin loops the scheduler skipped, not emulated (core/spin.py)
    spin_skipped: int = 0
    # the round-trip cache's statistics (core/memo.py): how the host got the result, never
    # part of it, so left out of the JSON like nothing else but the wall time is not
    cache: dict[str, Any] = field(compare=False, default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["cache"]
        return out


def _shown(v: Any) -> str:
    return "absent" if v is None else hex(v) if isinstance(v, int) and not isinstance(v, bool) else repr(v)


def visible_difference(vanilla: dict[str, Any], other: dict[str, Any], path: str = "") -> str | None:
    """The first way ``other`` differs from ``vanilla`` in what the guest saw, in words."""
    for key in sorted(set(vanilla) | set(other)):
        a, b = vanilla.get(key), other.get(key)
        where = f"{path}.{key}" if path else key
        if isinstance(a, dict) and isinstance(b, dict):
            diff = visible_difference(a, b, where)
            if diff:
                return diff
        elif a != b:
            return f"{where} is {_shown(b)} instead of vanilla's {_shown(a)}"
    return None


def resolve_guest(guest: str, arch: str | None = None) -> tuple[str, Path]:
    """A built-in guest name (``null_hvc``, ``self_sgi``, ``sysreg``, ``name-256`` ...) or a path.

    A built-in image must match the platform's architecture (``arch``)."""
    from worldswitch import guests

    p = Path(guest)
    if p.suffix == ".bin" or p.exists() or "/" in guest:
        if not p.exists():
            raise GuestImageError(f"guest image {guest} does not exist")
        if p.is_dir():
            raise GuestImageError(f"guest image {guest} is a directory; give a flat binary file")
        if not p.is_file():
            raise GuestImageError(f"guest image {guest} is not a regular file (a FIFO or device?); give a flat binary")
        return p.stem, p
    name, _, iters = guest.partition("-")
    try:
        image = guests.short_variant(name, int(iters)) if iters else guests.GUESTS[name]
    except (KeyError, ValueError):
        known = ", ".join(guests.GUESTS)
        raise GuestImageError(f"unknown guest {guest!r}: give a path to a flat binary or one of {known}") from None
    if arch is not None and image.arch != arch:
        raise GuestImageError(f"guest {guest} is an {image.arch} image; the platform runs {arch} guests")
    return guest, guests.image_path(image)


def _blame(e: BaseException, pm: Any) -> PluginFailure | None:
    """Name the plugin and hook whose code raised, from the traceback."""
    owners = {}
    for name, plugin in pm.list_name_plugin():
        for caller in pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    owners[impl.function.__code__] = (name, caller.name)
    tb = e.__traceback__
    hit = None
    while tb is not None:
        if tb.tb_frame.f_code in owners:
            hit = owners[tb.tb_frame.f_code]
        tb = tb.tb_next
    if hit is None:
        return None
    return PluginFailure(f"plugin {hit[0]!r} raised in hook {hit[1]}: {type(e).__name__}: {e}")


def check_redist_base(base: int, nr_vcpus: int = 1) -> None:
    """A GICv3 redistributor region (one frame pair per vCPU) must sit, 64 KiB aligned, in
    the 32-bit MMIO hole below RAM without covering the distributor or the GICv2 CPU interface."""
    from .kvm.arm import GICD_BASE, GICD_SIZE
    from .machine import GICC_BASE, GICC_SIZE, RAM_BASE, REDIST_SIZE

    if base < 0 or base >= 1 << 64:
        raise UsageError(f"--redist-base {base:#x} is not a 64-bit address")
    if base % 0x10000:
        raise UsageError(f"--redist-base 0x{base:x} is not 64 KiB aligned (GICR frames are 64 KiB)")
    end = base + REDIST_SIZE * nr_vcpus
    for name, lo, size in (("RAM", RAM_BASE, 1 << 64), ("the distributor", GICD_BASE, GICD_SIZE),
                           ("the GICv2 CPU interface", GICC_BASE, GICC_SIZE)):
        if base < lo + size and lo < end:
            raise UsageError(f"--redist-base 0x{base:x}: the redistributors (0x{end - base:x} bytes) would overlap "
                             f"{name} at 0x{lo:x}")


@contextlib.contextmanager
def _polling(progress: Any, counters: list[int]) -> Iterator[None]:
    """Report the exit count to ``progress`` from a daemon thread while the body runs."""
    if progress is None:
        yield
        return
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.25):
            progress(counters[Ev.WORLD_SWITCH])

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        progress(counters[Ev.WORLD_SWITCH])


def run_guest(
    guest: str,
    platform: str | Platform = "A",
    patches: str = "none",
    without: tuple[str, ...] = (),
    force: bool = False,
    max_exits: int | None = None,
    timeout: float | None = None,
    redist_base: int | None = None,
    extra_plugins: tuple[Any, ...] = (),
    max_instructions: int = 0,
    observers: tuple[Any, ...] = (),
    vm: Any = None,
    progress: Any = None,
    cache: bool | None = None,
    verify_cache: int | None = None,
) -> RunResult:
    """Run one guest to completion and return its counts and cycles.

    ``timeout`` (seconds of host time, None for none) and ``max_instructions`` bound the
    run, image preparation included; neither ever changes a result, they only stop it.
    ``extra_plugins`` registers plugin objects directly (for tests and notebooks);
    ``observers`` too, but they only watch (a tracer): they are not listed as the run's plugins.
    ``vm`` is a :class:`worldswitch.machine.VmConfig` (lkvm's ``--mem``, ``--params``, ...).
    ``progress(exits)``, if given, is called about four times a second from another thread
    with the exits so far (it reads a counter: nothing is added to the trap path).
    ``cache`` memoises round trips (core/memo.py; never changes a result; default: on,
    unless ``WORLDSWITCH_CACHE=0``); ``verify_cache`` K re-executes every K-th replayed one
    and fails on any difference (default: ``WORLDSWITCH_VERIFY_CACHE``, else the cache's
    own periodic check)."""
    from .budget import deadline_after
    from .hooks import Hooks
    from .kvm.arm import Vcpu
    from .plugin import discover, make_manager, parse_selection

    try:
        deadline = deadline_after(timeout)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if max_instructions < 0:
        raise UsageError("an instruction budget must be a positive number")
    if verify_cache is None:
        verify_cache = verify_cache_default()
    if cache is None:
        cache = os.environ.get(CACHE_ENV, "1").strip().lower() not in ("0", "off", "no", "false")
    pf = platform if isinstance(platform, Platform) else get_platform(platform)
    name, path = resolve_guest(guest, pf.arch)
    plugins = discover()
    selected = parse_selection(patches, plugins, without)
    pm = make_manager(selected, plugins, force=force)
    for obj in (*extra_plugins, *observers):
        pm.register(obj)
    counters = new_counters()
    hooks = Hooks(pm)
    log = _logger.bind(guest=name, platform=pf.name)
    log.debug("run.start", plugins=selected, hooks=sorted(n for n in vars(hooks) if n != "pm" and getattr(hooks, n)))
    try:
        if pf.arch == "aarch32":
            from .aarch32 import Machine32 as MachineCls
            from .aarch32 import Vcpu32 as VcpuCls
        else:
            from .machine import Machine as MachineCls

            VcpuCls = Vcpu
        from .board import build_board
        from .machine import LOAD_OFFSET, REDIST_DEFAULT, VmConfig, load_image

        base = redist_base if redist_base is not None else REDIST_DEFAULT
        vm = vm or VmConfig()
        code = load_image(str(path), (vm.mem_mb << 20) - LOAD_OFFSET)
        if vm.cpus > 1 and pf.arch != "aarch64":
            raise UsageError(f"--cpus {vm.cpus}: the 32-bit host model runs one vCPU")
        if vm.cpus > 8 and pf.guest_gic == 2:
            raise UsageError(f"--cpus {vm.cpus}: a GICv2 guest has at most 8 vCPUs (GICD_ITARGETSR has 8 bits); "
                             "use a GICv3 guest (--irqchip gicv3)")
        check_redist_base(base, vm.cpus if pf.guest_gic == 3 else 1)
        board = build_board(pf, counters, base)
        vcpus = [VcpuCls(board, hooks)]
        for _ in range(vm.cpus - 1):
            # Each vCPU gets its own instances of the selected plugins: their state is the
            # fields a patch adds to struct kvm_vcpu or vgic_cpu (patch 6's cache, patch 7's
            # live LRs), one per vCPU in the kernel. Objects passed in (extra_plugins,
            # observers) are the caller's own and are shared.
            pm_i = make_manager(selected, plugins, force=force)
            for obj in (*extra_plugins, *observers):
                pm_i.register(obj)
            vcpus.append(VcpuCls(build_board(pf, counters, base, clock=board.clock), Hooks(pm_i)))
        for vcpu in vcpus:
            if not _quiet_warnings:
                vcpu.warn = _warn
            if max_exits:
                vcpu.max_exits = max_exits
        vcpu = vcpus[0]
        memo = {"cache": cache, "verify_cache": verify_cache, "log": lambda msg: log.debug("cache", note=msg)}
        machine = MachineCls(code, vcpus, base, deadline, vm, **memo) if pf.arch == "aarch64" else MachineCls(
            code, vcpu, base, deadline, **memo)
        t0 = time.perf_counter()
        with _polling(progress, counters):
            machine.run(max_instructions)
        wall = time.perf_counter() - t0
    except WorldswitchError as e:
        blamed = _blame(e, pm) if not isinstance(e, GuestImageError | UsageError) else None
        raise (blamed or e) from None
    except (KeyboardInterrupt, SystemExit, Exception) as e:
        # A real Ctrl-C or SIGTERM never raises inside plugin code (budget.RunGuard turns it
        # into a stop), so a KeyboardInterrupt or SystemExit that a plugin raised is its bug,
        # never a reason to exit quietly.
        blamed = _blame(e, pm)
        if blamed:
            raise blamed from None
        raise
    from .cost import cycles

    exits = machine.exits_by_reason() if hasattr(machine, "cores") else vcpu.exits_by_reason()
    log.debug("run.end", exits=sum(exits.values()), seconds=round(wall, 3), cache=machine.cache_stats())
    iterations = sum(exits.values())
    total = cycles(counters, pf)
    lrfs = [lrf for c in getattr(machine, "cores", [machine]) if (lrf := getattr(c.vcpu.hyp_if, "lrf", None))]
    acked: dict[int, int] = {}
    for lrf in lrfs:  # every vCPU's virtual CPU interface
        for k, v in lrf.acked.items():
            acked[k] = acked.get(k, 0) + v
    visible = {
        "registers": machine.guest_registers(),
        "acked": {str(k): v for k, v in sorted(acked.items())},
        "eois": sum(lrf.eois for lrf in lrfs),
        "exits": {EXIT_NAMES.get(k, hex(k)): v for k, v in sorted(exits.items())},
        "system_event": getattr(machine, "system_event", vcpu.system_event),
        "console": machine.console() if hasattr(machine, "console") else "",
    }
    if vcpu.clock.used:  # what the guest saw depends on time: transparency is checked on the guest clock
        visible["clock_used"] = True
    return RunResult(
        guest=name, platform=pf.name, plugins=selected + [type(o).__name__ for o in extra_plugins],
        iterations=iterations, counts={ev.name: counters[ev] for ev in Ev},
        exits=visible["exits"], cycles=total, cycles_per_iteration=total / max(iterations, 1),
        guest_visible=visible, wall_seconds=wall, forced=force and bool(selected),
        warnings=getattr(machine, "warnings", vcpu.warnings),
        spin_skipped=getattr(machine, "spin_skipped", 0), cache=machine.cache_stats(),
    )
