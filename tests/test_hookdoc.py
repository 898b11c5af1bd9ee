"""The hook reference: every spec documented with its exact signature, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from worldswitch import hookdoc, hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"


def test_every_spec_has_an_entry_with_its_exact_signature() -> None:
    text = DOC.read_text()
    for name, fn in hookdoc.specs():
        assert f"### {name}\n\n```python\n{hookdoc.signature(name, fn)}\n```" in text, name


def test_every_entry_names_a_spec() -> None:
    names = {name for name, _ in hookdoc.specs()}
    documented = re.findall(r"^### (\S+)$", DOC.read_text(), re.M)
    assert sorted(documented) == sorted(names)
    assert len(documented) == len(set(documented))


def test_the_committed_reference_is_what_the_specs_say() -> None:
    # `worldswitch hooks > docs/hooks.md` after changing a spec or a built-in plugin
    assert DOC.read_text() == hookdoc.render()


def test_every_hook_is_typed_documented_and_has_an_example() -> None:
    for name, fn in hookdoc.specs():
        ann = fn.__annotations__
        assert "return" in ann and all(p in ann for p in fn.__code__.co_varnames[: fn.__code__.co_argcount]), name
        assert "Example::" in (fn.__doc__ or ""), name
    # the design card's four event hooks stay
    per_trap = hookspecs.per_trap_hooks()
    for event in ("ws_guest_enter", "ws_guest_exit", "ws_sysreg_trap", "ws_mmio_trap"):
        assert per_trap[event] == "each"
