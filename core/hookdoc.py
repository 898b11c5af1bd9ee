"""The hook reference (``docs/hooks.md``), rendered from the specs themselves.

``worldswitch hooks`` prints it; ``tests/test_hookdoc.py`` fails when the committed file
differs from what the specs say, so the reference cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any

from . import hookspecs

GROUPS = (
    ("Set-up hooks", "Once per run, through pluggy; every implementation is called."),
    ("Questions", "Asked on the world-switch path, per trap. With no answer the vanilla v4.5 path runs."),
    ("Events", "Per trap; every implementation is called and its return value ignored."),
)
COMBINE = {
    "first": "the first non-None answer wins, in pluggy's order (last registered, and `tryfirst`, first)",
    "narrow": "answers are ANDed: each narrows the mask; the order of plugins does not matter",
    "widen": "answers are ORed: each widens the mask; the order of plugins does not matter",
    "any": "True if any answer is True (None answers are ignored); the order does not matter",
    "all": "False if any answer is False (None answers are ignored); the order does not matter",
    "each": "every implementation is called; results are ignored",
}


def specs() -> list[tuple[str, Callable[..., Any]]]:
    """Every hook spec, in the order of the spec module."""
    return [(name, fn) for name, fn in vars(hookspecs).items()
            if name.startswith("ws_") and hasattr(fn, "worldswitch_spec")]


def signature(name: str, fn: Callable[..., Any]) -> str:
    """As written in the spec (the annotations are strings: shown without quotes)."""
    ann = fn.__annotations__
    params = ", ".join(f"{p}: {ann[p]}" for p in inspect.signature(fn).parameters)
    return f"def {name}({params}) -> {ann['return']}"


def _markdown(text: str) -> str:
    """reST roles and literals as Markdown code."""
    return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text).replace("``", "`")


def _group(fn: Callable[..., Any]) -> str:
    combine = getattr(fn, "ws_combine", None)
    return GROUPS[0][0] if combine is None else GROUPS[2][0] if combine == "each" else GROUPS[1][0]


def _docstring(fn: Callable[..., Any]) -> str:
    """The docstring as Markdown: an ``Example::`` block becomes a Python code block."""
    text = inspect.cleandoc(fn.__doc__ or "")
    head, _, example = text.partition("Example::")
    out = _markdown(head.strip())
    if example.strip():
        out += "\n\nExample:\n\n```python\n" + textwrap.dedent(example).strip("\n") + "\n```"
    return out


def render(implementers: dict[str, list[str]] | None = None) -> str:
    """The reference as Markdown. ``implementers`` maps a hook to the built-in plugins
    implementing it (discovered when not given)."""
    if implementers is None:
        from .plugin import discover

        implementers = {}
        for name, info in discover().items():
            if info.builtin:
                for hook in info.hooks:
                    implementers.setdefault(hook, []).append(
                        f"`{name}` (patch {info.meta.patch})" if info.meta.patch else f"`{name}`")
    lines = ["# worldswitch hook reference", "",
             "Generated from `core/hookspecs.py` by `worldswitch hooks`; do not edit by hand.", "",
             _markdown(inspect.cleandoc(hookspecs.__doc__ or "")), ""]
    by_group: dict[str, list[tuple[str, Callable[..., Any]]]] = {}
    for name, fn in specs():
        by_group.setdefault(_group(fn), []).append((name, fn))
    for title, what in GROUPS:
        lines += [f"## {title}", "", what, ""]
        for name, fn in by_group.get(title, []):
            combine = getattr(fn, "ws_combine", None)
            lines += [f"### {name}", "", "```python", signature(name, fn), "```", "", _docstring(fn), ""]
            if combine is not None:
                lines += [f"Several implementations: {COMBINE[combine]}.", ""]
            built_in = implementers.get(name)
            lines += [f"Built-in implementations: {', '.join(built_in) if built_in else 'none'}.", ""]
    return "\n".join(lines).rstrip() + "\n"
