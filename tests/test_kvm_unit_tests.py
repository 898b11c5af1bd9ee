"""kvm-unit-tests as the outside check of the machine (optional).

Skipped unless ``WORLDSWITCH_KUT_DIR`` names an arm64 build of kvm-unit-tests for kvmtool
(``./configure --arch=arm64 --cross-prefix=aarch64-linux-gnu- --target=kvmtool && make``),
the directory holding ``arm/*.flat``. Nothing of kvm-unit-tests is part of this project.
Each case is a section of its ``arm/unittests.cfg`` run through ``worldswitch run`` with
the options lkvm would get: ``--params`` from ``test_args``, ``--cpus`` from ``smp``
($MAX_SMP taken as 2) and the section's ``kvmtool_params``. A test passes when the guest
ends with ``EXIT: STATUS=1`` (kvm-unit-tests' pass) and prints no FAIL line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

KUT = os.environ.get("WORLDSWITCH_KUT_DIR")
pytestmark = pytest.mark.skipif(not KUT, reason="set WORLDSWITCH_KUT_DIR to an arm64 kvm-unit-tests build to run")

# (section, file, --params, lkvm options, platform)
CASES = [
    ("selftest-setup", "selftest.flat", "setup smp=2 mem=256", ["--cpus", "2", "--mem", "256"], "A"),
    ("selftest-vectors-kernel", "selftest.flat", "vectors-kernel", [], "A"),
    ("selftest-vectors-user", "selftest.flat", "vectors-user", [], "A"),
    ("selftest-smp", "selftest.flat", "smp", ["--cpus", "2"], "A"),
    ("psci", "psci.flat", "", ["--cpus", "2"], "A"),
    ("gicv2-ipi", "gic.flat", "ipi", ["--cpus", "2", "--irqchip", "gicv2"], "A"),
    ("gicv2-active", "gic.flat", "active", ["--cpus", "2", "--irqchip", "gicv2"], "A"),
    ("gicv3-ipi", "gic.flat", "ipi", ["--cpus", "2", "--irqchip", "gicv3"], "C-v3"),
    ("gicv3-active", "gic.flat", "active", ["--cpus", "2", "--irqchip", "gicv3"], "C-v3"),
    ("timer", "timer.flat", "", [], "A"),
]


def lkvm_run(flat: str, params: str, options: list[str], platform: str, timeout: int = 600) -> str:
    cmd = [sys.executable, "-m", "worldswitch.cli", "run", str(Path(KUT or ".") / "arm" / flat),
           "-p", platform, "--params", params, "--timeout", str(timeout), *options]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    return done.stdout + done.stderr


@pytest.mark.parametrize(("section", "flat", "params", "options", "platform"), CASES, ids=[c[0] for c in CASES])
def test_kvm_unit_tests_pass(section: str, flat: str, params: str, options: list[str], platform: str) -> None:
    out = lkvm_run(flat, params, options, platform)
    assert "EXIT: STATUS=1\n" in out, out[-2000:]
    assert not re.search(r"^FAIL: ", out, re.M), out[-2000:]
    assert re.search(r"^PASS: ", out, re.M), out[-2000:]


def test_micro_bench_prints_modelled_costs() -> None:
    """micro-bench runs to completion and its per-exit costs are the model's (in CNTVCT)."""
    out = lkvm_run("micro-bench.flat", "", ["--cpus", "2"], "A", timeout=1200)
    assert "EXIT: STATUS=1\n" in out, out[-2000:]
    for name in ("hyp_call", "mmio_read_user", "mmio_read_vgic", "eoi", "ipi", "timer_10ms"):
        assert re.search(rf"^{name}\s+[0-9.]+\s+[0-9.]+", out, re.M), name
