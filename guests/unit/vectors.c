/*
 * vectors: synchronous exceptions that never leave the guest, taken through
 * our own VBAR_EL1 with the syndrome the hardware (or KVM) writes:
 *   - svc from EL1h: EC 0x15, the immediate in the ISS, ELR past the svc;
 *   - udf: EC 0 (Unknown), ELR at the udf itself;
 *   - an IMPLEMENTATION DEFINED system register (op0=3, CRn=15): HCR_EL2.TIDCP
 *     traps it, KVM does not know it and injects an Unknown exception;
 *   - svc from EL0t (MMU off): taken at VBAR_EL1 + 0x400, SPSR says EL0t;
 *   - hvc from EL0: undefined at EL0, so EC 0 at the hvc, no hypervisor call.
 */
#include "unit.h"

const char progname[] = "vectors";

static struct {
	int count;
	u64 esr, elr, spsr, far, sp;
} seen;

static void record(struct pt_regs *regs, u64 esr)
{
	seen.count++;
	seen.esr = esr;
	seen.elr = regs->pc;
	seen.spsr = regs->pstate;
	seen.sp = regs->sp;
}

static void svc_handler(struct pt_regs *regs, u64 esr)
{
	record(regs, esr);		/* ELR is already the next instruction */
}

static void undef_handler(struct pt_regs *regs, u64 esr)
{
	record(regs, esr);
	regs->pc += 4;			/* step over the faulting instruction */
}

static void reset_seen(void)
{
	memset(&seen, 0, sizeof(seen));
}

/* Each sequence exports the address of its interesting instruction. */
extern char svc_insn[], svc_next[], udf_insn[], impdef_read_insn[], impdef_write_insn[];
extern char el0_svc_insn[], el0_svc_next[], el0_hvc_insn[];

asm(
	"	.text\n"
	"	.globl do_svc, svc_insn, svc_next\n"
	"do_svc:\n"
	"svc_insn: svc #0x42\n"
	"svc_next: ret\n"
	"	.globl do_udf, udf_insn\n"
	"do_udf:\n"
	"udf_insn: udf #0x1234\n"
	"	ret\n"
	"	.globl do_impdef_read, impdef_read_insn\n"
	"do_impdef_read:\n"
	"	mov x0, #0x5a5a\n"
	"impdef_read_insn: mrs x0, s3_1_c15_c2_0\n"
	"	ret\n"
	"	.globl do_impdef_write, impdef_write_insn\n"
	"do_impdef_write:\n"
	"impdef_write_insn: msr s3_1_c15_c2_0, x0\n"
	"	ret\n"
	"	.globl el0_svc, el0_svc_insn, el0_svc_next\n"
	"el0_svc:\n"
	"	mov x0, #7\n"
	"el0_svc_insn: svc #0x1ee7\n"
	"el0_svc_next: add x0, x0, #1\n"
	"	ret\n"
	"	.globl el0_hvc, el0_hvc_insn\n"
	"el0_hvc:\n"
	"	movz x0, #0x8400, lsl #16\n"		/* PSCI_VERSION, were it a call */
	"el0_hvc_insn: hvc #0\n"
	"	ret\n"
);

void do_svc(void);
void do_udf(void);
u64 do_impdef_read(void);
void do_impdef_write(u64 v);
u64 el0_svc(void);
u64 el0_hvc(void);

static u8 el0_stack[4096] __attribute__((aligned(16)));

int main(void)
{
	u64 ret;

	report_prefix("vectors");
	report(((u64)vectors & 0x7ff) == 0 && read_sysreg(vbar_el1) == (u64)vectors,
	       "VBAR_EL1 = 0x%lx", read_sysreg(vbar_el1));

	install_sync_handler(EL1_SPX, EC_SVC64, svc_handler);
	install_sync_handler(EL1_SPX, EC_UNKNOWN, undef_handler);
	install_sync_handler(EL0_64, EC_SVC64, svc_handler);
	install_sync_handler(EL0_64, EC_UNKNOWN, undef_handler);

	/* svc at EL1h */
	reset_seen();
	do_svc();
	report(seen.count == 1, "svc: taken once");
	report(ESR_EC(seen.esr) == EC_SVC64 && (seen.esr & 0xffff) == 0x42 && (seen.esr & ESR_IL),
	       "svc: ESR 0x%lx (EC 0x15, imm 0x42, IL)", seen.esr);
	report(seen.elr == (u64)svc_next, "svc: ELR 0x%lx is the next instruction", seen.elr);
	report((seen.spsr & 0xf) == 0x5, "svc: SPSR 0x%lx says EL1h", seen.spsr);

	/* udf */
	reset_seen();
	do_udf();
	report(seen.count == 1, "udf: taken once");
	report(seen.esr == ESR_IL, "udf: ESR 0x%lx (EC 0, IL)", seen.esr);
	report(seen.elr == (u64)udf_insn, "udf: ELR 0x%lx is the udf", seen.elr);

	/* an IMPLEMENTATION DEFINED register KVM does not emulate */
	reset_seen();
	ret = do_impdef_read();
	report(seen.count == 1 && seen.esr == ESR_IL, "impdef read: UNDEF (ESR 0x%lx)", seen.esr);
	report(seen.elr == (u64)impdef_read_insn, "impdef read: ELR 0x%lx is the mrs", seen.elr);
	report(ret == 0x5a5a, "impdef read: x0 unchanged (0x%lx)", ret);
	reset_seen();
	do_impdef_write(1);
	report(seen.count == 1 && seen.esr == ESR_IL && seen.elr == (u64)impdef_write_insn,
	       "impdef write: UNDEF at the msr (ESR 0x%lx, ELR 0x%lx)", seen.esr, seen.elr);

	/* svc from EL0 */
	reset_seen();
	ret = run_el0(el0_svc, (u64)el0_stack + sizeof(el0_stack));
	report(seen.count == 1, "el0 svc: taken once, through VBAR+0x400");
	report(ESR_EC(seen.esr) == EC_SVC64 && (seen.esr & 0xffff) == 0x1ee7,
	       "el0 svc: ESR 0x%lx (EC 0x15, imm 0x1ee7)", seen.esr);
	report(seen.elr == (u64)el0_svc_next, "el0 svc: ELR 0x%lx is the next instruction", seen.elr);
	report((seen.spsr & 0xf) == 0, "el0 svc: SPSR 0x%lx says EL0t", seen.spsr);
	report(seen.sp == (u64)el0_stack + sizeof(el0_stack), "el0 svc: SP_EL0 0x%lx", seen.sp);
	report(ret == 8, "el0 svc: resumed at EL0, back at EL1 with x0 = %lu", ret);
	report(current_el() == 1, "back at EL1");

	/* hvc from EL0 */
	reset_seen();
	ret = run_el0(el0_hvc, (u64)el0_stack + sizeof(el0_stack));
	report(seen.count == 1 && seen.esr == ESR_IL, "el0 hvc: UNDEF (ESR 0x%lx)", seen.esr);
	report(seen.elr == (u64)el0_hvc_insn, "el0 hvc: ELR 0x%lx is the hvc", seen.elr);
	report((seen.spsr & 0xf) == 0, "el0 hvc: SPSR 0x%lx says EL0t", seen.spsr);
	report(ret == PSCI_VERSION, "el0 hvc: no PSCI call made (x0 = 0x%lx)", ret);

	return report_summary();
}
