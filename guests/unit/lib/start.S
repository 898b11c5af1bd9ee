/*
 * start.S: entry point. The machine enters the flat image at its first byte,
 * at EL1h with DAIF masked and the MMU off; x0 holds the physical address of
 * the device tree (Linux arm64 boot protocol, as kvmtool sets it up).
 */

	.section .text.start, "ax"
	.globl	_start
_start:
	mov	x19, x0				// the DTB, kept across the set-up

	adrp	x1, stack_top			// SP_EL1
	add	x1, x1, :lo12:stack_top
	mov	sp, x1

	adrp	x1, __bss_start			// clear .bss (the stack lives there
	add	x1, x1, :lo12:__bss_start	// too, but nothing is on it yet)
	adrp	x2, __bss_end
	add	x2, x2, :lo12:__bss_end
1:	cmp	x1, x2
	b.hs	2f
	stp	xzr, xzr, [x1], #16
	b	1b
2:
	adrp	x1, vectors			// our own exception vectors
	add	x1, x1, :lo12:vectors
	msr	vbar_el1, x1
	isb

	mov	x0, x19
	bl	setup				// DT, console, argv

	adrp	x1, __argc
	ldr	w0, [x1, :lo12:__argc]
	adrp	x1, __argv
	add	x1, x1, :lo12:__argv
	bl	main
	bl	exit				// does not return
	b	.

	.section .bss.stack, "aw", %nobits
	.balign	16
stack_bottom:
	.space	16384
	.globl	stack_top
stack_top:
