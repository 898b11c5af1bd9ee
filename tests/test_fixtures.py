"""The pytest fixture plugin authors get with worldswitch (pytest11 entry point)."""

from worldswitch.plugin import hookimpl


class CacheEverything:
    """A third-party-style plugin object: skip every timer active-state write."""

    @hookimpl
    def ws_timer_skip_active_write(self, timer, phys_active):
        return True


def test_worldswitch_run_fixture(worldswitch_run) -> None:
    base = worldswitch_run("null_hvc-256", "A")
    mine = worldswitch_run("null_hvc-256", "A", plugins=[CacheEverything()])
    assert mine.guest_visible == base.guest_visible
    assert base.counts["GICD_WRITE"] == 257 and mine.counts["GICD_WRITE"] == 0
    assert mine.cycles < base.cycles
