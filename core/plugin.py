"""Plugins: discovery through entry points, metadata, selection and dependency checks.

A plugin is a module or a class registered with a pluggy ``PluginManager`` made for
one run; a class is instantiated for every run, so its instance owns the plugin's state
for that run and nothing is left on the core's objects. It declares
``WORLDSWITCH_PLUGIN = PluginMeta(...)`` and implements hooks from
:mod:`worldswitch.hookspecs` with ``@hookimpl``. The 17 patches of the series
ship as plugins declared in the same entry-point group, ``worldswitch.plugins``, that
third parties use.

Rules that keep one broken or greedy third-party plugin from taking the tool down:

* Discovery loads every entry point once per process. One that fails to import (any
  exception, ``SystemExit`` included), has no valid ``PluginMeta``, or does not fit the
  hook specifications (wrong argument names, unknown hook) is left out and reported
  once, as a one-line warning on stderr; the others load. ``set_strict(True)`` (the
  CLI's ``--strict-plugins``) turns the first reported problem into a ``PluginError``
  instead. Worker processes stay quiet: their parent reports.
* Names are unique and the built-ins own theirs: a third-party plugin named like a
  built-in is not loaded, nor is a second third-party plugin of an already-taken name.
  A plugin name starts with a letter, so it never reads as a patch number, and is not
  a selection keyword (``all``, ``none``, ``series``, ``vanilla``).
* Patch numbers 1-17 are the series'. A third-party plugin may claim one of them: it
  loads and sorts beside that patch, but a number, ``series`` or ``all`` always
  selects the built-in (the claim is reported once); select it by name. A third-party
  plugin may also number itself 18 or higher (a follow-up patch): that number then
  selects it, unless two third-party plugins claim it, which makes selecting it by
  number an error naming both. ``series``/``all`` never include third-party plugins.
  A ``patch`` below 1 is invalid metadata.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

hookimpl = pluggy.HookimplMarker("worldswitch")

ENTRY_POINT_GROUP = "worldswitch.plugins"
#: set to a non-empty value to load only the built-in plugins (like PYTEST_DISABLE_PLUGIN_AUTOLOAD)
DISABLE_AUTOLOAD_ENV = "WORLDSWITCH_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PREFIX = "worldswitch.plugins."
BUILTIN_DIST = "worldswitch"

KINDS = ("optimization", "correctness", "refactor")
SERIES = range(1, 18)
PRESETS = {"vanilla": "none", "series": "all"}
_KEYWORDS = frozenset(PRESETS) | {"all", "none"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_RANGE = re.compile(r"(\d+)(?:\s*-\s*(\d+))?")

_strict = False
_extra: tuple[str, ...] = ()  # -p MODULE[:ATTR]
_blocked: frozenset[str] = frozenset()  # -p no:NAME
_autoload = True  # --disable-plugin-autoload turns it off, like the environment variable


def set_strict(strict: bool) -> None:
    """Make the next ``discover()`` raise on a broken or clashing plugin instead of
    warning (``--strict-plugins``). Call it with False to go back to warnings."""
    global _strict
    _strict = strict


@dataclass(frozen=True)
class PluginMeta:
    """What a plugin says about itself."""

    name: str  # stable short name, e.g. "vgic-v2-live-lrs"
    title: str
    subsystem: str
    kind: str  # optimization | correctness | refactor
    patch: int | None = None  # 1-17 for the series, None for third parties (see the module docstring)
    requires: tuple[str, ...] = ()
    force_note: str = ""  # what happens when it runs without its requirements (--force)
    version: str = ""
    #: False for a plugin that changes nothing countable (a rename, a refactor): it is in
    #: the series for fidelity, and `worldswitch plugins` says so
    countable: bool = True
    #: the attributes of the plugin object that hold its state for the run (the fields
    #: a patch adds to a kernel struct); ``()`` for a stateless plugin. The round-trip
    #: cache (core/memo.py) keys on them; None (undeclared) turns the cache off for runs
    #: where the plugin answers per-trap hooks
    state: tuple[str, ...] | None = None


@dataclass
class PluginInfo:
    meta: PluginMeta
    module: Any  # what the entry point names: a module, or a class instantiated per run
    entry_point: str
    builtin: bool
    dist_version: str = ""
    hooks: list[str] = field(default_factory=list)

    def new(self) -> Any:
        """The object to register for one run: a fresh instance of a class, else the module."""
        return self.module() if isinstance(self.module, type) else self.module


def _check_meta(obj: Any) -> PluginMeta:
    """The plugin's metadata; ValueError(reason) when it is missing or malformed."""
    meta = getattr(obj, "WORLDSWITCH_PLUGIN", None)
    if not isinstance(meta, PluginMeta):
        raise ValueError("it has no WORLDSWITCH_PLUGIN = PluginMeta(...)")
    if not isinstance(meta.name, str) or not _NAME.fullmatch(meta.name) or meta.name in _KEYWORDS:
        raise ValueError(f"its name {meta.name!r} is not a plugin name (a letter, then letters, digits, '.', '_' "
                         f"or '-'; not {', '.join(sorted(_KEYWORDS))})")
    if meta.kind not in KINDS:
        raise ValueError(f"it declares kind {meta.kind!r}; expected one of {', '.join(KINDS)}")
    # bool is an int: patch=True would silently mean patch 1
    if meta.patch is not None and (type(meta.patch) is not int or meta.patch < 1):
        raise ValueError(f"it declares patch {meta.patch!r}; expected None or a number from 1")
    if not isinstance(meta.requires, tuple | list) or not all(isinstance(r, str) for r in meta.requires):
        raise ValueError(f"it declares requires={meta.requires!r}; expected a tuple of plugin names")
    if meta.state is not None and (not isinstance(meta.state, tuple)
                                   or not all(isinstance(a, str) and a.isidentifier() for a in meta.state)):
        raise ValueError(f"it declares state={meta.state!r}; expected None or a tuple of attribute names")
    return meta


def _one_line(text: str) -> str:
    # pluggy's validation messages span lines; a warning or error is one line
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _describe(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r})"
    text = _one_line(str(e))
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _is_builtin(ep: metadata.EntryPoint) -> bool:
    # the module prefix alone could be borrowed; the distribution cannot
    dist = getattr(ep, "dist", None)
    return ep.value.startswith(BUILTIN_PREFIX) and (dist is None or dist.name == BUILTIN_DIST)


def _sort_key(name: str, info: PluginInfo) -> tuple[float, str]:
    return (info.meta.patch if info.meta.patch is not None else math.inf, name)


@dataclass
class _Discovery:
    plugins: dict[str, PluginInfo]
    problems: list[tuple[str, str]]  # (what is wrong, what happens instead) in discovery order
    reported: bool = False


def configure(extra: tuple[str, ...] = (), blocked: tuple[str, ...] = (), autoload: bool = True) -> None:
    """The command line's plugin options: ``-p MODULE`` loads a plugin that no entry
    point declares (quick experiments), ``-p no:NAME`` leaves one out of discovery, and
    ``--disable-plugin-autoload`` loads only the built-ins (and the ``-p`` modules)."""
    global _extra, _blocked, _autoload
    _extra, _blocked, _autoload = tuple(extra), frozenset(blocked), autoload


class _Named:
    """An explicitly named plugin module (``-p``), shaped like an entry point."""

    def __init__(self, spec: str) -> None:
        self.name = self.value = spec
        self.dist = None

    def load(self) -> Any:
        module, _, attr = self.value.partition(":")
        obj = importlib.import_module(module)
        return getattr(obj, attr) if attr else obj


def _autoload_on() -> bool:
    return _autoload and not os.environ.get(DISABLE_AUTOLOAD_ENV)


@functools.cache
def _discover(autoload: bool, extra: tuple[str, ...] = ()) -> _Discovery:
    # entry-point scanning costs tens of milliseconds: once per process is enough
    problems: list[tuple[str, str]] = []
    skipped = "the other plugins are loaded"
    loaded: list[tuple[metadata.EntryPoint, bool, Any, PluginMeta]] = []
    named = [_Named(spec) for spec in extra]
    for ep in [*metadata.entry_points(group=ENTRY_POINT_GROUP), *named]:
        builtin = not isinstance(ep, _Named) and _is_builtin(ep)
        if not builtin and not autoload and not isinstance(ep, _Named):
            continue
        where = f"plugin entry point {ep.name!r} ({ep.value}) failed to load"
        try:
            obj = ep.load()
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a broken plugin must not take the others down
            if isinstance(ep, _Named):  # asked for by name: its failure is the answer
                raise PluginError(f"-p {ep.value}: cannot load it: {_describe(e)}") from None
            problems.append((f"{where}: {_describe(e)}", skipped))
            continue
        try:
            meta = _check_meta(obj)
        except ValueError as e:
            problems.append((f"{where}: {e}", skipped))
            continue
        loaded.append((ep, builtin, obj, meta))

    # built-ins first, so their names and numbers win whatever the entry-point order
    loaded.sort(key=lambda x: not x[1])
    found: dict[str, PluginInfo] = {}
    checker = pluggy.PluginManager("worldswitch")  # validates hooks now, so nothing later trips on them
    checker.add_hookspecs(hookspecs)
    for ep, builtin, obj, meta in loaded:
        where = f"plugin entry point {ep.name!r} ({ep.value}) failed to load"
        other = found.get(meta.name)
        if other is not None:
            if other.module is not obj:  # the same object twice (a stale second install) is no clash
                owner = "the built-in plugin" if other.builtin else "another plugin"
                problems.append((f"{where}: its name {meta.name!r} belongs to {owner} ({other.entry_point})",
                                 skipped))
            continue
        try:
            checker.register(obj() if isinstance(obj, type) else obj, name=meta.name)
            checker.check_pending()  # unknown hook names only show up here
        except Exception as e:  # noqa: BLE001 - PluginValidationError, or a module whose attributes raise
            if checker.has_plugin(meta.name):
                checker.unregister(name=meta.name)
            problems.append((f"{where}: it does not fit the hook specifications: {_describe(e)}", skipped))
            continue
        hooks = sorted(c.name for c in checker.get_hookcallers(checker.get_plugin(meta.name)) or [])
        dist = getattr(ep, "dist", None)
        found[meta.name] = PluginInfo(meta, obj, ep.value, builtin, dist.version if dist else "", hooks)

    series = {i.meta.patch: n for n, i in found.items() if i.builtin and i.meta.patch}
    for name, info in found.items():
        if not info.builtin and info.meta.patch in series:
            n = info.meta.patch
            problems.append((f"plugin {name!r} ({info.entry_point}) claims patch {n}, which the built-in "
                             f"{series[n]!r} implements: `--patches {n}` keeps meaning the built-in; "
                             "select it by name", ""))
    return _Discovery(dict(sorted(found.items(), key=lambda kv: _sort_key(*kv))), problems)


def _in_worker() -> bool:
    import multiprocessing  # only when there is something to report

    return multiprocessing.parent_process() is not None


def discover() -> dict[str, PluginInfo]:
    """Every installed plugin that loaded, by name, in patch order then name.

    Reports discovery problems once per process (strict mode: raises PluginError)."""
    d = _discover(_autoload_on(), _extra)
    unknown = sorted(_blocked - set(d.plugins))
    if unknown:
        raise PluginError(f"-p no:{unknown[0]}: no plugin is named {unknown[0]!r}; `worldswitch plugins` lists them")
    if d.problems:
        if _strict:
            # checked on every call, so set_strict works whenever it is called
            raise PluginError(f"{d.problems[0][0]} (strict plugin loading)")
        if not d.reported:
            d.reported = True
            if not _in_worker():
                for what, then in d.problems:
                    print(f"worldswitch: warning: {what}{'; ' + then if then else ''}", file=sys.stderr)
    if _blocked:
        return {name: info for name, info in d.plugins.items() if name not in _blocked}
    return d.plugins


def discovery_problems() -> list[str]:
    """What discovery left out or reports, one line each (never raises, never prints)."""
    return [what for what, _ in _discover(_autoload_on(), _extra).problems]


def _by_number(n: int, series: dict[int, str], claims: dict[int, list[str]]) -> str:
    if n in series:
        return series[n]
    owners = claims.get(n, [])
    if len(owners) == 1:
        return owners[0]
    if owners:
        names = " and ".join(repr(o) for o in owners)
        raise PluginError(f"patch {n} is claimed by the third-party plugins {names}; select one by name")
    raise PluginError(f"no installed plugin implements patch {n}")


def _check_installed(selected: list[str], plugins: dict[str, PluginInfo]) -> None:
    """Every requirement of the selection, transitively, is installed (``ablate`` walks them)."""
    seen, todo = set(selected), list(selected)
    while todo:
        name = todo.pop()
        for req in plugins[name].meta.requires:
            if req not in plugins:
                raise PluginError(f"plugin {name!r} requires {req!r}, which is not installed")
            if req not in seen:
                seen.add(req)
                todo.append(req)


def parse_selection(spec: str, plugins: dict[str, PluginInfo], without: tuple[str, ...] = ()) -> list[str]:
    """Comma-separated items: ``all``/``series`` (the 17 patches), ``none``/``vanilla``
    (nothing; they add nothing beside other items), patch numbers and ranges (``1,7-11``),
    plugin names. Third-party plugins are selected by name (or by a number no built-in has)."""
    series = {i.meta.patch: n for n, i in plugins.items() if i.builtin and i.meta.patch}
    claims: dict[int, list[str]] = {}
    for n, i in plugins.items():
        if not i.builtin and i.meta.patch and i.meta.patch not in series:
            claims.setdefault(i.meta.patch, []).append(n)
    chosen: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if item in ("", "none", "vanilla"):
            continue
        if item in ("all", "series"):
            chosen += [series[n] for n in sorted(series)]
        elif m := _RANGE.fullmatch(item):
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if lo > hi:
                raise PluginError(f"--patches {item!r}: a range goes low to high ({hi}-{lo})")
            chosen += [_by_number(n, series, claims) for n in range(lo, hi + 1)]
        elif item in plugins:
            chosen.append(item)
        else:
            raise PluginError(f"unknown plugin {item!r}; `worldswitch plugins` lists them")
    for name in without:
        if name not in plugins:
            raise PluginError(f"unknown plugin {name!r} in --without")
    out: list[str] = []
    for name in chosen:
        if name not in out and name not in without:
            out.append(name)
    _check_installed(out, plugins)
    return sorted(out, key=lambda n: _sort_key(n, plugins[n]))


def check_requires(selected: list[str], plugins: dict[str, PluginInfo]) -> list[tuple[str, str]]:
    """(plugin, missing requirement) pairs."""
    return [(n, r) for n in selected for r in plugins[n].meta.requires if r not in selected]


def make_manager(selected: list[str], plugins: dict[str, PluginInfo], force: bool = False) -> pluggy.PluginManager:
    """A fresh PluginManager for one run with the selected plugins, in patch order."""
    missing = check_requires(selected, plugins)
    if missing and not force:
        name, req = missing[0]
        raise PluginError(f"plugin {name!r} requires {req!r}, which is not selected (add it, or --force to run anyway)")
    pm = pluggy.PluginManager("worldswitch")
    pm.add_hookspecs(hookspecs)
    for name in selected:
        try:
            pm.register(plugins[name].new(), name=name)
        except pluggy.PluginValidationError as e:
            raise PluginError(f"plugin {name!r} does not fit the hook specifications: {_describe(e)}") from None
    return pm


def implemented_hooks(module: Any) -> list[str]:
    """The hooks a plugin implements (discovered plugins: as validated at discovery)."""
    for info in _discover(_autoload_on(), _extra).plugins.values():
        if info.module is module:
            return list(info.hooks)
    pm = pluggy.PluginManager("worldswitch")
    pm.add_hookspecs(hookspecs)
    obj = module() if isinstance(module, type) else module
    pm.register(obj)
    return sorted(caller.name for caller in pm.get_hookcallers(obj) or [])
