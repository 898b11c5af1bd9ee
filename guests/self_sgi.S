// self_sgi: the "self-IPI" reference guest (mission.md, reference guest 2).
//
// Every iteration sends SGI0 to this vCPU, then acknowledges and EOIs it.
// Only the send exits to the hypervisor:
//   - GICv2: the 32-bit write to GICD_SGIR is a stage-2 data abort that KVM
//     emulates in the vgic distributor; GICC_IAR/GICC_EOIR live in the GICV
//     page, which is mapped straight into the guest, so they do not trap.
//   - GICv3: the write to ICC_SGI1R_EL1 traps (EC 0x18); ICC_IAR1_EL1 and
//     ICC_EOIR1_EL1 hit the virtual CPU interface and do not trap.
// Interrupts stay masked (PSTATE.I) throughout: the guest polls the
// acknowledge register and never takes the IRQ. `wfi` still wakes up on a
// pending interrupt while it is masked, so it is the idle step of the poll.
//
// Entry: flat binary loaded at 0x80080000, entered at its first byte at EL1
// with the MMU off and interrupts masked.
//
// ITERS (loop count) comes from `as --defsym ITERS=N`; the default is 1<<20.
//
// The GICv3 CPU-interface registers are written with their generic
// s<op0>_<op1>_c<CRn>_c<CRm>_<op2> names so that any stock assembler takes
// them, whatever GIC register names it knows; the comment on each use gives
// the architectural name and its encoding.

	.ifndef ITERS
	.set	ITERS, 1 << 20
	.endif
	// The count is loaded with a fixed movz/movk pair below, so it must fit
	// in 32 bits; a zero count would make the cbnz loop wrap around to 2^64.
	.if	(ITERS < 1) || (ITERS > 0xffffffff)
	.error	"ITERS must be in 1 .. 0xffffffff"
	.endif

	.set	PSCI_SYSTEM_RESET,	0x84000009	// kvmtool ends the VM on it

	// kvmtool's GIC layout.
	.set	GICD_BASE,	0x3fff0000	// distributor (v2 and v3)
	.set	GICC_BASE,	0x3ffd0000	// GICv2 CPU interface (the GICV page)
	.set	GICR_BASE,	0x3fbf0000	// GICv3 redistributor 0 (32 vCPUs)
	.set	GICR_SGI_BASE,	GICR_BASE + 0x10000	// its SGI/PPI page

	// Register offsets.
	.set	GICD_CTLR,		0x000
	.set	GICD_ISENABLER0,	0x100	// v2: set-enable for INTIDs 0-31
	.set	GICD_IPRIORITYR0,	0x400	// v2: priority of INTIDs 0-3
	.set	GICD_SGIR,		0xf00
	.set	GICC_CTLR,		0x00
	.set	GICC_PMR,		0x04
	.set	GICC_IAR,		0x0c
	.set	GICC_EOIR,		0x10
	.set	GICR_ISENABLER0,	0x100	// v3, SGI page: set-enable 0-31
	.set	GICR_IPRIORITYR0,	0x400	// v3, SGI page: priority of 0-3

	.set	SPURIOUS,	0x3ff	// INTID 1023: nothing pending

	.text
	.globl	_start
_start:
	// x19 = ITERS. Always two instructions, whatever ITERS is, so all
	// lengths share one layout and differ only in these two immediates.
	movz	x19, #((ITERS >> 16) & 0xffff), lsl #16
	movk	x19, #(ITERS & 0xffff)

	// Pick the GIC flavour. ID_AA64PFR0_EL1.GIC (bits [27:24]) says whether
	// the GIC system-register interface is implemented. A GICv2 guest on a
	// GICv3 host can still see it nonzero, so also require ICC_SRE_EL1.SRE
	// (bit 0): it is 1 only when the system registers are actually in use.
	// ICC_SRE_EL1 is only read when the field is nonzero, since it does not
	// exist otherwise.
	mrs	x1, id_aa64pfr0_el1
	ubfx	x1, x1, #24, #4
	cbz	x1, gicv2
	mrs	x1, s3_0_c12_c12_5	// ICC_SRE_EL1 (op0=3 op1=0 CRn=12 CRm=12 op2=5)
	tbz	x1, #0, gicv2

gicv3:
	// Distributor: GICD_CTLR.EnableGrp1A (bit 1). KVM keeps ARE set, so
	// SGIs/PPIs are then configured in the redistributor's SGI page.
	movz	x1, #(GICD_BASE >> 16), lsl #16
	mov	w3, #2
	str	w3, [x1, #GICD_CTLR]
	// SGI0-3 at priority 0xa0, then enable SGI0-3.
	movz	x2, #(GICR_SGI_BASE >> 16), lsl #16
	movz	w3, #0xa0a0				// 0xa0a0a0a0 is not a
	movk	w3, #0xa0a0, lsl #16			// logical immediate
	str	w3, [x2, #GICR_IPRIORITYR0]
	mov	w3, #0x0f
	str	w3, [x2, #GICR_ISENABLER0]
	// Let priority 0xa0 through the mask, and enable Group 1 interrupts.
	mov	x3, #0xf0
	msr	s3_0_c4_c6_0, x3	// ICC_PMR_EL1 (op0=3 op1=0 CRn=4 CRm=6 op2=0)
	mov	x3, #1
	msr	s3_0_c12_c12_7, x3	// ICC_IGRPEN1_EL1 (3, 0, c12, c12, 7)

	// ICC_SGI1R_EL1 = 1: INTID 0 (bits [27:24]), Aff3.Aff2.Aff1 = 0.0.0,
	// IRM = 0, TargetList bit 0, i.e. SGI0 to vCPU 0 = ourselves.
	mov	x4, #1
v3_send:
	msr	s3_0_c12_c11_5, x4	// ICC_SGI1R_EL1 (3, 0, c12, c11, 5): traps
v3_poll:
	mrs	x0, s3_0_c12_c12_0	// ICC_IAR1_EL1 (3, 0, c12, c12, 0)
	cmp	x0, #SPURIOUS
	b.ne	v3_eoi
	wfi
	b	v3_poll
v3_eoi:
	msr	s3_0_c12_c12_1, x0	// ICC_EOIR1_EL1 (3, 0, c12, c12, 1)
	sub	x19, x19, #1
	cbnz	x19, v3_send
	b	done

gicv2:
	// Set-up; every GICv2 register access is 32-bit (str w / ldr w).
	movz	x1, #(GICD_BASE >> 16), lsl #16
	movz	x2, #(GICC_BASE >> 16), lsl #16
	mov	w3, #1
	str	w3, [x1, #GICD_CTLR]		// distributor enable
	movz	w3, #0xa0a0				// 0xa0a0a0a0 is not a
	movk	w3, #0xa0a0, lsl #16			// logical immediate
	str	w3, [x1, #GICD_IPRIORITYR0]	// SGI0-3 at priority 0xa0
	mov	w3, #0x0f
	str	w3, [x1, #GICD_ISENABLER0]	// enable SGI0-3
	mov	w3, #0xf0
	str	w3, [x2, #GICC_PMR]		// let priority 0xa0 through
	mov	w3, #1
	str	w3, [x2, #GICC_CTLR]		// CPU interface enable

	// GICD_SGIR = 2<<24: TargetListFilter 0b10 ("this CPU only"), SGI 0.
	mov	w4, #(2 << 24)
v2_send:
	str	w4, [x1, #GICD_SGIR]		// stage-2 fault: the exit
v2_poll:
	ldr	w0, [x2, #GICC_IAR]
	cmp	w0, #SPURIOUS
	b.ne	v2_eoi
	wfi
	b	v2_poll
v2_eoi:
	str	w0, [x2, #GICC_EOIR]
	sub	x19, x19, #1
	cbnz	x19, v2_send

done:
	// End of the VM: PSCI SYSTEM_RESET. Should the host ever return, spin.
	movz	x0, #(PSCI_SYSTEM_RESET >> 16), lsl #16
	movk	x0, #(PSCI_SYSTEM_RESET & 0xffff)
	hvc	#0
	b	.
