/*
 * plumbing_stp: a stp straight to a device register. A store pair has no
 * valid data-abort syndrome (ISV=0), so KVM v4.5 cannot emulate it; the
 * machine must report the access as an error instead of carrying on.
 * Standalone: no runtime, just the console and PSCI.
 */
	.set	UART, 0x1000000
	.set	GICD_SGIR, 0x3fff0f00
	.set	PSCI_SYSTEM_OFF, 0x84000008

	.section .text.start, "ax"
	.globl	_start
_start:
	adr	x1, before
	bl	puts
	movz	x2, #(GICD_SGIR >> 16), lsl #16
	movk	x2, #(GICD_SGIR & 0xffff)
	mov	x0, #(2 << 24)
	mov	x1, #0
	stp	x0, x1, [x2]			// no syndrome: must stop the run
	adr	x1, after			// reached only if it did not
	bl	puts
	movz	x0, #(PSCI_SYSTEM_OFF >> 16), lsl #16
	movk	x0, #(PSCI_SYSTEM_OFF & 0xffff)
	hvc	#0
	b	.

/* puts(x1 = string): one strb to THR per character */
puts:
	movz	x0, #(UART >> 16), lsl #16
1:	ldrb	w3, [x1], #1
	cbz	w3, 2f
	strb	w3, [x0]
	b	1b
2:	ret

before:	.asciz	"plumbing_stp: stp x0, x1 to GICD_SGIR\n"
after:	.asciz	"FAIL: plumbing_stp: the stp went through\nEXIT: STATUS=3\n"
	.balign	4
