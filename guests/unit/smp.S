/*
 * smp: two vCPUs on a GICv2 guest (platforms A, B, C-v2), no runtime.
 *
 * CPU 0 brings CPU 1 up with PSCI CPU_ON (entry `secondary`, context 0x5a).
 * CPU 1 stores its context id and MPIDR, enables the CPU interface, then
 * waits in WFI (IRQs masked: a pending interrupt still ends WFI) until CPU 0's
 * SGI 3 arrives; it acknowledges it (GICC_IAR gives SGI 3 from CPU 0), EOIs,
 * publishes what it saw and powers off with CPU_OFF. CPU 0 waits with WFE for
 * each step, checks AFFINITY_INFO reports CPU 1 OFF at the end, and ends the
 * VM with SYSTEM_OFF. What each vCPU saw is left in x19-x24 of CPU 0:
 *   x19 = context id CPU 1 received, x20 = CPU 1's MPIDR, x21 = CPU 1's IAR,
 *   x22 = CPU_ON's return, x23 = AFFINITY_INFO(CPU 1) at the end, x24 = 1.
 */
	.set	GICD, 0x3fff0000
	.set	GICC, 0x3ffd0000
	.set	PSCI_CPU_ON, 0xc4000003
	.set	PSCI_CPU_OFF, 0x84000002
	.set	PSCI_AFFINITY_INFO, 0xc4000004
	.set	PSCI_SYSTEM_OFF, 0x84000008

	.macro	mov32 reg, val
	movz	\reg, #((\val) >> 16), lsl #16
	movk	\reg, #((\val) & 0xffff)
	.endm

	.section .text.start, "ax"
	.globl	_start
_start:
	adr	x9, mailbox
	mov32	x1, GICD
	mov	w2, #1
	str	w2, [x1]			// GICD_CTLR: enable
	mov32	x0, PSCI_CPU_ON
	mov	x1, #1				// target MPIDR: Aff0 = 1
	adr	x2, secondary
	mov	x3, #0x5a
	hvc	#0
	mov	x22, x0
1:	ldr	w0, [x9]			// wait for CPU 1: ready
	cbnz	w0, 2f
	wfe
	b	1b
2:	mov32	x1, GICD
	mov32	w2, (2 << 16) | 3		// GICD_SGIR: SGI 3 to CPU 1 (target list bit 1)
	str	w2, [x1, #0xf00]
3:	ldr	w0, [x9, #4]			// wait for CPU 1: done
	cbnz	w0, 4f
	wfe
	b	3b
4:	ldr	x19, [x9, #8]
	ldr	x20, [x9, #16]
	ldr	w21, [x9, #24]
5:	mov32	x0, PSCI_AFFINITY_INFO		// until CPU 1 is off
	mov	x1, #1
	mov	x2, #0
	hvc	#0
	cmp	x0, #1
	b.ne	5b
	mov	x23, x0
	mov	x24, #1
	mov32	x0, PSCI_SYSTEM_OFF
	hvc	#0
	b	.

secondary:
	adr	x9, mailbox
	str	x0, [x9, #8]			// the context id
	mrs	x1, mpidr_el1
	str	x1, [x9, #16]
	mov32	x1, GICC
	mov	w2, #1
	str	w2, [x1]			// GICC_CTLR: enable
	mov	w2, #0xf0
	str	w2, [x1, #4]			// GICC_PMR
	mov	w2, #1
	str	w2, [x9]			// ready
	sev
6:	wfi
	ldr	w3, [x1, #0xc]			// GICC_IAR
	cmp	w3, #0x3ff
	b.eq	6b
	str	w3, [x9, #24]
	str	w3, [x1, #0x10]			// GICC_EOIR
	mov	w2, #1
	str	w2, [x9, #4]			// done
	sev
	mov32	x0, PSCI_CPU_OFF
	hvc	#0
	b	.

	.balign	8
mailbox:
	.word	0, 0				// ready, done
	.quad	0, 0				// context id, MPIDR
	.word	0				// IAR
