"""The pytest kit plugin authors get with worldswitch (worldswitch.testing): the hook-call
recorder and the transparency checker, checked against what the run itself reports."""

from __future__ import annotations

from typing import Any

import pytest
from worldswitch.errors import PluginFailure
from worldswitch.plugin import hookimpl
from worldswitch.plugins.vgic.live_lrs import VgicV2LiveLrs

pytest_plugins = ("pytester",)

HVC64 = 0x16


class Watcher:
    """Counts for itself what the recorder should count, by other means."""

    def __init__(self) -> None:
        self.exits = self.entries = self.hvcs = self.inits = self.puts = 0

    @hookimpl
    def ws_guest_exit(self, vcpu: Any, esr: int) -> None:
        self.exits += 1

    @hookimpl
    def ws_guest_enter(self, vcpu: Any) -> None:
        self.entries += 1

    @hookimpl
    def ws_hvc(self, vcpu: Any, func_id: int) -> None:
        self.hvcs += 1

    @hookimpl
    def ws_vcpu_init(self, vcpu: Any) -> None:
        self.inits += 1

    @hookimpl
    def ws_vcpu_put(self, vcpu: Any) -> None:
        self.puts += 1


class InjectIntid5:
    """Not transparent: once the guest is in its loop, an entry makes INTID 5 pending in
    LR0 behind the vgic's back, so the guest acknowledges an interrupt vanilla never sent.
    (The first entries come before the guest enables its CPU interface, which would hide it.)"""

    def __init__(self) -> None:
        self.entries = 0

    @hookimpl
    def ws_guest_enter(self, vcpu: Any) -> None:
        self.entries += 1
        if self.entries == 10:
            lrf = vcpu.hyp_if.lrf
            lrf.lr[0] = vcpu.vgic_cpu.build_lr(5, 0, 1, False)


# ---- the recorder ----------------------------------------------------------------------------------------
def test_event_hooks_called_once_per_exit(worldswitch_hookcalls: Any) -> None:
    w = Watcher()
    rec = worldswitch_hookcalls("null_hvc-256", "A", plugins=[w])
    exits = sum(rec.result.exits.values())
    assert exits == rec.result.exits["hvc64"] == 257  # 256 iterations and the final SYSTEM_RESET
    assert rec.calls["ws_guest_exit"] == exits
    assert rec.calls["ws_hvc"] == exits
    assert rec.calls["ws_guest_enter"] == exits - 1  # the last exit does not re-enter
    assert rec.calls["ws_vcpu_init"] == rec.calls["ws_vcpu_put"] == 1
    # the object under test was called, with its state: the same counts by its own account
    assert (w.exits, w.hvcs, w.entries, w.inits, w.puts) == (exits, exits, exits - 1, 1, 1)
    assert rec.by_plugin == {"Watcher": rec.calls}


def test_pluggy_monitoring_sees_only_set_up_hooks(worldswitch_hookcalls: Any) -> None:
    rec = worldswitch_hookcalls("null_hvc-256", "A", plugins=[Watcher()], record=True)
    # per-trap hooks are resolved into plain callables: pluggy never sees them called
    assert rec.pluggy_calls == {"ws_vgic_dist_ranges": 1, "ws_vcpu_init": 1, "ws_vcpu_put": 1}
    assert [c.hook for c in rec.pluggy_records] == ["ws_vgic_dist_ranges", "ws_vcpu_init", "ws_vcpu_put"]
    init = rec.pluggy_records[1]
    assert init.plugin is None and set(init.kwargs) == {"vcpu"} and init.result == []


def test_pluggy_monitoring_on_the_32_bit_host(worldswitch_hookcalls: Any) -> None:
    rec = worldswitch_hookcalls("aarch32_pmselr-256", "A15-32", patches="2-5")
    assert rec.pluggy_calls["ws_coproc_tables"] == rec.pluggy_calls["ws_coproc_table_init"] == 1
    assert not rec.calls  # nothing passed in plugins: patches run, unrecorded


def test_questions_counted_and_results_recorded(worldswitch_hookcalls: Any, worldswitch_run: Any) -> None:
    rec = worldswitch_hookcalls("null_hvc-256", "A", plugins=[VgicV2LiveLrs()], record=["ws_vgic_lrs_to_save"])
    exits = sum(rec.result.exits.values())
    assert rec.calls["ws_vgic_lrs_to_save"] == exits  # every exit asks
    assert rec.calls["ws_vgic_lrs_to_restore"] == exits  # every entry, the first included
    # only the hook asked for is kept, with its arguments by name and the answer
    assert {c.hook for c in rec.records} == {"ws_vgic_lrs_to_save"} and len(rec.records) == exits
    assert {c.plugin for c in rec.records} == {"vgic-v2-live-lrs"}
    assert all(set(c.kwargs) == {"vgic_cpu"} and c.result == 0 for c in rec.records)  # nothing live on a null HVC
    # recording changes no result
    plain = worldswitch_run("null_hvc-256", "A", plugins=[VgicV2LiveLrs()])
    assert rec.result.counts == plain.counts and rec.result.guest_visible == plain.guest_visible
    assert rec.result.plugins == plain.plugins == ["VgicV2LiveLrs"]


def test_arguments_recorded(worldswitch_hookcalls: Any) -> None:
    rec = worldswitch_hookcalls("null_hvc-256", "A", plugins=[Watcher()], record=["ws_guest_exit"])
    assert len(rec.records) == rec.calls["ws_guest_exit"]
    assert all(c.kwargs["esr"] >> 26 == HVC64 and c.result is None for c in rec.records)
    assert not worldswitch_hookcalls("null_hvc-256", "A", plugins=[Watcher()]).records  # counts only by default


def test_each_object_counted_apart(worldswitch_hookcalls: Any) -> None:
    class Renamed:
        @hookimpl(specname="ws_guest_exit")
        def on_exit(self, vcpu: Any, esr: int) -> None:
            pass

    rec = worldswitch_hookcalls("null_hvc-256", "A", plugins=[Watcher(), Watcher(), Renamed()])
    exits = sum(rec.result.exits.values())
    assert rec.by_plugin["Watcher"]["ws_guest_exit"] == rec.by_plugin["Watcher#2"]["ws_guest_exit"] == exits
    assert rec.by_plugin["Renamed"] == {"ws_guest_exit": exits}
    assert rec.calls["ws_guest_exit"] == 3 * exits


def test_a_wrapper_is_counted_and_goes_through_pluggy(worldswitch_hookcalls: Any) -> None:
    class Wrapping:
        @hookimpl(wrapper=True)
        def ws_vgic_lrs_to_save(self, vgic_cpu: Any) -> Any:
            return (yield)

    rec = worldswitch_hookcalls("null_hvc-256", "A", plugins=[Wrapping(), VgicV2LiveLrs()])
    exits = sum(rec.result.exits.values())
    assert rec.calls["ws_vgic_lrs_to_save"] == 2 * exits  # the wrapper and the live-LR answer
    # a wrapper makes the core call the hook through pluggy, so monitoring sees it too
    assert rec.pluggy_calls["ws_vgic_lrs_to_save"] == exits


def test_failures_still_name_the_plugin_and_hook(worldswitch_hookcalls: Any) -> None:
    class Raises(Watcher):
        @hookimpl
        def ws_guest_enter(self, vcpu: Any) -> None:
            raise ValueError("boom")

    with pytest.raises(PluginFailure, match=r"raised in hook ws_guest_enter: ValueError: boom"):
        worldswitch_hookcalls("null_hvc-256", "A", plugins=[Raises()])

    class WrongType:
        @hookimpl
        def ws_vgic_lrs_to_save(self, vgic_cpu: Any) -> Any:
            return "all"

    with pytest.raises(PluginFailure, match=r"plugin 'WrongType' returned 'all' from hook ws_vgic_lrs_to_save"):
        worldswitch_hookcalls("null_hvc-256", "A", plugins=[WrongType()])


# ---- the transparency checker ------------------------------------------------------------------------------
def test_transparent_set_returns_both_runs(worldswitch_transparent: Any) -> None:
    base, mine = worldswitch_transparent("self_sgi-256", "A", plugins=[VgicV2LiveLrs()], patches="12")
    assert base.plugins == [] and mine.plugins == ["vgic-v2-sgir-first", "VgicV2LiveLrs"]
    assert mine.guest_visible == base.guest_visible
    assert mine.counts["GICH_READ"] < base.counts["GICH_READ"]


def test_changed_guest_view_fails_with_the_first_difference(worldswitch_transparent: Any) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        worldswitch_transparent("self_sgi-256", "A", plugins=[InjectIntid5()])
    msg = str(failed.value)
    assert msg.startswith("self_sgi-256 on A: InjectIntid5 changed what the guest sees: acked.")
    assert "instead of vanilla's" in msg


def test_vanilla_is_reused_but_never_shared(worldswitch_transparent: Any) -> None:
    base, _ = worldswitch_transparent("null_hvc-256", "B", plugins=[Watcher()])
    base.counts.clear()  # a test may do what it likes with its copy
    again, _ = worldswitch_transparent("null_hvc-256", "B", plugins=[Watcher()])
    assert again.counts["GICH_READ"] > 0


def test_fixtures_come_with_the_install(pytester: pytest.Pytester) -> None:
    # a plugin author's suite: no conftest, no pytest_plugins line, only the pytest11 entry point
    pytester.makepyfile(
        """
        from worldswitch.plugin import hookimpl

        class Inject:
            def __init__(self):
                self.n = 0

            @hookimpl
            def ws_guest_enter(self, vcpu):
                self.n += 1
                if self.n == 10:
                    vcpu.hyp_if.lrf.lr[0] = vcpu.vgic_cpu.build_lr(5, 0, 1, False)

        def test_not_transparent(worldswitch_transparent):
            worldswitch_transparent("self_sgi-256", "C-v3", plugins=[Inject()])

        def test_recorder(worldswitch_hookcalls):
            rec = worldswitch_hookcalls("self_sgi-256", "C-v3", plugins=[Inject()])
            assert rec.calls["ws_guest_enter"] == sum(rec.result.exits.values()) - 1
        """
    )
    out = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    out.assert_outcomes(passed=1, failed=1)
    out.stdout.fnmatch_lines(["*self_sgi-256 on C-v3: Inject changed what the guest sees: acked.*"])
