"""``--trace FILE``: one JSON line per event, named and shaped like the kernel's trace events.

The tracer is an ordinary plugin object built on the event hooks, registered only when
tracing is asked for; with tracing off no event hook is implemented, so the run loop
pays nothing for it. Each line carries the kernel event's fields (``kvm_entry``,
``kvm_exit``, ``kvm_sys_access``, ``kvm_mmio``, ``kvm_hvc_arm64``, ``kvm_wfx_arm64``) and,
on exits, the capstone disassembly of the trapping instruction. Everything in a line is
simulated state: a trace is as deterministic as the run.
"""

from __future__ import annotations

import json
from typing import IO, Any

from .events import EXIT_NAMES, Exit
from .plugin import PluginMeta, hookimpl

# where Unicorn leaves the PC when it reports each kind of exit: past an HVC, at the rest
PC_PAST_TRAP = {Exit.HVC64: 4, Exit.HVC32: 4}


class Tracer:
    """Writes the run's events to ``out`` (a text file), one JSON object per line."""

    WORLDSWITCH_PLUGIN = PluginMeta(name="trace", title="Kernel-style trace events", subsystem="trace",
                                    kind="refactor", countable=False)

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.pc: int | None = None
        self.esr = 0
        self._disasm: Any = None

    def _emit(self, event: str, **fields: Any) -> None:
        self.out.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")

    def _insn(self, vcpu: Any, pc: int) -> str:
        word = vcpu.read_guest_insn(pc)
        if word is None:
            return "?"
        if self._disasm is None:
            import capstone

            arch, mode = ((capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM) if vcpu.platform.arch == "aarch32"
                          else (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM))
            self._disasm = capstone.Cs(arch, mode)
        for _, _, mnemonic, ops in self._disasm.disasm_lite(word.to_bytes(4, "little"), pc):
            return f"{mnemonic} {ops}".strip()
        return f".word 0x{word:08x}"

    @hookimpl
    def ws_guest_exit(self, vcpu: Any, esr: int) -> None:
        ec = esr >> 26
        self.esr = esr
        if ec == Exit.DABT_LOW and not vcpu.mmio_pc_exact:
            # the machine cannot tell which instruction of the block faulted: say so, guess nothing
            self.pc = None
            self._emit("kvm_exit", ret="TRAP", esr_ec=ec, esr_ec_name="DABT_LOW", vcpu_pc=None, esr=esr, insn=None)
            return
        self.pc = vcpu.read_guest_pc() - PC_PAST_TRAP.get(ec, 0)
        self._emit("kvm_exit", ret="TRAP", esr_ec=ec, esr_ec_name=EXIT_NAMES.get(ec, hex(ec)).upper(),
                   vcpu_pc=self.pc, esr=esr, insn=self._insn(vcpu, self.pc))

    @hookimpl
    def ws_guest_enter(self, vcpu: Any) -> None:
        # every exit modelled here resumes at the next instruction (kvm_skip_instr, or past the HVC)
        self._emit("kvm_entry", vcpu_pc=None if self.pc is None else self.pc + 4)

    @hookimpl
    def ws_sysreg_trap(self, vcpu: Any, params: Any) -> None:
        from .kvm.sys_regs import sysreg_name

        key = params.key
        fields = dict(zip(("Op0", "Op1", "CRn", "CRm", "Op2"), key)) if len(key) == 5 and not isinstance(
            key[0], bool) else dict(zip(("is_64bit", "CRn", "CRm", "Op1", "Op2"), key))
        name = sysreg_name(*key) if "Op0" in fields else f"p15_{key[3]}_c{key[1]}_c{key[2]}_{key[4]}"
        self._emit("kvm_sys_access", vcpu_pc=self.pc, **fields, is_write=bool(params.is_write), name=name)

    @hookimpl
    def ws_mmio_trap(self, vcpu: Any, addr: int, is_write: bool, size: int, value: int) -> None:
        # the kernel traces a read once it is satisfied; here the value is not known yet
        self._emit("kvm_mmio", type="write" if is_write else "read", len=size, phys_addr=addr,
                   val=value if is_write else None)

    @hookimpl
    def ws_hvc(self, vcpu: Any, func_id: int) -> None:
        self._emit("kvm_hvc_arm64", vcpu_pc=self.pc, r0=func_id, imm=self.esr & 0xFFFF)

    @hookimpl
    def ws_wfi(self, vcpu: Any) -> None:
        self._emit("kvm_wfx_arm64", vcpu_pc=self.pc, is_wfe=False)
