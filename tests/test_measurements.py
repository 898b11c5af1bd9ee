"""Measurement files for calibration (issue 9's input): the shipped example, and the one-line
error each kind of bad row gets, naming the file and the row."""

from __future__ import annotations

from pathlib import Path

import pytest
from worldswitch.errors import ProfileError
from worldswitch.measurements import load_measurements
from worldswitch.plugin import discover, parse_selection

GOOD = '''
[[measurement]]
guest = "null_hvc"
platform = "A"
plugins = "vanilla"
cycles_per_iteration = 6500

[[measurement]]
guest = "sysreg"
platform = "C-v3"
plugins = "7-11"
cycles_per_iteration = 5400.5
spread = 40
'''


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_the_shipped_example_is_the_users_two_boards_under_the_series() -> None:
    rows = load_measurements()
    series = tuple(parse_selection("series", discover()))
    assert {(m.guest, m.platform) for m in rows} == {(g, p) for g in ("null_hvc", "self_sgi", "sysreg")
                                                     for p in ("A", "C-v3")}
    assert all(m.plugins == series and m.spread is None and m.cycles > 0 for m in rows)
    # the two withheld platforms stay out of the project
    assert not {m.platform for m in rows} & {"B", "C-v2"}


def test_rows_are_read_with_their_selection_resolved(tmp_path: Path) -> None:
    first, second = load_measurements(write(tmp_path, GOOD))
    assert (first.guest, first.platform, first.plugins, first.cycles, first.spread, first.row) == (
        "null_hvc", "A", (), 6500.0, None, 1)
    assert second.plugins == tuple(parse_selection("7-11", discover()))
    assert (second.cycles, second.spread, second.row) == (5400.5, 40.0, 2)


ROW = '[[measurement]]\nguest = "null_hvc"\nplatform = "A"\nplugins = "series"\ncycles_per_iteration = 5000\n'


@pytest.mark.parametrize("text, message", [
    (ROW.replace('"null_hvc"', '"nope"'), 'measurement 1: guest "nope": no such guest'),
    (ROW.replace('"A"', '"Z"'), 'measurement 1: platform "Z": no such platform'),
    (ROW.replace('"series"', '"no-such-patch"'), "measurement 1: plugins 'no-such-patch': unknown plugin"),
    (ROW.replace("5000", "-3"), "measurement 1: cycles_per_iteration = -3: expected a finite number of cycles > 0"),
    (ROW.replace("5000", "true"), "measurement 1: cycles_per_iteration = true"),
    (ROW.replace("5000", "nan"), "measurement 1: cycles_per_iteration = nan"),
    (ROW + "spread = -1\n", "measurement 1: spread = -1"),
    (ROW + "spread = 0\n", "measurement 1: spread = 0: expected a finite number of cycles > 0"),
    (ROW + ROW.replace('"series"', '"1-17"'), "measurement 2: null_hvc on A with plugins '1-17' was already "
                                              "measured (measurement 1)"),
    (ROW.replace('cycles_per_iteration = 5000\n', ''), "measurement 1: missing 'cycles_per_iteration'"),
    (ROW + "cycles = 3\n", "measurement 1: unknown field 'cycles'"),
    ("", "no measurements"),
    ("[[measurement]\n", "cannot read measurement file"),
])
def test_a_bad_row_is_one_line_naming_the_file_and_the_row(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as e:
        load_measurements(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)
    assert "\n" not in str(e.value)
