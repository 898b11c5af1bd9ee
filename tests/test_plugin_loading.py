"""Broken, clashing and misbehaving plugins: reported once, named, never a traceback.

Third-party plugins are "installed" under tmp_path (a module file per plugin and one
``wsfake-0.1.dist-info`` with their entry points) on sys.path; the discovery cache is
cleared before and after, so other tests see only what is really installed.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import FakeDist, plugin_source
from worldswitch import plugin
from worldswitch.api import run_guest
from worldswitch.cli import main
from worldswitch.errors import PluginError, PluginFailure
from worldswitch.plugin import PluginInfo, PluginMeta, discover, discovery_problems, hookimpl, parse_selection

TIMER_HOOK = "@hookimpl\ndef ws_timer_skip_active_write(timer, phys_active):\n    return not phys_active\n"


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def one_line_error(err: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("worldswitch: warning:")]


def builtins() -> dict[int, str]:
    return {i.meta.patch: n for n, i in discover().items() if i.builtin and i.meta.patch}


# ---- broken plugins -----------------------------------------------------------------
def test_import_error_is_reported_once_and_the_rest_load(fake: FakeDist, capsys: pytest.CaptureFixture) -> None:
    fake.add("broken", "raise ImportError('No module named frobnitz')\n")
    fake.add("fine", plugin_source("fine-opt", TIMER_HOOK))
    found = discover()
    assert "fine-opt" in found and sorted(builtins()) == list(range(1, 18))
    want = ("worldswitch: warning: plugin entry point 'broken' (wsfake_broken) failed to load: "
            "ImportError: No module named frobnitz; the other plugins are loaded")
    assert warnings(capsys.readouterr().err) == [want]
    assert discovery_problems() == [want.removeprefix("worldswitch: warning: ")
                                    .removesuffix("; the other plugins are loaded")]
    r = run_guest("null_hvc-256", "A")
    assert r.iterations == 257
    assert run_guest("null_hvc-256", "A", patches="fine-opt").counts["IRQCHIP_STATE_CALL"] == 0
    assert capsys.readouterr().err == ""  # once per process, not per discover()

    plugin.set_strict(True)
    with pytest.raises(PluginError, match=r"entry point 'broken' \(wsfake_broken\) failed to load: ImportError"):
        discover()
    with pytest.raises(PluginError, match="'broken'"):
        run_guest("null_hvc-256", "A")
    plugin.set_strict(False)
    assert "fine-opt" in discover()


def test_sys_exit_at_import_is_a_load_failure(fake: FakeDist) -> None:
    fake.add("quitter", "import sys\nsys.exit(3)\n")
    assert sum(i.builtin for i in discover().values()) == 17
    assert discovery_problems() == ["plugin entry point 'quitter' (wsfake_quitter) failed to load: "
                                    "it called sys.exit(3)"]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("X = 1\n", "it has no WORLDSWITCH_PLUGIN = PluginMeta(...)"),
        (plugin_source("odd", kind="speedup"), "it declares kind 'speedup'"),
        (plugin_source("all"), "its name 'all' is not a plugin name"),
        (plugin_source("7up"), "its name '7up' is not a plugin name"),
        (plugin_source("zero", patch=0), "it declares patch 0"),
        (plugin_source("truthy", patch=True), "it declares patch True"),
        (plugin_source("stringy", requires="vgic-v2-live-lrs"), "it declares requires='vgic-v2-live-lrs'"),
    ],
)
def test_invalid_metadata_is_a_load_failure(fake: FakeDist, source: str, reason: str) -> None:
    value = fake.add("bad-meta", source)
    assert sum(i.builtin for i in discover().values()) == 17
    assert discovery_problems()[0].startswith(f"plugin entry point 'bad-meta' ({value}) failed to load: {reason}")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("@hookimpl\ndef ws_vgic_lrs_to_save(cpu):\n    return 0\n", "{'cpu'}"),
        ("@hookimpl\ndef vgic_v9_lrs_to_save(vgic_cpu):\n    return 0\n", "unknown hook 'vgic_v9_lrs_to_save'"),
    ],
)
def test_hooks_that_do_not_fit_the_specs(fake: FakeDist, body: str, detail: str) -> None:
    fake.add("misfit", plugin_source("misfit", body))
    fake.add("fine", plugin_source("fine-opt", TIMER_HOOK))
    code, out, err = invoke("plugins", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert "misfit" not in rows and rows["fine-opt"]["hooks"] == ["ws_timer_skip_active_write"]
    (line,) = warnings(err)
    assert "plugin entry point 'misfit' (wsfake_misfit) failed to load: it does not fit the hook specifications" in line
    assert detail in line
    assert [p for p in discovery_problems() if "misfit" in p] == [line.removeprefix("worldswitch: warning: ")
                                                                  .removesuffix("; the other plugins are loaded")]


def test_a_broken_plugin_does_not_stop_a_cli_run(fake: FakeDist) -> None:
    fake.add("broken", "raise RuntimeError('half-installed')\n")
    code, out, err = invoke("run", "null_hvc-256", "--json")
    assert code == 0 and json.loads(out)["iterations"] == 257
    assert len(warnings(err)) == 1 and "RuntimeError: half-installed" in err


def _strict_flag_wired() -> bool:
    return any("--strict-plugins" in p.opts for p in main.params)


@pytest.mark.xfail(not _strict_flag_wired(), reason="the CLI owner has not added --strict-plugins yet", strict=True)
def test_strict_plugins_flag(fake: FakeDist) -> None:
    fake.add("broken", "raise ImportError('nope')\n")
    code, _, err = invoke("--strict-plugins", "run", "null_hvc-256")
    assert code == 4 and "plugin entry point 'broken' (wsfake_broken) failed to load" in err
    one_line_error(err)
    code, _, err = invoke("run", "null_hvc-256")  # without the flag: warn, run
    assert code == 0 and len(warnings(err)) == 1


# ---- unique names and numbers ----------------------------------------------------------
def test_a_third_party_cannot_take_a_builtin_name(fake: FakeDist) -> None:
    builtin_entry = discover()["vgic-v2-live-lrs"].entry_point
    fake.add("impostor", plugin_source("vgic-v2-live-lrs", TIMER_HOOK))
    found = discover()
    assert found["vgic-v2-live-lrs"].builtin and found["vgic-v2-live-lrs"].entry_point == builtin_entry
    assert discovery_problems() == [f"plugin entry point 'impostor' (wsfake_impostor) failed to load: its name "
                                    f"'vgic-v2-live-lrs' belongs to the built-in plugin ({builtin_entry})"]


def test_two_third_parties_with_one_name_keep_the_first(fake: FakeDist) -> None:
    fake.add("first", plugin_source("twin", TIMER_HOOK))
    fake.add("second", plugin_source("twin", TIMER_HOOK))
    assert discover()["twin"].entry_point == "wsfake_first"
    assert discovery_problems() == ["plugin entry point 'second' (wsfake_second) failed to load: its name 'twin' "
                                    "belongs to another plugin (wsfake_first)"]


def test_claiming_a_builtin_patch_number(fake: FakeDist, capsys: pytest.CaptureFixture) -> None:
    fake.add("evil", plugin_source("evil", TIMER_HOOK, patch=7))
    found = discover()
    assert "evil" in found and not found["evil"].builtin
    claim = ("plugin 'evil' (wsfake_evil) claims patch 7, which the built-in 'vgic-v2-live-lrs' implements: "
             "`--patches 7` keeps meaning the built-in; select it by name")
    assert warnings(capsys.readouterr().err) == [f"worldswitch: warning: {claim}"]
    assert discovery_problems() == [claim]
    assert parse_selection("7", found) == ["vgic-v2-live-lrs"]
    assert parse_selection("evil", found) == ["evil"]
    assert "evil" not in parse_selection("series", found) and "evil" not in parse_selection("all", found)
    assert parse_selection("7,evil", found) == ["evil", "vgic-v2-live-lrs"]  # same patch number: by name
    discover()
    assert capsys.readouterr().err == ""
    plugin.set_strict(True)
    with pytest.raises(PluginError, match="claims patch 7"):
        discover()


def test_numbers_beyond_the_series(fake: FakeDist) -> None:
    fake.add("a", plugin_source("follow-up-a", TIMER_HOOK, patch=18))
    fake.add("b", plugin_source("follow-up-b", TIMER_HOOK, patch=18))
    fake.add("c", plugin_source("follow-up-c", TIMER_HOOK, patch=19))
    found = discover()
    assert discovery_problems() == []
    beyond = [n for n, i in found.items() if (i.meta.patch or 0) > 17]
    assert beyond == ["follow-up-a", "follow-up-b", "follow-up-c"]  # sorted after the series
    assert parse_selection("19", found) == ["follow-up-c"]
    with pytest.raises(PluginError, match="patch 18 is claimed by the third-party plugins 'follow-up-a' and "
                                          "'follow-up-b'; select one by name"):
        parse_selection("18", found)
    assert parse_selection("follow-up-b", found) == ["follow-up-b"]
    assert len(parse_selection("series", found)) == 17


# ---- selection grammar ----------------------------------------------------------------
def _with(*extra: PluginMeta) -> dict[str, PluginInfo]:
    """The installed plugins plus some that exist only in this dict (no entry point)."""
    found = dict(discover())
    for m in extra:
        found[m.name] = PluginInfo(m, object(), f"test:{m.name}", builtin=False)
    return found


def _meta(name: str, **kw: object) -> PluginMeta:
    return PluginMeta(name=name, title="test", subsystem="test", kind="optimization", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("series,my-opt", list(range(1, 18)) + ["my-opt"]),
        ("my-opt , series", list(range(1, 18)) + ["my-opt"]),
        ("vanilla,7", [7]),
        ("none,7", [7]),
        ("all,none", list(range(1, 18))),
        ("series,all", list(range(1, 18))),
        ("none", []),
        ("vanilla", []),
        ("", []),
        ("  ", []),
        (" 1 , 7 - 9 ", [1, 7, 8, 9]),
        ("9,8,7,7", [7, 8, 9]),
        ("3-3", [3]),
    ],
)
def test_selection_grammar(spec: str, want: list[int | str]) -> None:
    found = _with(_meta("my-opt"))
    names = builtins()
    assert parse_selection(spec, found) == [names[w] if isinstance(w, int) else w for w in want]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("7-3", "--patches '7-3': a range goes low to high (3-7)"),
        ("0", "no installed plugin implements patch 0"),
        ("16-18", "no installed plugin implements patch 18"),
        ("series,nope", "unknown plugin 'nope'"),
        ("-3", "unknown plugin '-3'"),
    ],
)
def test_selection_errors(spec: str, message: str) -> None:
    with pytest.raises(PluginError) as e:
        parse_selection(spec, _with())
    assert message in str(e.value)


def test_a_requirement_that_is_not_installed() -> None:
    found = _with(_meta("needy", requires=("ghost",)), _meta("needs-needy", requires=("needy",)))
    with pytest.raises(PluginError, match="plugin 'needy' requires 'ghost', which is not installed"):
        parse_selection("needy", found)
    with pytest.raises(PluginError, match="plugin 'needy' requires 'ghost', which is not installed"):
        parse_selection("needs-needy", found)  # transitively: ablate walks the whole closure
    assert parse_selection("series", found, without=()) == parse_selection("all", _with())


@pytest.mark.parametrize("command", [("run", "null_hvc-256"), ("ablate", "--guests", "null_hvc", "--platforms", "A")])
def test_cli_requirement_not_installed(fake: FakeDist, command: tuple[str, ...]) -> None:
    fake.add("needy", plugin_source("needy", TIMER_HOOK, requires=("ghost",)))
    code, _, err = invoke(*command, "--patches", "needy")
    assert code == 4 and "plugin 'needy' requires 'ghost', which is not installed" in err
    one_line_error(err)


@pytest.mark.parametrize(("spec", "message"), [("7-3", "a range goes low to high (3-7)"),
                                              ("0", "no installed plugin implements patch 0")])
def test_cli_selection_errors(spec: str, message: str) -> None:
    code, _, err = invoke("run", "null_hvc-256", "--patches", spec)
    assert code == 4 and message in err
    one_line_error(err)


# ---- results of the wrong type --------------------------------------------------------
class StrMask:
    @hookimpl
    def ws_vgic_lrs_to_save(self, vgic_cpu):
        return "all"


class BoolMask:
    @hookimpl
    def ws_vgic_lrs_to_save(self, vgic_cpu):
        return True


class IntSkip:
    @hookimpl
    def ws_timer_skip_active_write(self, timer, phys_active):
        return 1


class TupleFind:
    @hookimpl
    def ws_find_sys_reg(self, params, table):
        return (None, ())


@pytest.mark.parametrize(
    ("obj", "guest", "message"),
    [
        (StrMask(), "null_hvc-256", "plugin 'StrMask' returned 'all' from hook ws_vgic_lrs_to_save; "
                                    "expected int | None"),
        (BoolMask(), "null_hvc-256", "plugin 'BoolMask' returned True from hook ws_vgic_lrs_to_save; "
                                     "expected int | None"),
        (IntSkip(), "null_hvc-256", "plugin 'IntSkip' returned 1 from hook ws_timer_skip_active_write; "
                                    "expected bool | None"),
        (TupleFind(), "sysreg-256", "plugin 'TupleFind' returned (None, ()) from hook ws_find_sys_reg; "
                                    "expected FindResult | None"),
    ],
)
def test_wrong_result_types_are_named_plugin_failures(obj: object, guest: str, message: str) -> None:
    with pytest.raises(PluginFailure) as e:
        run_guest(guest, "A", extra_plugins=(obj,))
    assert str(e.value) == message


class Mask(enum.IntFlag):
    ALL = 0xF


class AllLrs:
    """Returns what vanilla does, as an int subclass: fine (only bool is refused)."""

    @hookimpl
    def ws_vgic_lrs_to_save(self, vgic_cpu):
        return Mask(vgic_cpu.all_lrs)

    @hookimpl
    def ws_timer_skip_active_write(self, timer, phys_active):
        return None


def test_right_result_types_pass() -> None:
    vanilla = run_guest("self_sgi-256", "A")
    mine = run_guest("self_sgi-256", "A", extra_plugins=(AllLrs(),))
    assert mine.counts == vanilla.counts and mine.guest_visible == vanilla.guest_visible


def test_wrong_result_type_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from worldswitch import api

    orig = api.run_guest
    monkeypatch.setattr(api, "run_guest", lambda *a, **k: orig(*a, extra_plugins=(StrMask(),), **k))
    code, _, err = invoke("run", "null_hvc-256")
    assert code == 7 and "plugin 'StrMask' returned 'all' from hook ws_vgic_lrs_to_save" in err
    one_line_error(err)


def test_an_entry_point_plugin_is_named_by_its_name(fake: FakeDist) -> None:
    fake.add("stringy", plugin_source("stringy", "@hookimpl\ndef ws_vgic_lrs_to_save(vgic_cpu):\n    return '0'\n"))
    with pytest.raises(PluginFailure, match="plugin 'stringy' returned '0' from hook ws_vgic_lrs_to_save"):
        run_guest("null_hvc-256", "A", patches="stringy")


# ---- -p MODULE, -p no:NAME, --disable-plugin-autoload ------------------------------------
def test_p_loads_a_module_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ws_quick_try.py").write_text(plugin_source("quick-try", TIMER_HOOK))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, out, err = invoke("-p", "ws_quick_try", "run", "null_hvc-256", "--patches", "quick-try", "--json")
        assert code == 0, err
        assert json.loads(out)["plugins"] == ["quick-try"] and json.loads(out)["counts"]["GICD_WRITE"] == 0
        code, _, err = invoke("-p", "ws_not_there", "plugins")
        assert code == 4 and "-p ws_not_there: cannot load it: ModuleNotFoundError" in err
    finally:
        plugin.configure()


def test_p_no_leaves_a_plugin_out(fake: FakeDist) -> None:
    fake.add("extra", plugin_source("extra-opt", TIMER_HOOK))
    try:
        code, out, _ = invoke("-p", "no:extra-opt", "plugins", "--json")
        assert code == 0 and "extra-opt" not in {r["name"] for r in json.loads(out)}
        code, out, _ = invoke("--disable-plugin-autoload", "plugins", "--json")
        names = {r["name"] for r in json.loads(out)}
        assert code == 0 and "extra-opt" not in names and len(names) == 17
        code, _, err = invoke("-p", "no:nothing-like-it", "plugins")
        assert code == 4 and "no plugin is named 'nothing-like-it'" in err
    finally:
        plugin.configure()
