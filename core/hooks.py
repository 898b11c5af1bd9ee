"""Resolve pluggy hooks once per run into plain callables for the hot path.

pluggy stays the registry (discovery, ordering, validation, listing). A per-trap call
through ``pm.hook.X`` costs as much as a whole trap, so the run loop calls what this
module resolves instead: None when nobody implements the hook, the implementation
itself when there is one, or a small loop keeping pluggy's order and ``firstresult``
semantics. Wrappers fall back to the real pluggy call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from .hookspecs import PER_TRAP_HOOKS


def _adapt(impl: Any, argnames: tuple[str, ...]) -> Callable[..., Any]:
    """Call ``impl`` positionally with the spec's arguments, passing only those it takes."""
    func = impl.function
    if tuple(impl.argnames) == argnames:
        return func
    picks = [argnames.index(a) for a in impl.argnames]

    def call(*args: Any) -> Any:
        return func(*(args[i] for i in picks))

    return call


def resolve_hook(caller: pluggy.HookCaller) -> Callable[..., Any] | None:
    impls = caller.get_hookimpls()
    if not impls:
        return None
    spec = caller.spec
    assert spec is not None
    argnames = tuple(spec.argnames)
    if any(i.hookwrapper or i.wrapper for i in impls):
        def via_pluggy(*args: Any) -> Any:
            return caller(**dict(zip(argnames, args)))

        return via_pluggy
    # pluggy calls the last registered (and tryfirst) implementations first
    funcs = [_adapt(i, argnames) for i in reversed(impls)]
    firstresult = spec.opts.get("firstresult", False)
    if len(funcs) == 1:
        return funcs[0]
    if firstresult:
        def first(*args: Any) -> Any:
            for f in funcs:
                res = f(*args)
                if res is not None:
                    return res
            return None

        return first

    def each(*args: Any) -> list[Any]:
        return [r for r in (f(*args) for f in funcs) if r is not None]

    return each


class Hooks:
    """The resolved per-trap hooks: an attribute per hook, None when unimplemented."""

    kvm_find_sys_reg: Callable[..., Any] | None = None
    kvm_find_coproc_reg: Callable[..., Any] | None = None
    kvm_timer_skip_active_write: Callable[..., Any] | None = None
    kvm_timer_update_irq: Callable[..., Any] | None = None
    vgic_v2_lrs_to_save: Callable[..., Any] | None = None
    vgic_v2_save_maint_int_state: Callable[..., Any] | None = None
    vgic_v2_save_elrsr: Callable[..., Any] | None = None
    vgic_v2_lrs_to_read: Callable[..., Any] | None = None
    vgic_v2_lrs_to_wipe: Callable[..., Any] | None = None
    vgic_v2_lrs_to_restore: Callable[..., Any] | None = None
    vgic_v3_lrs_to_save: Callable[..., Any] | None = None
    vgic_v3_save_maint_int_state: Callable[..., Any] | None = None
    vgic_v3_lrs_to_read: Callable[..., Any] | None = None
    vgic_v3_lrs_to_wipe: Callable[..., Any] | None = None
    vgic_v3_lrs_to_restore: Callable[..., Any] | None = None
    vgic_v3_save_ap0rn: Callable[..., Any] | None = None
    ws_guest_exit: Callable[..., Any] | None = None
    ws_guest_enter: Callable[..., Any] | None = None
    ws_hvc: Callable[..., Any] | None = None
    ws_sysreg_trap: Callable[..., Any] | None = None
    ws_mmio_trap: Callable[..., Any] | None = None
    ws_wfi: Callable[..., Any] | None = None

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm
        if pm is not None:
            for name in PER_TRAP_HOOKS:
                setattr(self, name, resolve_hook(getattr(pm.hook, name)))

    def call_setup(self, name: str, **kwargs: Any) -> list[Any]:
        """A setup hook, through pluggy itself (once per run, so its cost is irrelevant)."""
        if self.pm is None:
            return []
        return getattr(self.pm.hook, name)(**kwargs)
