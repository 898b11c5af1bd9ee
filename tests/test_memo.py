"""The round-trip cache (core/memo.py, core/fasthit.c) never changes a result.

Every seed guest on every platform, under vanilla, the series and each single patch, and
every project-owned guest, runs with the cache and without it: the JSON of the two runs
must be identical but for the wall time. The suite runs with WORLDSWITCH_VERIFY_CACHE set
(conftest.py), so every cached run here also re-executes a share of its hits for real.
"""

from __future__ import annotations

import ctypes
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import GUESTS, PLATFORMS
from worldswitch import fasthit, machine, memo
from worldswitch.api import run_guest
from worldswitch.errors import WorldswitchError
from worldswitch.machine import VmConfig
from worldswitch.plugin import PluginMeta, hookimpl

UNIT = Path(__file__).resolve().parent.parent / "guests" / "unit"
SETS = ("none", "series", *(str(n) for n in range(1, 18)))
SEED = [(g, p) for g in GUESTS for p in PLATFORMS] + [("aarch32_pmselr", "A15-32")]
# the project's own guests, with the machine each needs: (image, lkvm options, platforms)
_ANY = ("A", "C-v3")
UNIT_RUNS = [(name, {}, _ANY) for name in ("boot", "vectors", "irq", "timer", "exitcost", "plumbing",
                                           "plumbing_stp", "mmu", "spinwait")]
UNIT_RUNS += [("smp", {"cpus": 2}, ("A", "C-v2")), ("spinwait", {"cpus": 2, "params": "us=2000 smp"}, _ANY)]
UNIT_CASES = [(name, vm, pf) for name, vm, pfs in UNIT_RUNS for pf in pfs]
BUDGET = {"timeout": 120, "max_instructions": 50_000_000}


def result(r: Any) -> dict[str, Any]:
    out = r.to_json()
    out.pop("wall_seconds")
    return out


def outcome(guest: str, platform: str, **kw: Any) -> Any:
    """The run's JSON, or the error it ends with (a forced set may break a requirement)."""
    try:
        return result(run_guest(guest, platform, **kw))
    except WorldswitchError as e:
        return type(e).__name__, str(e)


def both(guest: str, platform: str, **kw: Any) -> tuple[Any, Any]:
    return outcome(guest, platform, cache=True, **kw), outcome(guest, platform, cache=False, **kw)


@pytest.mark.parametrize(("guest", "platform"), SEED)
def test_seed_guests_identical_with_and_without_cache(guest: str, platform: str) -> None:
    for sel in SETS:
        on, off = both(f"{guest}-1024", platform, patches=sel, force=True)
        assert on == off, f"{guest} on {platform} with {sel}"


@pytest.mark.parametrize(("name", "vm", "platform"), UNIT_CASES,
                         ids=[f"{n}-{v.get('cpus', 1)}-{p}" for n, v, p in UNIT_CASES])
def test_own_guests_identical_with_and_without_cache(name: str, vm: dict[str, Any], platform: str) -> None:
    for sel in ("none", "series"):
        on, off = both(str(UNIT / f"{name}.flat"), platform, patches=sel, vm=VmConfig(**vm), **BUDGET)
        assert on == off, f"{name} on {platform} with {sel}"


class Spy:
    """Keeps the machine of the last run, to look at its cache."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.machine: Any = None
        orig = machine.Machine.run

        def run(m: Any, *a: Any, **k: Any) -> None:
            self.machine = m
            orig(m, *a, **k)

        monkeypatch.setattr(machine.Machine, "run", run)

    @property
    def stats(self) -> dict[str, Any]:
        return self.machine.cache_stats()


def test_a_loop_is_served_by_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    r = run_guest("self_sgi-1024", "A", patches="series")
    s = spy.stats
    assert s["on"] and s["reason"] is None
    # every iteration has three round trips (the SGIR exit, IAR and EOIR through GICV);
    # all but the first few are replays, from a handful of states
    assert s["hits"] > 3 * r.iterations * 0.9
    assert s["states"] < 20


class Sleepy:
    """Every cache of a run starts asleep until its vCPU's ``wake_at``-th exit; counts the
    calls into it made while it sleeps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, wake_at: int) -> None:
        self.caches: list[memo.RoundTripCache] = []
        self.called_asleep = 0
        init, serve = memo.RoundTripCache.__init__, memo.RoundTripCache.serve

        def sleepy_init(c: memo.RoundTripCache, *a: Any, **k: Any) -> None:
            init(c, *a, **k)
            c.live, c.wake_at = False, wake_at
            self.caches.append(c)

        def counted_serve(c: memo.RoundTripCache, *a: Any) -> Any:
            self.called_asleep += not c.live
            return serve(c, *a)

        monkeypatch.setattr(memo.RoundTripCache, "__init__", sleepy_init)
        monkeypatch.setattr(memo.RoundTripCache, "serve", counted_serve)


@pytest.mark.parametrize(("guest", "platform"), [("self_sgi-1024", "A"), ("sysreg-1024", "C-v3"),
                                                 ("aarch32_pmselr-1024", "A15-32")])
def test_a_sleeping_cache_costs_no_call_and_wakes_for_the_loop(monkeypatch: pytest.MonkeyPatch, guest: str,
                                                               platform: str) -> None:
    """Asleep, the machine runs round trips without calling the cache (the 32-bit host,
    which always goes through it, is the exception); the exit that reaches its alarm
    wakes it, and the loop after that is replayed. The result is the uncached one."""
    off = result(run_guest(guest, platform, cache=False))
    sleepy = Sleepy(monkeypatch, wake_at=300)
    r = run_guest(guest, platform)
    assert result(r) == off
    s = r.cache
    assert s["on"] and 300 <= s["slept"] <= 302
    if platform != "A15-32":
        assert sleepy.called_asleep == 0
    assert s["hits"] > 0.9 * (r.iterations - s["slept"])


@pytest.mark.skipif(fasthit.library() is None, reason=f"no compiled hit path: {fasthit.why_not()}")
def test_compiled_and_python_hit_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    compiled = result(run_guest("self_sgi-1024", "C-v3", patches="series"))
    assert spy.stats["compiled"] and spy.stats["hits"] > 1000
    monkeypatch.setattr(fasthit, "library", lambda: None)
    python = result(run_guest("self_sgi-1024", "C-v3", patches="series"))
    assert not spy.stats["compiled"] and spy.stats["hits"] > 1000
    assert compiled == python


@pytest.mark.skipif(fasthit.library() is None, reason=f"no compiled hit path: {fasthit.why_not()}")
def test_the_compiled_table_grows_and_keeps_every_record() -> None:
    """The table starts small (a run that records nothing pays nothing for it) and grows:
    every transition recorded before a growth is still found after it."""
    import unicorn.unicorn_py3.unicorn as ucmod

    ram = (ctypes.c_uint8 * 4096)()
    fast = fasthit.FastHits(fasthit.library(), ucmod.uclib, ctypes.addressof(ram), 0x40000000, 4096, (0, 1),
                            0x5A000000, (), 0, 1)
    keys = [(1, 0x40000000 + 4 * i, i, 0x0A000000, 0) for i in range(1000)]
    assert [fast.add(i % 7, k, i % 5, i, False) for i, k in enumerate(keys)] == list(range(1000))
    assert len(fast.idx) >= 1000  # room for every index ws_pull may report
    assert all(fast.add(i % 7, k, 0, 0, False) == -1 for i, k in enumerate(keys))  # found: recorded already
    assert fast.add(7, keys[0], 0, 0, False) == 1000  # the same key from another state is another record
    assert fast.pull() == ([], -1, False)


def test_verify_every_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    """K = 1: every lookup that finds a record runs for real and is compared with it."""
    spy = Spy(monkeypatch)
    for guest, platform in (("self_sgi-256", "A"), ("self_sgi-256", "C-v3"), ("sysreg-256", "B")):
        on = result(run_guest(guest, platform, patches="series", verify_cache=1))
        assert spy.stats["hits"] == 0 and spy.stats["misses"] > 256
        assert on == result(run_guest(guest, platform, patches="series", cache=False))


# ---- when the cache must not, or cannot, be used -------------------------------------------
_calls = itertools.count()


class HiddenState:
    """Declares no state, yet answers differently on every third call."""

    WORLDSWITCH_PLUGIN = PluginMeta(name="hidden-state", title="t", subsystem="vgic", kind="optimization", state=())

    @hookimpl
    def ws_vgic_lrs_to_read(self, vgic_cpu: Any, lrs: int) -> int | None:
        return 0 if next(_calls) % 3 == 0 else None


def test_verification_catches_a_plugin_with_hidden_state() -> None:
    with pytest.raises(memo.CacheMismatch, match="verify-cache: a cached round trip") as e:
        run_guest("self_sgi-256", "A", extra_plugins=(HiddenState(),), verify_cache=1)
    assert e.value.exit_code == 10


class Undeclared:
    WORLDSWITCH_PLUGIN = PluginMeta(name="undeclared", title="t", subsystem="vgic", kind="optimization")

    @hookimpl
    def ws_vgic_lrs_to_read(self, vgic_cpu: Any, lrs: int) -> int | None:
        return None


class GrowsState:
    WORLDSWITCH_PLUGIN = PluginMeta(name="grows", title="t", subsystem="vgic", kind="optimization", state=("n",))

    def __init__(self) -> None:
        self.n = 0

    @hookimpl
    def ws_vgic_lrs_to_read(self, vgic_cpu: Any, lrs: int) -> int | None:
        self.seen = True  # an attribute its declaration leaves out
        return None


class Observer:
    WORLDSWITCH_PLUGIN = PluginMeta(name="observer", title="t", subsystem="trace", kind="refactor", state=())

    @hookimpl
    def ws_guest_exit(self, vcpu: Any, esr: int) -> None:
        pass


@pytest.mark.parametrize(("kw", "why"), [
    ({"cache": False}, "--no-cache"),
    ({"extra_plugins": (Undeclared(),)}, "plugin 'undeclared' does not declare its state"),
    ({"extra_plugins": (GrowsState(),)}, "plugin 'grows' has attribute(s) seen"),
    ({"observers": (Observer(),)}, "'observer' observes every exit (ws_guest_exit)"),
    ({"vm": VmConfig(cpus=2)}, "several vCPUs"),
])
def test_cache_off_says_why(monkeypatch: pytest.MonkeyPatch, kw: dict[str, Any], why: str) -> None:
    spy = Spy(monkeypatch)
    notes: list[str] = []
    monkeypatch.setattr(memo.RoundTripCache, "log", property(lambda self: notes.append, lambda self, v: None),
                        raising=False)
    on = result(run_guest("self_sgi-256", "A", **kw))
    assert not spy.stats["on"] and why in spy.stats["reason"]
    assert any(why in n for n in notes)
    kw.pop("cache", None)
    assert on == result(run_guest("self_sgi-256", "A", cache=False, **kw))


def test_an_event_during_a_round_trip_is_never_replayed_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """ws_sysreg_trap fires inside some round trips only: those are never recorded, so the
    observer sees each of them, cache or not."""

    class Count:
        WORLDSWITCH_PLUGIN = PluginMeta(name="count", title="t", subsystem="trace", kind="refactor", state=())

        def __init__(self) -> None:
            self.n = 0

        @hookimpl
        def ws_sysreg_trap(self, vcpu: Any, params: Any) -> None:
            self.n += 1

    with_cache, without = Count(), Count()
    run_guest("sysreg-256", "A", extra_plugins=(with_cache,))
    run_guest("sysreg-256", "A", extra_plugins=(without,), cache=False)
    assert with_cache.n == without.n >= 256


def test_bad_verify_setting_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLDSWITCH_VERIFY_CACHE", "often")
    with pytest.raises(WorldswitchError, match="WORLDSWITCH_VERIFY_CACHE='often'") as e:
        run_guest("null_hvc-256", "A")
    assert e.value.exit_code == 2


# ---- the declared state is the whole state ------------------------------------------------
def _undeclared(obj: Any) -> dict[str, Any]:
    """An object's attributes outside STATE, TALLIES and HOLDS, as identity and value."""
    cls = type(obj)
    skip = {*cls.STATE, *getattr(cls, "TALLIES", ()), *getattr(cls, "HOLDS", ()), *getattr(cls, "SCRATCH", ())}
    return {k: (id(v), repr(v)) for k, v in vars(obj).items() if k not in skip and k != "c"}


@pytest.mark.parametrize("platform", ["A", "C-v2", "C-v3"])
@pytest.mark.parametrize("guest", ["self_sgi", "sysreg", str(UNIT / "irq.flat"), str(UNIT / "timer.flat")])
def test_nothing_outside_the_declared_state_changes(monkeypatch: pytest.MonkeyPatch, guest: str,
                                                    platform: str) -> None:
    """What the cache captures is every field a round trip may change: any other attribute
    of the model's objects (references, constants) is the same after a run as before."""
    before: dict[int, Any] = {}
    orig = machine.Machine.run

    def run(m: Any, *a: Any, **k: Any) -> None:
        parts = memo.model_parts(m.vcpu)
        before.update({id(p.obj): (p, _undeclared(p.obj)) for p in parts})
        orig(m, *a, **k)

    monkeypatch.setattr(machine.Machine, "run", run)
    short = guest if "/" in guest else f"{guest}-256"
    run_guest(short, platform, patches="series", cache=False, **BUDGET)
    assert before
    for part, attrs in before.values():
        assert _undeclared(part.obj) == attrs, f"{part.who} changed an undeclared attribute"


# ---- the command line and the build ---------------------------------------------------------
def test_cli_cache_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from worldswitch.cli import main

    monkeypatch.delenv("WORLDSWITCH_CACHE", raising=False)
    monkeypatch.delenv("WORLDSWITCH_VERIFY_CACHE", raising=False)
    spy = Spy(monkeypatch)
    cached = CliRunner().invoke(main, ["run", "sysreg-256", "--json"])
    assert cached.exit_code == 0 and spy.stats["on"] and spy.stats["hits"] > 200
    uncached = CliRunner().invoke(main, ["run", "sysreg-256", "--json", "--no-cache"])
    assert uncached.exit_code == 0 and spy.stats["reason"] == "--no-cache"
    for r in (cached, uncached):
        assert "wall_seconds" in r.stdout
    strip = [{k: v for k, v in json.loads(r.stdout).items() if k != "wall_seconds"}
             for r in (cached, uncached)]
    assert strip[0] == strip[1]
    monkeypatch.delenv("WORLDSWITCH_CACHE", raising=False)
    checked = CliRunner().invoke(main, ["--verify-cache", "1", "run", "sysreg-256"])
    assert checked.exit_code == 0 and spy.stats["hits"] == 0
    bad = CliRunner().invoke(main, ["run", "sysreg-256", "--verify-cache", "0"])
    assert bad.exit_code == 2


def test_without_a_compiler_the_python_hit_path_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "/bin/false")
    assert fasthit.library.__wrapped__() is None
    assert "failed" in fasthit.why_not()
    monkeypatch.setenv("WORLDSWITCH_NO_FASTHIT", "1")
    assert fasthit.library.__wrapped__() is None and "WORLDSWITCH_NO_FASTHIT" in fasthit.why_not()
