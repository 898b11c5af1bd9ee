"""Progress on long work: a single run's exits, a study's runs done, rate and ETA."""

from __future__ import annotations

import io

from rich.console import Console
from worldswitch import cli
from worldswitch.api import run_guest


def test_a_run_reports_its_exits_as_it_goes() -> None:
    seen: list[int] = []
    # uncached: replayed round trips finish this guest before a second report is due
    r = run_guest("null_hvc", "A", progress=seen.append, cache=False)
    assert seen[-1] == r.counts["WORLD_SWITCH"] and seen == sorted(seen)
    assert len(seen) >= 2  # at least one report while running, and the last one


def test_the_study_bar_shows_runs_done_rate_and_eta(monkeypatch) -> None:  # noqa: ANN001
    buf = io.StringIO()
    monkeypatch.setattr(cli, "_console", lambda stderr=False: Console(file=buf, force_terminal=True, width=150))
    with cli._Progress(4, "study cumulative", 1) as tick:
        for _ in range(4):
            tick(None)
    out = buf.getvalue()
    assert "study cumulative" in out and "4/4" in out and "ETA" in out and "runs/s" in out


def test_no_bar_off_a_terminal_or_with_quiet(monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setattr(cli, "_console", lambda stderr=False: Console(file=io.StringIO(), force_terminal=False))
    with cli._Progress(3, "study x", 2) as tick:
        tick(None)
    assert capsys.readouterr().err == "worldswitch: study x: 3 guest runs on 2 workers...\n"
    monkeypatch.setattr(cli, "_quiet", True)
    with cli._Progress(3, "study x", 2) as tick:
        tick(None)
    assert capsys.readouterr().err == ""


def test_a_closed_pipe_is_no_internal_error(tmp_path) -> None:  # noqa: ANN001
    """`worldswitch ... | head -1`: the reader leaving is not a bug to report."""
    import subprocess
    import sys

    code = "from worldswitch.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "plugins"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before the command writes
    err = proc.stderr.read().decode()
    # it ends as a shell reports a Unix tool ended by SIGPIPE (141), with nothing on stderr
    assert proc.wait() == 141 and err == "", err
