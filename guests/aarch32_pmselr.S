@ aarch32_pmselr: system-register trap guest for the 32-bit (ARMv7) host model.
@
@ The AArch32 counterpart of sysreg.S: every iteration reads PMSELR with
@ `mrc p15, 0, r0, c9, c12, 5`. KVM sets HDCR.TPM, so the read traps to Hyp
@ and is emulated from the cp15 tables (emulate_cp15; binary search after
@ patch 5). One iteration is one world switch plus the table search.
@
@ Entry: flat binary loaded at 0x80008000 (kvmtool's AArch32 kernel
@ address), entered at its first byte in ARM (not Thumb) state.
@
@ ITERS (loop count) comes from `as --defsym ITERS=N`; the default is 1<<20.

	.syntax	unified
	.arch	armv7-a
	.arch_extension	virt		@ for `hvc`
	.arm

	.ifndef ITERS
	.set	ITERS, 1 << 20
	.endif
	@ movw/movt below take 32 bits; a zero count would make the loop wrap.
	.if	(ITERS < 1) || (ITERS > 0xffffffff)
	.error	"ITERS must be in 1 .. 0xffffffff"
	.endif

	.set	PSCI_SYSTEM_RESET,	0x84000009	@ kvmtool ends the VM on it

	.text
	.globl	_start
_start:
	@ r4 = ITERS. Always a movw/movt pair, so all lengths share one layout
	@ and differ only in these two immediates (no literal pool either).
	movw	r4, #(ITERS & 0xffff)
	movt	r4, #((ITERS >> 16) & 0xffff)

1:	mrc	p15, 0, r0, c9, c12, 5	@ PMSELR: traps, HDCR.TPM is set by KVM
	subs	r4, r4, #1
	bne	1b

	@ End of the VM: PSCI SYSTEM_RESET. Should the host ever return, spin.
	movw	r0, #(PSCI_SYSTEM_RESET & 0xffff)
	movt	r0, #(PSCI_SYSTEM_RESET >> 16)
	hvc	#0
	b	.
