"""--trace FILE: kernel-style trace events, one JSON line each, deterministic, free when off."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from worldswitch.cli import main


def traced(tmp_path: Path, guest: str, platform: str, name: str = "t.jsonl") -> tuple[dict, list[dict]]:
    path = tmp_path / name
    r = CliRunner().invoke(main, ["run", guest, "-p", platform, "--json", "--trace", str(path)])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout), [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("guest", "platform", "handler_event", "insn"), [
    ("null_hvc-256", "A", "kvm_hvc_arm64", "hvc #0"),
    ("sysreg-256", "A", "kvm_sys_access", "mrs x0, pmselr_el0"),
    ("aarch32_pmselr-256", "A15-32", "kvm_sys_access", "mrc p15, #0, r0, c9, c12, #5"),
])
def test_every_exit_is_traced_with_its_instruction(tmp_path: Path, guest: str, platform: str, handler_event: str,
                                                   insn: str) -> None:
    result, events = traced(tmp_path, guest, platform)
    kinds = Counter(e["event"] for e in events)
    exits = sum(result["exits"].values())
    assert kinds["kvm_exit"] == exits and kinds["kvm_entry"] == exits - 1  # the last exit ends the run
    assert kinds[handler_event] >= 256
    loop = [e for e in events if e["event"] == "kvm_exit" and e["insn"] == insn]
    assert len(loop) >= 256 and all(e["vcpu_pc"] % 4 == 0 for e in loop)
    first = events.index(loop[0])
    assert events[first + 2] == {"event": "kvm_entry", "vcpu_pc": loop[0]["vcpu_pc"] + 4}


def test_sys_access_names_the_register_fields(tmp_path: Path) -> None:
    _, events = traced(tmp_path, "sysreg-256", "A")
    access = next(e for e in events if e["event"] == "kvm_sys_access")
    assert (access["Op0"], access["Op1"], access["CRn"], access["CRm"], access["Op2"]) == (3, 3, 9, 12, 5)
    assert access["is_write"] is False


def test_mmio_exits_are_traced_at_the_faulting_instruction(tmp_path: Path) -> None:
    _, events = traced(tmp_path, "self_sgi-256", "A")
    sgir = [e for e in events if e["event"] == "kvm_mmio" and e["phys_addr"] == 0x3FFF0F00]
    assert len(sgir) >= 256 and sgir[0]["type"] == "write" and sgir[0]["len"] == 4
    dabt = [e for e in events if e["event"] == "kvm_exit" and e["esr_ec_name"] == "DABT_LOW"]
    # each store itself, not the start of its basic block: the three distributor set-up writes, then SGIR
    assert {(e["vcpu_pc"], e["insn"]) for e in dabt if e["esr"] & 1 << 6} == {
        (0x80080088, "str w3, [x1]"), (0x80080094, "str w3, [x1, #0x400]"), (0x8008009C, "str w3, [x1, #0x100]"),
        (0x800800B4, "str w4, [x1, #0xf00]")}


def test_tracing_changes_no_result_and_is_deterministic(tmp_path: Path) -> None:
    a, ea = traced(tmp_path, "self_sgi-256", "C-v3", "a.jsonl")
    b, eb = traced(tmp_path, "self_sgi-256", "C-v3", "b.jsonl")
    plain = json.loads(CliRunner().invoke(main, ["run", "self_sgi-256", "-p", "C-v3", "--json"]).stdout)
    for r in (a, b, plain):
        r.pop("wall_seconds")
    assert a == b == plain and ea == eb
    assert a["plugins"] == []  # a tracer watches; it is not one of the run's plugins
