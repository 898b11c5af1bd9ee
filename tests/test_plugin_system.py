"""Registration, selection, dependencies, failures, and hook resolution."""

from __future__ import annotations

import pluggy
import pytest
from conftest import cached_run
from worldswitch import hookspecs
from worldswitch.api import run_guest
from worldswitch.errors import PluginError, PluginFailure
from worldswitch.hooks import resolve_hook
from worldswitch.plugin import discover, hookimpl, parse_selection


def test_seventeen_builtins_through_entry_points() -> None:
    found = discover()
    series = {i.meta.patch: name for name, i in found.items() if i.builtin and i.meta.patch}
    assert sorted(series) == list(range(1, 18))
    for name, info in found.items():
        # a third-party plugin installed beside them (examples/ in CI) is not one of the 17
        assert info.entry_point.startswith("worldswitch.plugins.") == info.builtin
        assert info.meta.kind in ("optimization", "correctness", "refactor")
        for req in info.meta.requires:
            assert req in found, f"{name} requires unknown {req}"
    assert found[series[4]].meta.kind == found[series[9]].meta.kind == "refactor"


def test_selection_syntax() -> None:
    found = discover()
    names = {i.meta.patch: n for n, i in found.items() if i.meta.patch}
    assert parse_selection("none", found) == [] == parse_selection("vanilla", found)
    assert parse_selection("series", found) == parse_selection("all", found) == [names[n] for n in range(1, 18)]
    assert parse_selection("1,7-9", found) == [names[1], names[7], names[8], names[9]]
    assert parse_selection("vgic-v2-sgir-first,6", found) == [names[6], names[12]]
    assert parse_selection("all", found, without=(names[7],)) == [names[n] for n in range(1, 18) if n != 7]
    with pytest.raises(PluginError, match="unknown plugin 'nope'"):
        parse_selection("nope", found)
    with pytest.raises(PluginError, match="patch 18"):
        parse_selection("18", found)


def _requirements() -> list[tuple[str, str]]:
    return [(n, r) for n, i in discover().items() for r in i.meta.requires]


@pytest.mark.parametrize(("plugin", "requirement"), _requirements())
def test_dependency_refused_without_force(plugin: str, requirement: str) -> None:
    found = discover()
    closure = [plugin]
    todo = [plugin]
    while todo:  # everything the plugin needs, transitively, except the one under test
        for r in found[todo.pop()].meta.requires:
            if r not in closure and r != requirement:
                closure.append(r)
                todo.append(r)
    guest = "aarch32_pmselr-256" if found[plugin].meta.subsystem == "cp15" else "self_sgi-256"
    platform = "A15-32" if guest.startswith("aarch32") else "A"
    with pytest.raises(PluginError, match=f"requires '{requirement}'"):
        run_guest(guest, platform, patches=",".join(closure))


@pytest.mark.parametrize(("plugin", "requirement"),
                         [pr for pr in _requirements() if discover()[pr[0]].meta.subsystem != "cp15"])
def test_forced_arm64_plugins_keep_the_guest_view(plugin: str, requirement: str) -> None:
    """The documented failure mode of every forced arm64 plugin: it runs, counts change,
    the guest sees exactly what vanilla shows it (cp15 ones: tests/test_aarch32.py)."""
    assert discover()[plugin].meta.force_note
    for platform in ("A", "C-v2", "C-v3"):
        forced = cached_run("self_sgi-256", platform, plugin, True)
        assert forced.forced
        assert forced.guest_visible == cached_run("self_sgi-256", platform).guest_visible


def test_patch11_forced_without_10_reads_and_wipes() -> None:
    # documented: every saved LR is read back, then wiped (one more write than 7-10)
    from conftest import per_iteration

    s = per_iteration("self_sgi", "A", "7,8,9,11", force=True)
    assert (s["GICH_READ"], s["GICH_WRITE"]) == (4, 6)


class Boom:
    @hookimpl
    def ws_vgic_lrs_to_save(self, vgic_cpu):
        raise ZeroDivisionError("deliberate")


def test_plugin_failure_names_plugin_and_hook() -> None:
    with pytest.raises(PluginFailure, match="raised in hook ws_vgic_lrs_to_save: ZeroDivisionError"):
        run_guest("null_hvc-256", "A", extra_plugins=(Boom(),))


_spec = pluggy.HookspecMarker("t")


class Spec:
    """A tiny hook family to compare resolved calls with pluggy's own."""

    @_spec(firstresult=True)
    def pick(self, x):
        """First answer wins."""

    @_spec
    def each(self, x, y):
        """All answers."""


def _pm() -> pluggy.PluginManager:
    impl = pluggy.HookimplMarker("t")
    pm = pluggy.PluginManager("t")
    pm.add_hookspecs(Spec)

    class P1:
        @impl
        def pick(self, x):
            return None if x < 0 else ("p1", x)

        @impl
        def each(self, x, y):
            return x + y

    class P2:
        @impl(tryfirst=True)
        def pick(self, x):
            return ("p2", x) if x > 10 else None

        @impl
        def each(self, y):  # takes a subset of the arguments
            return -y

    class P3:
        @impl(trylast=True)
        def pick(self, x):
            return ("p3", x)

    for p in (P1(), P2(), P3()):
        pm.register(p)
    return pm


@pytest.mark.parametrize("x", [-5, 3, 42])
def test_resolved_hooks_match_pluggy(x: int) -> None:
    pm = _pm()
    assert resolve_hook(pm.hook.pick, "first")(x) == pm.hook.pick(x=x)
    calls = []
    pm.register(type("Spy", (), {"each": _spy(calls)})())
    assert resolve_hook(pm.hook.each, "each")(x, 7) is None  # events: every implementation runs
    assert calls == [(x, 7)]


def _spy(calls: list) -> object:
    @pluggy.HookimplMarker("t")
    def each(self, x, y):
        calls.append((x, y))

    return each


def test_unimplemented_hooks_resolve_to_nothing() -> None:
    pm = pluggy.PluginManager("worldswitch")
    pm.add_hookspecs(hookspecs)
    assert all(resolve_hook(getattr(pm.hook, n), rule) is None for n, rule in hookspecs.per_trap_hooks().items())
    assert {"ws_guest_enter", "ws_guest_exit", "ws_sysreg_trap", "ws_mmio_trap"} <= set(hookspecs.per_trap_hooks())


def _answering(hook: str, answer: object) -> object:
    """A plugin object that answers ``hook`` with ``answer`` whatever it is asked."""
    takes = {"ws_vgic_lrs_to_save": "vgic_cpu", "ws_vgic_v3_save_ap0rn": "vgic_cpu",
             "ws_vgic_lrs_to_restore": "vgic_cpu, live_lrs"}.get(hook, "vgic_cpu, lrs")
    ns: dict = {}
    exec(f"def {hook}(self, {takes}):\n    return answer", {"answer": answer}, ns)
    return type("Answer", (), {hook: hookimpl(ns[hook])})()


@pytest.mark.parametrize(("hook", "answers", "combined"), [
    ("ws_vgic_lrs_to_save", (0b1100, 0b0110, None), 0b0100),  # narrow: AND
    ("ws_vgic_lrs_to_read", (0b1111, 0b0011), 0b0011),
    ("ws_vgic_lrs_to_restore", (0b1111, 0b1010), 0b1010),
    ("ws_vgic_lrs_to_wipe", (0b0001, None, 0b1000), 0b1001),  # widen: OR
    ("ws_vgic_expect_mi", (False, True), True),  # any
    ("ws_vgic_expect_mi", (False, None), False),
    ("ws_vgic_v3_save_ap0rn", (True, False), False),  # all
    ("ws_vgic_lrs_to_save", (None, None), None),  # nobody answers: vanilla
])
def test_answers_combine_the_same_in_every_order(hook: str, answers: tuple, combined: object) -> None:
    import itertools

    args = {"ws_vgic_lrs_to_save": (None,), "ws_vgic_lrs_to_restore": (None, 0),
            "ws_vgic_v3_save_ap0rn": (None,)}.get(hook, (None, 0b1111))
    rule = hookspecs.per_trap_hooks()[hook]
    for order in itertools.permutations(answers):
        pm = pluggy.PluginManager("worldswitch")
        pm.add_hookspecs(hookspecs)
        for a in order:
            pm.register(_answering(hook, a))
        assert resolve_hook(getattr(pm.hook, hook), rule)(*args) == combined, order


def test_the_series_counts_the_same_in_any_registration_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patches 7 and 11 both answer ws_vgic_lrs_to_restore (13 and 16 too): registered in
    reverse, every counter is the same."""
    from worldswitch import plugin

    forward = {(g, p): run_guest(f"{g}-256", p, patches="series").counts
               for g in ("null_hvc", "self_sgi") for p in ("A", "C-v3")}
    original = plugin.make_manager

    def reversed_manager(selected, plugins, force=False):
        return original(list(reversed(selected)), plugins, force)

    monkeypatch.setattr(plugin, "make_manager", reversed_manager)
    for (g, p), counts in forward.items():
        assert run_guest(f"{g}-256", p, patches="series").counts == counts


def test_every_hookspec_has_a_docstring() -> None:
    pm = pluggy.PluginManager("worldswitch")
    pm.add_hookspecs(hookspecs)
    for name in dir(pm.hook):
        if not name.startswith("_"):
            caller = getattr(pm.hook, name)
            assert caller.spec.function.__doc__, name


def test_autoload_switch_hides_third_party(tmp_path, monkeypatch) -> None:
    """A pip-installed third-party plugin is found through the entry point; the
    environment variable turns autoloading off, built-ins stay."""
    import importlib
    import sys

    from worldswitch import plugin as plugin_mod

    pkg = tmp_path / "thirdparty_ws.py"
    pkg.write_text(
        "from worldswitch.plugin import PluginMeta, hookimpl\n"
        "WORLDSWITCH_PLUGIN = PluginMeta(name='my-opt', title='Mine', subsystem='timer', kind='optimization')\n"
        "@hookimpl\ndef ws_timer_skip_active_write(timer, phys_active):\n    return not phys_active\n"
    )
    dist = tmp_path / "thirdparty_ws-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-ws\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[worldswitch.plugins]\nmy-opt = thirdparty_ws\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    plugin_mod._discover.cache_clear()
    try:
        found = discover()
        assert "my-opt" in found and not found["my-opt"].builtin and found["my-opt"].dist_version == "1.2.3"
        r = run_guest("null_hvc-256", "A", patches="my-opt")
        assert r.counts["IRQCHIP_STATE_CALL"] == 0
        monkeypatch.setenv("WORLDSWITCH_DISABLE_PLUGIN_AUTOLOAD", "1")
        assert "my-opt" not in discover() and len(discover()) == 17
    finally:
        plugin_mod._discover.cache_clear()
        sys.modules.pop("thirdparty_ws", None)


@pytest.mark.parametrize(
    ("platform", "patches", "hvc", "sgi"),
    [
        # GICH (R, W) per round trip; each row is a forced combination and what its note says
        ("A", "8", (7, 8), (7, 8)),  # every LR counts as live; MISR/EISR skipped (no EOI requested)
        ("A", "7,8,10", (1, 1), (3, 8)),  # 10 without 9: the model reads ELRSR first anyway
        ("A", "10", (5, 8), (5, 8)),  # without 7 the idle LRs are skipped too
        ("A", "11", (9, 6), (9, 9)),  # read and wipe all four, write only the live ones
        ("C-v3", "13", (2, 1), (9, 9)),  # ICH (R, W): without 7, same as 7+13
        ("C-v3", "14", (10, 9), (10, 9)),
        ("C-v2", "17", (11, 8), (11, 8)),  # AP0Rn skipped on every exit of a GICv2 guest
    ],
)
def test_forced_combinations_do_what_their_notes_say(platform: str, patches: str, hvc: tuple, sgi: tuple) -> None:
    from conftest import per_iteration

    rd, wr = ("GICH_READ", "GICH_WRITE") if platform in ("A", "B") else ("ICH_READ", "ICH_WRITE")
    for guest, want in (("null_hvc", hvc), ("self_sgi", sgi)):
        s = per_iteration(guest, platform, patches, force=True)
        assert (s[rd], s[wr]) == want, guest


class Syndromes:
    def __init__(self) -> None:
        self.esrs: set[int] = set()

    @hookimpl
    def ws_guest_exit(self, vcpu, esr):
        self.esrs.add(esr)


def test_guest_exit_hook_sees_the_decoded_syndrome() -> None:
    """With a ws_guest_exit hook the MMIO syndrome carries the decoded Rt (str w4 for
    GICD_SGIR); without one the same exits are counted without reading PC."""
    rec = Syndromes()
    seen = run_guest("self_sgi-256", "A", extra_plugins=(rec,))
    sgir = (0x24 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (4 << 16) | (1 << 6) | 0x06
    assert sgir in rec.esrs
    assert any(e >> 26 == 0x16 for e in rec.esrs)  # the final HVC
    plain = run_guest("self_sgi-256", "A")
    assert seen.counts == plain.counts and seen.guest_visible == plain.guest_visible

