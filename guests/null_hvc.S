// null_hvc: the "null hypercall" reference guest (mission.md, reference guest 1).
//
// Every iteration makes one PSCI_VERSION call with `hvc #0`. KVM answers it
// in the kernel (PSCI 0.2 handler) and resumes the guest, so one iteration is
// exactly one full world switch with no live list registers and no userspace
// exit.
//
// Entry: flat binary loaded at 0x80080000 (kvmtool's AArch64 kernel address),
// entered at its first byte at EL1 with the MMU off and interrupts masked.
//
// ITERS (loop count) comes from `as --defsym ITERS=N`. The default is the
// study's listing, 1<<16 (its text says 2^20; the Makefile builds both).

	.ifndef ITERS
	.set	ITERS, 1 << 16
	.endif
	// The count is loaded with a fixed movz/movk pair below, so it must fit
	// in 32 bits; a zero count would make the cbnz loop wrap around to 2^64.
	.if	(ITERS < 1) || (ITERS > 0xffffffff)
	.error	"ITERS must be in 1 .. 0xffffffff"
	.endif

	.set	PSCI_VERSION,		0x84000000	// PSCI 0.2 function ID, SMC32
	.set	PSCI_SYSTEM_RESET,	0x84000009	// kvmtool ends the VM on it

	.text
	.globl	_start
_start:
	// x19 = ITERS. Always two instructions, whatever ITERS is, so all
	// lengths share one layout and differ only in these two immediates.
	movz	x19, #((ITERS >> 16) & 0xffff), lsl #16
	movk	x19, #(ITERS & 0xffff)

1:	// x0 is the PSCI function ID; the call returns the version in x0, so
	// reload it on every iteration.
	mov	x0, #PSCI_VERSION
	hvc	#0
	sub	x19, x19, #1
	cbnz	x19, 1b

	// End of the VM: PSCI SYSTEM_RESET. Should the host ever return, spin.
	movz	x0, #(PSCI_SYSTEM_RESET >> 16), lsl #16
	movk	x0, #(PSCI_SYSTEM_RESET & 0xffff)
	hvc	#0
	b	.
