"""pytest fixtures for plugin authors, loaded through the ``pytest11`` entry point.

Installing worldswitch makes three fixtures available to any test suite, with no
``conftest.py`` or ``pytest_plugins`` line. Each runs a built-in guest (``"self_sgi-256"``,
``"null_hvc-1024"``...) or a flat binary on a platform profile. ``plugins`` are plugin
objects or modules registered directly, without an entry point: pass a *fresh* instance
of a class plugin, so that its per-run state starts clean. ``patches`` selects installed
plugins exactly as ``--patches`` does (``"series,my-opt"``), with their requirements checked
(``force=True`` as ``--force``). Other keyword arguments (``max_exits``, ``timeout``...)
go to :func:`worldswitch.api.run_guest`.

``worldswitch_run(guest, platform="A", patches="none", plugins=(), force=False, **kw)``
    One run; returns its :class:`~worldswitch.api.RunResult` (counts by event class,
    exits by reason, cycles, and ``guest_visible``: what the guest saw)::

        def test_fewer_gich_reads(worldswitch_run):
            base = worldswitch_run("self_sgi-256", "A")
            mine = worldswitch_run("self_sgi-256", "A", plugins=[MyOpt()])
            assert mine.counts["GICH_READ"] < base.counts["GICH_READ"]

``worldswitch_transparent(guest, platform="A", plugins=(), patches="none", force=False, **kw)``
    Runs vanilla and the plugin set on the same guest and fails the test, naming the
    first difference, when the guest saw anything else (registers at the end,
    interrupts acknowledged, EOIs, exits by reason, the system event: the check
    ``worldswitch table`` makes). Returns ``(vanilla, patched)`` results, so the test
    can go on to compare counts. Vanilla runs are deterministic, so they are made once
    per test session for each guest, platform and option set::

        def test_transparent(worldswitch_transparent):
            base, mine = worldswitch_transparent("self_sgi-256", "C-v3", plugins=[MyOpt()])
            assert mine.counts["ICH_READ"] < base.counts["ICH_READ"]

``worldswitch_hookcalls(guest, platform="A", plugins=(), patches="none", record=False, **kw)``
    Runs the guest and returns a :class:`HookCalls`: how often each hook of the
    plugins *passed in* ``plugins`` was called, and what with. Two sources, because
    most hooks bypass pluggy at run time:

    * ``calls`` (and ``by_plugin``) count calls of the ``plugins`` objects' own
      ``@hookimpl`` functions, per-trap hooks included. The recorder registers, in each
      object's place, a stand-in whose hook implementations count and forward to the
      object's, so the object keeps its state and the core resolves and checks the
      implementations as usual. A question the core skips on some path (the
      maintenance-interrupt one when no LR is saved, say) is not counted there: that
      is what the recorder is for. Plugins selected with ``patches`` run too, but
      their calls are not counted here: pass a fresh instance in ``plugins`` instead.
    * ``pluggy_calls`` counts the calls that went through pluggy's hook caller
      (``pm.hook.NAME(...)``), for every registered plugin, as pluggy's hook-call
      monitoring (``PluginManager.add_hookcall_monitoring``) sees them; the fixture
      reaches the run's fresh PluginManager by wrapping ``worldswitch.plugin.make_manager``
      for the duration of the run, and raises if a run never called it. These are the set-up hooks
      (``ws_vgic_dist_ranges``, ``ws_vcpu_init``, ``ws_vcpu_put``, and the cp15 table
      hooks on a 32-bit host). Per-trap hooks are resolved once per run into plain
      callables (:mod:`worldswitch.hooks`) and are not seen here, unless an
      implementation is a ``wrapper``/``hookwrapper``, which makes the core call
      through pluggy.

    ``record`` keeps every call's arguments and result as :class:`HookCall` entries in
    ``records`` and ``pluggy_records`` (True: every hook; a collection of names: those
    hooks; False: counts only, what long runs should use). Arguments are the live
    objects, not copies: the ``vcpu`` of the first call is the ``vcpu`` of the last.
    ``result`` is the run's :class:`~worldswitch.api.RunResult`::

        def test_asked_once_per_exit(worldswitch_hookcalls):
            rec = worldswitch_hookcalls("null_hvc-256", "A", plugins=[MyOpt()], record=["ws_vgic_lrs_to_save"])
            assert rec.calls["ws_vgic_lrs_to_save"] == sum(rec.result.exits.values())
            assert all(c.result == 0 for c in rec.records)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import itertools
import types
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .api import RunResult


@pytest.fixture
def worldswitch_run() -> Callable[..., Any]:
    """Run a guest: ``worldswitch_run(guest, platform, patches="none", plugins=(), force=False)``.

    ``plugins`` are plugin objects or modules registered directly, without an entry point."""
    from .api import run_guest

    def run(guest: str, platform: str = "A", patches: str = "none", plugins: Iterable[Any] = (),
            force: bool = False, **kwargs: Any) -> Any:
        return run_guest(guest, platform, patches=patches, force=force, extra_plugins=tuple(plugins), **kwargs)

    return run


# ---- transparency --------------------------------------------------------------------------------------
def _label(obj: Any) -> str:
    """How a plugin object is named in messages: its metadata name, else its class or module name."""
    meta = getattr(obj, "WORLDSWITCH_PLUGIN", None)
    name = getattr(meta, "name", None)
    if isinstance(name, str):
        return name
    return obj.__name__ if isinstance(obj, types.ModuleType) else type(obj).__name__


@pytest.fixture(scope="session")
def _worldswitch_vanilla_runs() -> dict[Any, RunResult]:
    # one vanilla run per (guest, platform, options) for the whole session: a run is a
    # pure function of them, and the transparency checks of a plugin suite repeat them
    return {}


@pytest.fixture
def worldswitch_transparent(_worldswitch_vanilla_runs: dict[Any, RunResult]) -> Callable[..., tuple[Any, Any]]:
    """``worldswitch_transparent(guest, platform="A", plugins=(), patches="none", force=False, **kw)``:
    fail the test if the plugin set changes what the guest sees; return (vanilla, patched)."""
    from .api import run_guest, visible_difference

    def check(guest: str, platform: Any = "A", plugins: Iterable[Any] = (), patches: str = "none",
              force: bool = False, **kwargs: Any) -> tuple[RunResult, RunResult]:
        extra = tuple(plugins)
        key: Any = (guest, platform, tuple(sorted(kwargs.items())))
        try:
            base = _worldswitch_vanilla_runs.get(key)
        except TypeError:  # an unhashable option (or a Platform object): run vanilla every time
            key, base = None, None
        if base is None:
            base = run_guest(guest, platform, **kwargs)
            if key is not None:
                _worldswitch_vanilla_runs[key] = base
        # a copy, so that a test editing its result cannot change the next test's vanilla
        base = copy.deepcopy(base)
        mine = run_guest(guest, platform, patches=patches, force=force, extra_plugins=extra, **kwargs)
        diff = visible_difference(base.guest_visible, mine.guest_visible)
        if diff is not None:
            what = [p for p in patches.split(",") if p.strip() not in ("", "none", "vanilla")]
            what += [_label(p) for p in extra]
            pytest.fail(f"{guest} on {mine.platform}: {' + '.join(what) or 'vanilla'} changed what the guest "
                        f"sees: {diff}", pytrace=False)
        return base, mine

    return check


# ---- hook-call recording ---------------------------------------------------------------------------------
@dataclass
class HookCall:
    """One recorded call: the hook, whose implementation (None for a call through pluggy,
    which calls them all), the arguments by name, and the result (a list of every
    implementation's result for a call through pluggy)."""

    hook: str
    plugin: str | None
    kwargs: dict[str, Any]
    result: Any


@dataclass
class _Seen:
    calls: Counter[str] = field(default_factory=Counter)
    by_plugin: dict[str, Counter[str]] = field(default_factory=dict)
    pluggy_calls: Counter[str] = field(default_factory=Counter)
    records: list[HookCall] = field(default_factory=list)
    pluggy_records: list[HookCall] = field(default_factory=list)


@dataclass
class HookCalls:
    """What :func:`worldswitch_hookcalls` saw during one run (see the module docstring)."""

    result: RunResult
    #: hook name -> calls of the implementations of the objects passed in ``plugins``
    calls: Counter[str]
    #: plugin label (metadata name, else class or module name; ``#2``... when repeated) -> hook -> calls
    by_plugin: dict[str, Counter[str]]
    #: hook name -> calls through pluggy's hook caller, every plugin of the run (set-up hooks)
    pluggy_calls: Counter[str]
    records: list[HookCall]
    pluggy_records: list[HookCall]


_IMPL_ATTR = "worldswitch_impl"  # where pluggy's HookimplMarker("worldswitch") leaves its options
_unique = itertools.count()


def _counting(hook: str, label: str, target: Callable[..., Any], seen: _Seen,
              keep: Callable[[str], bool]) -> Callable[..., Any]:
    """A stand-in for one hook implementation that counts, records and forwards."""
    argnames = tuple(inspect.signature(target).parameters)
    per_plugin = seen.by_plugin[label]
    if inspect.isgeneratorfunction(target):
        # pluggy requires a wrapper implementation to be a generator function itself
        def stand_in(*args: Any) -> Any:
            seen.calls[hook] += 1
            per_plugin[hook] += 1
            res = yield from target(*args)
            if keep(hook):
                seen.records.append(HookCall(hook, label, dict(zip(argnames, args)), res))
            return res
    else:
        def stand_in(*args: Any) -> Any:
            seen.calls[hook] += 1
            per_plugin[hook] += 1
            res = target(*args)
            if keep(hook):
                seen.records.append(HookCall(hook, label, dict(zip(argnames, args)), res))
            return res

    # The core names a plugin that raises by finding its implementation's code object in
    # the traceback, and code objects compare by value: give each stand-in one of its own
    # (named after the hook, with an unused constant) so a failure is blamed on the right hook.
    code = stand_in.__code__
    stand_in.__code__ = code.replace(co_name=hook, co_consts=(*code.co_consts, f"{label}.{hook}#{next(_unique)}"))
    # pluggy reads the argument names from the signature: the stand-in takes exactly the original's
    stand_in.__signature__ = inspect.signature(target)  # type: ignore[attr-defined]
    # no dot in the qualified name, or pluggy would take a first argument named self for an instance
    stand_in.__name__ = stand_in.__qualname__ = getattr(target, "__name__", hook)
    return stand_in


def _instrument(obj: Any, label: str, seen: _Seen, keep: Callable[[str], bool]) -> Any:
    """An object that pluggy registers in ``obj``'s place, whose hook implementations are
    ``obj``'s behind a counter. Its class is named like ``obj``'s, so results and error
    messages read as they would without the recorder."""
    seen.by_plugin[label] = Counter()
    attrs: dict[str, Any] = {}
    for name in dir(obj):
        try:
            target = getattr(obj, name)
        except Exception:  # noqa: BLE001 - pluggy skips an attribute that raises; so do we
            continue
        opts = getattr(target, _IMPL_ATTR, None) if inspect.isroutine(target) else None
        if not isinstance(opts, dict):
            continue
        stand_in = _counting(opts.get("specname") or name, label, target, seen, keep)
        setattr(stand_in, _IMPL_ATTR, dict(opts))
        attrs[name] = staticmethod(stand_in)  # called without self: the original is already bound
    if hasattr(obj, "WORLDSWITCH_PLUGIN"):
        attrs["WORLDSWITCH_PLUGIN"] = obj.WORLDSWITCH_PLUGIN
    cls_name = type(obj).__name__  # "module" for a module, as run_guest reports an unrecorded one
    return type(cls_name, (), attrs)()


@contextlib.contextmanager
def _monitored(seen: _Seen, keep: Callable[[str], bool]) -> Iterator[list[Any]]:
    """Patch :func:`worldswitch.plugin.make_manager`, which ``run_guest`` looks up at each
    run, so that the run's fresh PluginManager reports its hook calls to ``seen``; yield
    the managers made."""
    from . import plugin

    real = plugin.make_manager
    made: list[Any] = []

    def before(hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
        seen.pluggy_calls[hook_name] += 1

    def after(outcome: Any, hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
        if keep(hook_name):
            # outcome is pluggy's Result; an exception in it propagates once monitoring is done
            res = None if outcome.exception is not None else outcome.get_result()
            seen.pluggy_records.append(HookCall(hook_name, None, dict(kwargs), res))

    @functools.wraps(real)
    def make_manager(*args: Any, **kwargs: Any) -> Any:
        pm = real(*args, **kwargs)
        pm.add_hookcall_monitoring(before, after)
        made.append(pm)
        return pm

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plugin, "make_manager", make_manager)
        yield made


@pytest.fixture
def worldswitch_hookcalls() -> Callable[..., HookCalls]:
    """``worldswitch_hookcalls(guest, platform="A", plugins=(), patches="none", record=False, force=False, **kw)``:
    run a guest and count (``record``: and keep) the hook calls; see :class:`HookCalls`."""
    from .api import run_guest

    def run(guest: str, platform: Any = "A", plugins: Iterable[Any] = (), patches: str = "none",
            record: bool | Collection[str] = False, force: bool = False, **kwargs: Any) -> HookCalls:
        wanted = None if isinstance(record, bool) else frozenset(record)

        def keep(hook: str) -> bool:
            return bool(record) if wanted is None else hook in wanted

        seen = _Seen()
        stand_ins = []
        labels: Counter[str] = Counter()
        for obj in plugins:
            label = _label(obj)
            labels[label] += 1
            if labels[label] > 1:
                label = f"{label}#{labels[label]}"
            stand_ins.append(_instrument(obj, label, seen, keep))
        # every round trip for real: a replayed one calls no hook, and these are call counts
        kwargs.setdefault("cache", False)
        with _monitored(seen, keep) as made:
            result = run_guest(guest, platform, patches=patches, force=force, extra_plugins=tuple(stand_ins),
                               **kwargs)
        if not made:
            # counts of zero would read as "never called": refuse instead of misleading
            raise RuntimeError("worldswitch_hookcalls: run_guest no longer builds its PluginManager through "
                               "worldswitch.plugin.make_manager, so its set-up hook calls cannot be monitored")
        return HookCalls(result, seen.calls, seen.by_plugin, seen.pluggy_calls, seen.records, seen.pluggy_records)

    return run
