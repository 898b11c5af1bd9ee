/*
 * vectors.S: the EL1 vector table and the exception frame.
 *
 * Each of the 16 entries pushes a struct pt_regs (unit.h) on SP_EL1 and calls
 * do_exception(index, regs). On return the frame's pc and pstate go back to
 * ELR_EL1/SPSR_EL1 and x0-x30 are reloaded, so a handler can change where and
 * at which exception level the interrupted code resumes.
 *
 * run_el0(fn, sp_top) drops to EL0t at fn; fn returns into el0_return, whose
 * "svc #0xffff" the EL0 handler in exceptions.c turns back into a return from
 * run_el0 at EL1h.
 */

	.set	FRAME_SIZE, 288
	.set	S_SP, 248
	.set	S_PC, 256
	.set	S_PSTATE, 264
	.set	S_ESR, 272
	.set	S_FAR, 280

	.macro	ventry index
	.balign	0x80
	sub	sp, sp, #FRAME_SIZE
	stp	x0, x1, [sp, #0]
	mov	x0, #\index
	b	vector_common
	.endm

	.text
	.balign	0x800
	.globl	vectors
vectors:
	ventry	0		// current EL, SP_EL0: sync
	ventry	1		//                     IRQ
	ventry	2		//                     FIQ
	ventry	3		//                     SError
	ventry	4		// current EL, SP_ELx: sync
	ventry	5		//                     IRQ
	ventry	6		//                     FIQ
	ventry	7		//                     SError
	ventry	8		// lower EL, AArch64:  sync
	ventry	9		//                     IRQ
	ventry	10		//                     FIQ
	ventry	11		//                     SError
	ventry	12		// lower EL, AArch32:  sync
	ventry	13		//                     IRQ
	ventry	14		//                     FIQ
	ventry	15		//                     SError

	.balign	0x80
vector_common:
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x19, [sp, #144]
	stp	x20, x21, [sp, #160]
	stp	x22, x23, [sp, #176]
	stp	x24, x25, [sp, #192]
	stp	x26, x27, [sp, #208]
	stp	x28, x29, [sp, #224]
	str	x30, [sp, #240]

	mrs	x1, elr_el1
	mrs	x2, spsr_el1
	stp	x1, x2, [sp, #S_PC]
	mrs	x3, esr_el1
	mrs	x4, far_el1
	stp	x3, x4, [sp, #S_ESR]
	// the interrupted SP: SP_EL0 when it came from EL0t or EL1t
	add	x3, sp, #FRAME_SIZE
	mrs	x4, sp_el0
	tst	x2, #1			// SPSR.M[0]: 1 = SP_ELx
	csel	x3, x3, x4, ne
	str	x3, [sp, #S_SP]

	mov	x1, sp
	bl	do_exception

	ldp	x1, x2, [sp, #S_PC]
	msr	elr_el1, x1
	msr	spsr_el1, x2
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x19, [sp, #144]
	ldp	x20, x21, [sp, #160]
	ldp	x22, x23, [sp, #176]
	ldp	x24, x25, [sp, #192]
	ldp	x26, x27, [sp, #208]
	ldp	x28, x29, [sp, #224]
	ldr	x30, [sp, #240]
	ldp	x0, x1, [sp, #0]
	add	sp, sp, #FRAME_SIZE
	eret

/* u64 run_el0(u64 (*fn)(void), u64 sp_top) */
	.globl	run_el0
run_el0:
	stp	x29, x30, [sp, #-96]!
	mov	x29, sp
	stp	x19, x20, [sp, #16]
	stp	x21, x22, [sp, #32]
	stp	x23, x24, [sp, #48]
	stp	x25, x26, [sp, #64]
	stp	x27, x28, [sp, #80]
	msr	sp_el0, x1
	msr	elr_el1, x0
	mov	x2, #0x3c0		// EL0t, DAIF masked
	msr	spsr_el1, x2
	adr	x30, el0_return
	eret
	// exceptions.c resumes here at EL1h, with this SP and fn's x0
	.globl	el0_resume
el0_resume:
	ldp	x19, x20, [sp, #16]
	ldp	x21, x22, [sp, #32]
	ldp	x23, x24, [sp, #48]
	ldp	x25, x26, [sp, #64]
	ldp	x27, x28, [sp, #80]
	ldp	x29, x30, [sp], #96
	ret

	.globl	el0_return
el0_return:
	svc	#0xffff
	b	.
