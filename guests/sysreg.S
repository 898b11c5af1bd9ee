// sysreg: the "system-register trap" reference guest (mission.md, guest 3).
//
// Every iteration reads PMSELR_EL0. KVM v4.5 sets MDCR_EL2.TPM, so the read
// traps to EL2 (EC 0x18) and is emulated from the sys_reg tables
// (PMSELR_EL0 is entry 108 of sys_reg_descs[]). One iteration is one
// world switch with no live list registers, plus the table search.
//
// Entry: flat binary loaded at 0x80080000, entered at its first byte at EL1
// with the MMU off and interrupts masked.
//
// ITERS (loop count) comes from `as --defsym ITERS=N`; the default is 1<<20.

	.ifndef ITERS
	.set	ITERS, 1 << 20
	.endif
	// The count is loaded with a fixed movz/movk pair below, so it must fit
	// in 32 bits; a zero count would make the cbnz loop wrap around to 2^64.
	.if	(ITERS < 1) || (ITERS > 0xffffffff)
	.error	"ITERS must be in 1 .. 0xffffffff"
	.endif

	.set	PSCI_SYSTEM_RESET,	0x84000009	// kvmtool ends the VM on it

	.text
	.globl	_start
_start:
	// x19 = ITERS. Always two instructions, whatever ITERS is, so all
	// lengths share one layout and differ only in these two immediates.
	movz	x19, #((ITERS >> 16) & 0xffff), lsl #16
	movk	x19, #(ITERS & 0xffff)

1:	mrs	x0, pmselr_el0		// traps: MDCR_EL2.TPM is set by KVM
	sub	x19, x19, #1
	cbnz	x19, 1b

	// End of the VM: PSCI SYSTEM_RESET. Should the host ever return, spin.
	movz	x0, #(PSCI_SYSTEM_RESET >> 16), lsl #16
	movk	x0, #(PSCI_SYSTEM_RESET & 0xffff)
	hvc	#0
	b	.
