"""Resolve pluggy hooks once per run into plain callables for the hot path.

pluggy stays the registry (discovery, ordering, validation, listing). A per-trap call
through ``pm.hook.X`` costs as much as a whole trap, so the run loop calls what this
module resolves instead: None when nobody implements the hook, the implementation
itself when there is one, or a small loop that combines several answers by the hook's
rule (:data:`worldswitch.hookspecs.Combine`): ``first`` non-None answer (pluggy's
order), ``narrow`` (AND of masks), ``widen`` (OR of masks), ``any`` / ``all`` (of
booleans), or ``each`` (events: call all). Apart from ``first``, the combined answer
does not depend on the order of the implementations. Wrappers fall back to the real
pluggy call, whose results are combined the same way.

A hook whose spec declares a result (``int | None``, ``bool | None``,
``FindResult | None``) gets each implementation wrapped in a check, so a plugin
returning the wrong type fails as a named ``PluginFailure`` here instead of as a
traceback deep in the core. ``bool`` passes only where ``bool`` is declared (it is an
``int`` too).
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from collections.abc import Callable
from typing import Any

import pluggy

from .errors import PluginFailure
from .hookspecs import per_trap_hooks

#: (classes a result may have besides None, how the spec says it)
Check = tuple[tuple[type, ...], str]


@functools.cache
def result_check(hook: str, spec_function: Callable[..., Any]) -> Check | None:
    """What a hook's results are checked against; None when unchecked (no result, or
    an annotation that is not a plain class or union of classes)."""
    from .kvm.sys_regs import FindResult  # here: the kvm package imports this module

    text = spec_function.__annotations__.get("return")
    try:
        # the annotations are strings (``from __future__ import annotations``) naming
        # classes imported for type checking only: evaluate once per spec
        ann = eval(text, {**spec_function.__globals__, "FindResult": FindResult}) if isinstance(text, str) else text
    except Exception:  # noqa: BLE001 - an annotation we cannot evaluate is left unchecked
        return None
    union = typing.get_origin(ann) in (typing.Union, types.UnionType)
    classes = tuple(a for a in (typing.get_args(ann) if union else (ann,)) if a is not None and a is not type(None))
    if not classes or not all(isinstance(c, type) for c in classes):
        return None
    return classes, str(text)


def _fits(res: Any, classes: tuple[type, ...]) -> bool:
    return isinstance(res, classes) and (bool in classes or not isinstance(res, bool))


def _plugin_name(impl: Any) -> str:
    name = impl.plugin_name
    # pluggy names an object registered without a name by its id(): its class says more
    return type(impl.plugin).__name__ if name.isdigit() else name


def _refuse(who: str, res: Any, hook: str, expected: str) -> PluginFailure:
    try:
        shown = repr(res).replace("\n", " ")  # one line, whatever the plugin's object prints
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real failure
        shown = f"a {type(res).__name__}"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return PluginFailure(f"{who} returned {shown} from hook {hook}; expected {expected}")


def _adapt(impl: Any, argnames: tuple[str, ...]) -> Callable[..., Any]:
    """Call ``impl`` positionally with the spec's arguments, passing only those it takes."""
    func = impl.function
    if tuple(impl.argnames) == argnames:
        return func
    picks = [argnames.index(a) for a in impl.argnames]

    def call(*args: Any) -> Any:
        return func(*(args[i] for i in picks))

    return call


def _checked(impl: Any, argnames: tuple[str, ...], hook: str, check: Check) -> Callable[..., Any]:
    """``impl`` behind its result check: one closure, and on the hot path (None, or a
    result of exactly a declared class) one identity test and one tuple lookup."""
    func = _adapt(impl, argnames)
    classes, expected = check
    who = f"plugin {_plugin_name(impl)!r}"

    def slow(res: Any) -> Any:  # a subclass of a declared class (not bool for int), or a failure
        if _fits(res, classes):
            return res
        raise _refuse(who, res, hook, expected)

    # fixed arities skip building an argument tuple: a third of the wrapper's cost per trap
    if len(argnames) == 1:
        def checked1(a: Any) -> Any:
            res = func(a)
            return res if res is None or type(res) in classes else slow(res)

        return checked1
    if len(argnames) == 2:
        def checked2(a: Any, b: Any) -> Any:
            res = func(a, b)
            return res if res is None or type(res) in classes else slow(res)

        return checked2

    def checked(*args: Any) -> Any:
        res = func(*args)
        return res if res is None or type(res) in classes else slow(res)

    return checked


def _combine(rule: str, results: list[Any]) -> Any:
    """The answer of several implementations (None ones left out), by the hook's rule."""
    answers = [r for r in results if r is not None]
    if rule == "each" or not answers:
        return None
    if rule == "first":
        return answers[0]
    if rule == "narrow":
        return functools.reduce(operator.and_, answers)
    if rule == "widen":
        return functools.reduce(operator.or_, answers)
    return any(answers) if rule == "any" else all(answers)


def resolve_hook(caller: pluggy.HookCaller, rule: str) -> Callable[..., Any] | None:
    impls = caller.get_hookimpls()
    if not impls:
        return None
    spec = caller.spec
    assert spec is not None
    argnames = tuple(spec.argnames)
    check = result_check(caller.name, spec.function)
    if any(i.hookwrapper or i.wrapper for i in impls):
        # pluggy calls the implementations itself: check what comes out, naming every candidate
        who = "one of the plugins " + ", ".join(repr(_plugin_name(i)) for i in impls)

        def via_pluggy(*args: Any) -> Any:
            out = caller(**dict(zip(argnames, args)))
            results = [out] if rule == "first" else out
            for res in results:
                if check is not None and res is not None and not _fits(res, check[0]):
                    raise _refuse(who, res, caller.name, check[1])
            return _combine(rule, results)

        return via_pluggy
    # pluggy calls the last registered (and tryfirst) implementations first
    if check is None:
        funcs = [_adapt(i, argnames) for i in reversed(impls)]
    else:
        funcs = [_checked(i, argnames, caller.name, check) for i in reversed(impls)]
    if len(funcs) == 1:
        return funcs[0]
    if rule == "first":
        def first(*args: Any) -> Any:
            for f in funcs:
                res = f(*args)
                if res is not None:
                    return res
            return None

        return first

    def combined(*args: Any) -> Any:
        return _combine(rule, [f(*args) for f in funcs])

    return combined


class Hooks:
    """The resolved per-trap hooks: an attribute per hook of
    :func:`~worldswitch.hookspecs.per_trap_hooks`, None when unimplemented."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm
        for name, rule in per_trap_hooks().items():
            setattr(self, name, resolve_hook(getattr(pm.hook, name), rule) if pm is not None else None)

    def __getattr__(self, name: str) -> Callable[..., Any] | None:
        raise AttributeError(f"{name!r} is not a per-trap hook (worldswitch.hookspecs.per_trap_hooks)")

    def call_setup(self, name: str, **kwargs: Any) -> list[Any]:
        """A setup hook, through pluggy itself (once per run, so its cost is irrelevant)."""
        if self.pm is None:
            return []
        return getattr(self.pm.hook, name)(**kwargs)
