/*
 * plumbing_seq.S: instruction sequences whose exact shape matters to the
 * machine's trap plumbing (see plumbing.c).
 */

	.text

/*
 * u64 seq_literal_loop(void): a literal pool in the instruction stream, then
 * a loop running "mrs x0, pmselr_el0" 8 times (MDCR_EL2.TPM: 8 exits). The
 * pool holds one word that reads as an mrs of PMSELR_EL0 and one that is no
 * instruction at all. Returns the 64-bit literal.
 */
	.globl	seq_literal_loop
seq_literal_loop:
	ldr	x3, 1f
	b	2f
	.balign	8
1:	.word	0xd53b9ca0		// data: the encoding of mrs x0, pmselr_el0
	.word	0xffffffff		// data: unallocated
2:	mov	x2, #8
3:	mrs	x0, pmselr_el0
	subs	x2, x2, #1
	b.ne	3b
	mov	x0, x3
	ret

/*
 * The routine plumbing.c copies to another RAM address and runs there:
 * one trapped mrs and one hvc (PSCI_VERSION, whose answer it returns).
 */
	.globl	seq_copied, seq_copied_end
	.balign	4
seq_copied:
	mrs	x1, pmselr_el0
	movz	x0, #0x8400, lsl #16
	hvc	#0
	ret
seq_copied_end:

/*
 * void seq_sgi_after_stp(u64 unused, u64 gicd_sgir, u32 value): a stp to the
 * stack, then a plain 32-bit store to GICD_SGIR, in one basic block.
 */
	.globl	seq_sgi_after_stp
seq_sgi_after_stp:
	stp	x0, x1, [sp, #-16]!
	str	w2, [x1]
	ldp	x0, x1, [sp], #16
	ret

/*
 * void seq_sgi_after_str_pre(u64 unused, u64 gicd_sgir, u32 value): the same
 * with a pre-indexed single-register store in front.
 */
	.globl	seq_sgi_after_str_pre
seq_sgi_after_str_pre:
	str	x19, [sp, #-16]!
	str	w2, [x1]
	ldr	x19, [sp], #16
	ret
