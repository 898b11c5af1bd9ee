"""vmcr-on-load, tested as any third-party plugin would be: with the fixtures worldswitch
installs (worldswitch_run, worldswitch_transparent, worldswitch_hookcalls) and its CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import worldswitch.hookspecs
from worldswitch import guests
from worldswitch_vmcr_on_load import HOOK, HOOK_AVAILABLE, VmcrOnLoad

# Checked when the tests run, not when the plugin was written: the plugin answers a core
# question that worldswitch's first plugin API (v1) does not ask.
needs_hook = pytest.mark.skipif(
    not hasattr(worldswitch.hookspecs, HOOK),
    reason=f"the installed worldswitch does not ask {HOOK} (the core hook this plugin answers), "
           "so the plugin changes nothing yet",
)

PLATFORMS = ("A", "B", "C-v2", "C-v3")


def _has_short(name: str) -> bool:
    try:
        guests.short_variant(name, 256)
    except KeyError:
        return False
    return True


#: every built-in arm64 guest that has short builds (null_hvc_2p20 is null_hvc, longer)
GUESTS = sorted(n for n, img in guests.GUESTS.items() if img.arch == "aarch64" and _has_short(n))

#: where a platform's hyp code counts its VMCR accesses, and how many reads (and as many
#: writes) the plugin saves per round trip: none for the GICv2 guest on the GICv3 host C,
#: which keeps the switch on every round trip (see the plugin's docstring)
SAVED = {"A": ("GICH", 1), "B": ("GICH", 1), "C-v2": ("ICH", 0), "C-v3": ("ICH", 1)}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # the installed console script, in a fresh process: discovery as a user gets it
    exe = Path(sys.executable).with_name("worldswitch")
    cmd = [str(exe)] if exe.exists() else [shutil.which("worldswitch") or "worldswitch"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)


def _round_trips(result: Any) -> int:
    return sum(result.exits.values())


# ---- discovery and composition ----------------------------------------------------------------------------
def test_listed_as_third_party() -> None:
    done = _cli("plugins", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    mine = rows["vmcr-on-load"]
    assert mine["builtin"] is False
    assert mine["entry_point"] == "worldswitch_vmcr_on_load:VmcrOnLoad"
    assert mine["patch"] is None  # not one of the 17, and claims no number
    assert mine["hooks"] == ([HOOK] if HOOK_AVAILABLE else [])
    assert "vmcr-on-load" not in done.stderr  # loaded without a warning


def test_series_plus_plugin_runs_from_the_command_line() -> None:
    done = _cli("run", "self_sgi-256", "--patches", "series,vmcr-on-load", "--check-transparency", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "vmcr-on-load" in out["plugins"] and len(out["plugins"]) == 18


def test_countable_only_when_asked() -> None:
    assert VmcrOnLoad.WORLDSWITCH_PLUGIN.countable is HOOK_AVAILABLE


# ---- transparency -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("guest", GUESTS)
def test_transparent_alone_and_with_the_series(worldswitch_transparent: Any, guest: str, platform: str) -> None:
    worldswitch_transparent(f"{guest}-256", platform, plugins=[VmcrOnLoad()])
    worldswitch_transparent(f"{guest}-256", platform, patches="series,vmcr-on-load")


def test_transparent_and_inert_on_the_32_bit_host(worldswitch_transparent: Any) -> None:
    # v4.5's arch/arm saves the vgic in its own assembly, which asks no plugin
    base, mine = worldswitch_transparent("aarch32_pmselr-256", "A15-32", plugins=[VmcrOnLoad()])
    assert mine.counts == base.counts


# ---- what it saves ----------------------------------------------------------------------------------------
@needs_hook
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("guest", GUESTS)
def test_saves_one_read_and_one_write_per_round_trip(worldswitch_transparent: Any, guest: str,
                                                     platform: str) -> None:
    gic, per_trip = SAVED[platform]
    base, mine = worldswitch_transparent(f"{guest}-256", platform, plugins=[VmcrOnLoad()])
    # every exit but one skips its read (vcpu_put reads once), every entry but one skips
    # its write (vcpu_load writes once); there are as many entries as exits
    skipped = per_trip * (_round_trips(base) - 1)
    assert base.counts[f"{gic}_READ"] - mine.counts[f"{gic}_READ"] == skipped
    assert base.counts[f"{gic}_WRITE"] - mine.counts[f"{gic}_WRITE"] == skipped
    moved = {f"{gic}_READ", f"{gic}_WRITE"}
    assert {k: v for k, v in mine.counts.items() if k not in moved} == \
           {k: v for k, v in base.counts.items() if k not in moved}
    assert (mine.cycles < base.cycles) is bool(per_trip)


@needs_hook
@pytest.mark.parametrize("platform", PLATFORMS)
def test_steady_state_saving_on_top_of_the_series(worldswitch_run: Any, platform: str) -> None:
    gic, per_trip = SAVED[platform]

    def accesses_per_trip(patches: str) -> float:
        # the difference of two lengths: set-up exits and the load/put accesses drop out
        short, long = (worldswitch_run(f"self_sgi-{n}", platform, patches=patches) for n in (256, 1024))
        return sum(long.counts[f"{gic}_{rw}"] - short.counts[f"{gic}_{rw}"] for rw in ("READ", "WRITE")) / 768

    assert accesses_per_trip("series") - accesses_per_trip("series,vmcr-on-load") == 2 * per_trip


@needs_hook
def test_null_hvc_makes_no_gich_access_with_the_series(worldswitch_run: Any) -> None:
    # the series leaves a null hypercall with the VMCR read and write alone (17 -> 2);
    # moving those to load/put leaves nothing but the two at load and put
    for platform in ("A", "B"):
        r = worldswitch_run("null_hvc-256", platform, patches="series,vmcr-on-load")
        assert r.counts["GICH_READ"] + r.counts["GICH_WRITE"] == 2


# ---- when the core asks, and what the plugin answers -------------------------------------------------------
@needs_hook
@pytest.mark.parametrize("platform", PLATFORMS)
def test_answers(worldswitch_hookcalls: Any, platform: str) -> None:
    rec = worldswitch_hookcalls("self_sgi-256", platform, plugins=[VmcrOnLoad()], record=[HOOK])
    trips = _round_trips(rec.result)
    # asked by every exit's save and every entry's restore, besides load and put
    assert rec.calls[HOOK] >= 2 * trips
    answers = {c.result for c in rec.records}
    assert answers == ({None} if platform == "C-v2" else {False})


@needs_hook
def test_never_asked_on_the_32_bit_host(worldswitch_hookcalls: Any) -> None:
    rec = worldswitch_hookcalls("aarch32_pmselr-256", "A15-32", plugins=[VmcrOnLoad()])
    assert rec.calls[HOOK] == 0
