"""The 32-bit host model and the cp15 patches 2-5 (arch/arm/kvm/coproc.c).

Per-trap comparison counts for `mrc p15, 0, r0, c9, c12, 5` (PMSELR, 32-bit read), from
the tables in worldswitch.kvm.coproc, by hand:

* vanilla linear find_reg compares is_64, CRn, CRm, Op1, Op2 and stops at the first
  mismatch. a15_regs (SCTLR): 1 entry, 2 tests (is_64 equal, CRn 1 != 9).
  cp15_regs, entries 0..26 (PMSELR is index 26 of 46):
    MPIDR, CSSELR, ACTLR, CPACR                 4 x 2 = 8   (CRn != 9)
    TTBR0 (64-bit)                              1           (is_64 differs)
    TTBR0, TTBR1, TTBCR                         3 x 2 = 6
    TTBR1 (64-bit)                              1
    DACR, DFSR, IFSR, ADFSR, AIFSR, DFAR, IFAR  7 x 2 = 14
    PAR (64-bit)                                1
    DCISW, DCCSW, DCCISW                        3 x 2 = 6
    L2CTLR, L2ECTLR                             2 x 3 = 6   (CRm 0 != 12)
    PMCR, PMCNTENSET, PMCNTENCLR, PMOVSR        4 x 5 = 20  (Op2 differs)
    PMSELR                                      5           (match)
  = 27 entries, 68 tests; with the target table 28 entries, 70 field tests per trap.
* patch 5, key = CRn<<11 | CRm<<7 | Op1<<4 | Op2<<1 | !is_64bit = 19979 for PMSELR:
  a15_regs 1 comparator call (not found); cp15_regs mids 23 (PMCNTENSET, go right),
  35 (PRRR, left), 29 (PMCCNTR, left), 26 (PMSELR, hit) = 4 calls; 5 per trap.
"""

from __future__ import annotations

import itertools

import pytest
from unicorn import UC_ARCH_ARM, UC_HOOK_INTR, UC_MODE_ARM, Uc, UcError
from unicorn import arm_const as a32
from worldswitch.aarch32 import Machine32, Vcpu32, VmmInitError
from worldswitch.api import run_guest
from worldswitch.board import build_board
from worldswitch.errors import PluginError, WorldswitchError
from worldswitch.events import new_counters
from worldswitch.hooks import Hooks
from worldswitch.kvm.coproc import cmp_reg, v45_tables
from worldswitch.platform import get_platform
from worldswitch.plugin import check_requires, discover
from worldswitch.plugins.sysregs import check_sorted, rename_is64bit, sort_invariant

GUEST, PF, N = "aarch32_pmselr-256", "A15-32", 256
LINEAR_ENTRIES, LINEAR_TESTS, BSEARCH_CALLS = 28, 70, 5
CP15 = {2: "cp15-sort-invariant", 3: "cp15-check-sorted", 4: "cp15-rename-is64bit", 5: "cp15-bsearch"}


def run(patches: str = "none", force: bool = False):
    return run_guest(GUEST, PF, patches=patches, force=force)


@pytest.fixture(scope="module")
def vanilla():
    return run()


def valid_subsets() -> list[tuple[int, ...]]:
    plugins = discover()
    subsets = [s for k in range(5) for s in itertools.combinations(sorted(CP15), k)]
    return [s for s in subsets if not check_requires([CP15[n] for n in s], plugins)]


# ---- the guest on the 32-bit host ---------------------------------------------------------
def test_vanilla_exits_and_linear_counts(vanilla):
    assert vanilla.exits == {"cp15_32": N, "hvc32": 1}
    assert vanilla.guest_visible["system_event"] == 2  # SYSTEM_RESET
    c = vanilla.counts
    assert c["WORLD_SWITCH"] == N + 1 and c["SYSREG_TRAP"] == N and c["PSCI_CALL"] == 1
    assert c["SYSREG_ENTRY"] == LINEAR_ENTRIES * N
    assert c["SYSREG_FIELD_TEST"] == LINEAR_TESTS * N
    assert c["BSEARCH_CMP"] == 0
    assert vanilla.guest_visible["registers"]["r4"] == 0  # the loop ran to its end
    assert vanilla.guest_visible["registers"]["pc"] == 0x80008020  # just past the hvc


def test_bsearch_counts(vanilla):
    r = run("2-5")
    assert r.counts["BSEARCH_CMP"] == BSEARCH_CALLS * N
    assert r.counts["SYSREG_ENTRY"] == r.counts["SYSREG_FIELD_TEST"] == 0
    assert r.cycles_per_iteration < vanilla.cycles_per_iteration


def test_every_valid_subset_is_guest_identical(vanilla):
    subsets = valid_subsets()
    assert subsets == [(), (2,), (4,), (2, 3), (2, 4), (2, 3, 4), (2, 3, 4, 5)]
    search = {"SYSREG_ENTRY", "SYSREG_FIELD_TEST", "BSEARCH_CMP"}
    for s in subsets:
        r = run(",".join(map(str, s)) or "none")
        assert r.guest_visible == vanilla.guest_visible, s
        assert {k: v for k, v in r.counts.items() if k not in search} == {
            k: v for k, v in vanilla.counts.items() if k not in search
        }, s
        expect_bsearch = 5 in s
        assert r.counts["BSEARCH_CMP"] == (BSEARCH_CALLS * N if expect_bsearch else 0), s
        assert r.counts["SYSREG_FIELD_TEST"] == (0 if expect_bsearch else LINEAR_TESTS * N), s


def test_rename_alone_changes_no_counter(vanilla):
    assert run("4").counts == vanilla.counts
    assert run("2,3,4").counts == run("2,3").counts


# ---- forced combinations and selection ----------------------------------------------------
def test_check_sorted_without_sort_invariant_bugs_at_init():
    with pytest.raises(WorldswitchError, match=r"invariant_cp15 out of order at index 19 \(CLIDR after ID_ISAR5\)"):
        run("3", force=True)


def test_bsearch_without_sort_invariant_fails_get_one_reg():
    msg = r"^KVM_GET_ONE_REG\(CLIDR\) failed: ENOENT \(binary search over the unsorted invariant_cp15 table\)$"
    with pytest.raises(VmmInitError, match=msg):
        run("4,5", force=True)
    # with patch 3 present its init check catches the unsorted table first, as in the kernel
    with pytest.raises(WorldswitchError, match="invariant_cp15 out of order"):
        run("3,4,5", force=True)


def test_bsearch_without_rename_does_not_build():
    with pytest.raises(WorldswitchError, match="struct coproc_reg has no member is_64bit"):
        run("2,3,5", force=True)


@pytest.mark.parametrize(("sel", "missing"), [("3", CP15[2]), ("5", CP15[2]), ("2,3,5", CP15[4]), ("2,4,5", CP15[3])])
def test_selection_without_force_names_missing_plugin(sel, missing):
    with pytest.raises(PluginError, match=f"requires '{missing}'"):
        run(sel)


# ---- the tables ------------------------------------------------------------------------
def test_v45_tables():
    t = v45_tables()
    cp15 = t["cp15_regs"].entries
    assert len(cp15) == 46 and cp15[26].name == "PMSELR"
    assert all(cmp_reg(a, b) < 0 for a, b in itertools.pairwise(cp15))
    assert [r.name for r in t["a15_regs"].entries] == ["SCTLR"]
    inv = t["invariant_cp15"].entries
    assert [r.name for r in inv[-2:]] == ["CLIDR", "AIDR"]
    assert [i for i, (a, b) in enumerate(itertools.pairwise(inv), 1) if cmp_reg(a, b) >= 0] == [19]
    assert check_sorted.check_reg_table(inv) == 19


def test_plugins_edit_tables():
    t = v45_tables()
    sort_invariant.ws_coproc_tables(t)
    assert [r.name for r in t["invariant_cp15"].entries[4:8]] == ["REVIDR", "CLIDR", "AIDR", "ID_PFR0"]
    check_sorted.ws_coproc_table_init(t)  # all sorted now: no BUG
    before = {k: [(r.name, r.CRn, r.CRm, r.Op1, r.Op2, r.is_64, r.access) for r in v.entries] for k, v in t.items()}
    rename_is64bit.ws_coproc_tables(t)
    after = {k: [(r.name, r.CRn, r.CRm, r.Op1, r.Op2, r.is_64bit, r.access) for r in v.entries] for k, v in t.items()}
    assert after == before
    assert not hasattr(t["cp15_regs"].entries[0], "is_64")


def test_cp15_bsearch_finds_every_entry_of_every_table():
    """Patch 5's key (reg_to_match_value) must be one-to-one: a binary search for each
    entry's own encoding finds that entry, in every table it searches."""
    from worldswitch.kvm.coproc import CoprocParams
    from worldswitch.plugins.sysregs import cp15_bsearch

    t = v45_tables()
    sort_invariant.ws_coproc_tables(t)
    rename_is64bit.ws_coproc_tables(t)
    for table in t.values():
        for entry in table.entries:
            params = CoprocParams(entry.CRn, entry.CRm, entry.Op1, entry.Op2, entry.is_64bit, False)
            found = cp15_bsearch.ws_find_coproc_reg(params, table)
            assert found.entry is entry, (table.name, entry.name)


# ---- the machine: MCR/MRC/MCRR sites really trap and are skipped ----------------------------
PROBE = [
    0xE3A01005,  # mov r1, #5
    0xE3A03007,  # mov r3, #7
    0xEE091FBC,  # mcr p15, 0, r1, c9, c12, 5   PMSELR write: trapped, WI
    0xEE192FBC,  # mrc p15, 0, r2, c9, c12, 5   PMSELR read: trapped, RAZ
    0xEC431F02,  # mcrr p15, 0, r1, r3, c2      TTBR0 write: trapped (HCR.TVM)
    0xE3000009,  # movw r0, #9
    0xE3480400,  # movt r0, #0x8400
    0xE1400070,  # hvc #0
    0xEAFFFFFE,  # b .
]


def test_machine_emulates_and_skips_cp15_instructions():
    code = b"".join(w.to_bytes(4, "little") for w in PROBE)
    vcpu = Vcpu32(build_board(get_platform(PF), new_counters()), Hooks())
    m = Machine32(code, vcpu)
    # a natively executed MRC would read this back instead of KVM's RAZ
    m.uc.reg_write(a32.UC_ARM_REG_CP_REG, (15, 0, 0, 9, 12, 0, 5, 3))
    m.run()
    assert m.finished and vcpu.exits_by_reason() == {0x03: 2, 0x04: 1, 0x12: 1}
    assert m.guest_registers()["r2"] == 0
    assert m.uc.reg_read(a32.UC_ARM_REG_CP_REG, (15, 0, 0, 9, 12, 0, 5)) == 3  # the MCR did not run natively
    assert vcpu.sys_regs["TTBR0"] == (7 << 32) | 5


# ---- Unicorn 2.1.4 behaviour the machine relies on ------------------------------------------
def _hvc_probe(hce: bool) -> tuple[list[tuple[int, int]], int, str]:
    uc = Uc(UC_ARCH_ARM, UC_MODE_ARM)
    uc.mem_map(0x80000000, 0x1000)
    uc.mem_write(0x80000000, (0xE1400070).to_bytes(4, "little") + (0xE320F000).to_bytes(4, "little"))  # hvc; nop
    if hce:
        scr = (15, 0, 0, 1, 1, 0, 0)
        uc.reg_write(a32.UC_ARM_REG_CP_REG, scr + (uc.reg_read(a32.UC_ARM_REG_CP_REG, scr) | 1 << 8,))
    seen: list[tuple[int, int]] = []
    uc.hook_add(UC_HOOK_INTR, lambda uc, intno, ud: seen.append((intno, uc.reg_read(a32.UC_ARM_REG_PC))))
    err = ""
    try:
        uc.emu_start(0x80000000, 0x80000008)
    except UcError as e:
        err = str(e)
    return seen, uc.reg_read(a32.UC_ARM_REG_PC), err


def test_unicorn_hvc_in_arm_state():
    assert _hvc_probe(hce=True)[0] == [(11, 0x80000004)]  # EXCP_HVC, PC past the hvc
    seen, pc, err = _hvc_probe(hce=False)
    assert seen == [] and pc == 0x80000000 and "UC_ERR_INSN_INVALID" in err
