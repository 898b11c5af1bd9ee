"""Plugins: discovery through entry points, metadata, selection and dependency checks.

A plugin is a module (or object) registered with a pluggy ``PluginManager`` made for
one run. It declares ``WORLDSWITCH_PLUGIN = PluginMeta(...)`` and implements hooks
from :mod:`worldswitch.hookspecs` with ``@hookimpl``. The 17 patches of the series
ship as plugins declared in the same entry-point group, ``worldswitch.plugins``, that
third parties use.
"""

from __future__ import annotations

import functools
import os
import re
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

KINDS = ("optimization", "correctness", "refactor")


@dataclass(frozen=True)
class PluginMeta:
    """What a plugin says about itself."""

    name: str  # stable short name, e.g. "vgic-v2-live-lrs"
    title: str
    subsystem: str
    kind: str  # optimization | correctness | refactor
    patch: int | None = None  # 1-17 for the series, None for third parties
    requires: tuple[str, ...] = ()
    force_note: str = ""  # what happens when it runs without its requirements (--force)
    version: str = ""


@dataclass
class PluginInfo:
    meta: PluginMeta
    module: Any
    entry_point: str
    builtin: bool
    dist_version: str = ""
    hooks: list[str] = field(default_factory=list)


def _meta_of(obj: Any, ep_name: str) -> PluginMeta:
    meta = getattr(obj, "WORLDSWITCH_PLUGIN", None)
    if not isinstance(meta, PluginMeta):
        raise PluginError(f"plugin {ep_name!r} has no WORLDSWITCH_PLUGIN = PluginMeta(...)")
    if meta.kind not in KINDS:
        raise PluginError(f"plugin {meta.name!r} declares kind {meta.kind!r}; expected one of {', '.join(KINDS)}")
    return meta


def discover() -> dict[str, PluginInfo]:
    """Every installed plugin, by name, in patch order then name."""
    return _discover(not os.environ.get(DISABLE_AUTOLOAD_ENV))


@functools.cache
def _discover(autoload: bool) -> dict[str, PluginInfo]:
    # entry-point scanning costs tens of milliseconds: once per process is enough
    found: dict[str, PluginInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        builtin = ep.value.startswith(BUILTIN_PREFIX)
        if not builtin and not autoload:
            continue
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken third-party plugin must not crash listing
            raise PluginError(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {e}") from None
        meta = _meta_of(obj, ep.name)
        if meta.name in found:
            raise PluginError(f"two plugins are named {meta.name!r} ({found[meta.name].entry_point}, {ep.value})")
        dist = getattr(ep, "dist", None)
        found[meta.name] = PluginInfo(meta, obj, ep.value, builtin, dist.version if dist else "")
    return dict(sorted(found.items(), key=lambda kv: (kv[1].meta.patch or 99, kv[0])))


PRESETS = {"vanilla": "none", "series": "all"}


def parse_selection(spec: str, plugins: dict[str, PluginInfo], without: tuple[str, ...] = ()) -> list[str]:
    """``all``, ``none``, ``1,7-11``, names, or a preset (``vanilla``, ``series``);
    ``series``/``all`` mean the 17 patches (third-party plugins are named explicitly)."""
    spec = PRESETS.get(spec.strip(), spec.strip())
    by_patch = {p.meta.patch: name for name, p in plugins.items() if p.meta.patch}
    chosen: list[str] = []
    if spec in ("all", "series"):
        chosen = [by_patch[n] for n in sorted(by_patch)]
    elif spec not in ("none", ""):
        for item in (s.strip() for s in spec.split(",")):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
                for n in range(lo, hi + 1):
                    if n not in by_patch:
                        raise PluginError(f"no installed plugin implements patch {n}")
                    chosen.append(by_patch[n])
            elif item in plugins:
                chosen.append(item)
            else:
                raise PluginError(f"unknown plugin {item!r}; `worldswitch plugins` lists them")
    for name in without:
        if name not in plugins:
            raise PluginError(f"unknown plugin {name!r} in --without")
    out = []
    for name in chosen:
        if name not in out and name not in without:
            out.append(name)
    return sorted(out, key=lambda n: (plugins[n].meta.patch or 99, n))


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
            pm.register(plugins[name].module, name=name)
        except pluggy.PluginValidationError as e:
            raise PluginError(f"plugin {name!r} does not fit the hook specifications: {e}") from None
    return pm


def implemented_hooks(module: Any) -> list[str]:
    pm = pluggy.PluginManager("worldswitch")
    pm.add_hookspecs(hookspecs)
    pm.register(module)
    return sorted(caller.name for caller in pm.get_hookcallers(module) or [])
