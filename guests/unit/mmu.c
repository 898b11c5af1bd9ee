/*
 * mmu: stage-1 aborts taken through our own vector with the syndrome the
 * hardware writes. The MMU is turned on with a 4 KiB granule and a 39-bit VA
 * space (the walk starts at level 1), RAM and the device region mapped flat,
 * and a few holes and traps placed on purpose:
 *   - 0xc0000000: level-1 entry invalid           -> translation fault, level 1
 *   - 0x40000000: level-2 block with AF clear     -> access flag fault, level 2
 *   - 0x40200000: level-2 block, read-only        -> a read works, a write is a
 *                                                    permission fault, level 2
 *   - 0x40400000: level-2 entry invalid           -> translation fault, level 2
 *   - 0x40600000: level-3 page entry invalid      -> translation fault, level 3
 *   - 0x8000000000: past T0SZ's 39 bits           -> translation fault, level 0
 *   - a branch to 0xc0000000                      -> instruction abort, level 1
 * None of them leaves the guest on KVM: each is an exception at EL1 (EC 0x25
 * for data, 0x21 for instructions), ESR's DFSC saying which fault and where,
 * FAR the address, ELR the faulting instruction.
 */
#include "unit.h"

const char progname[] = "mmu";

#define EC_IABT_CUR	0x21
#define EC_DABT_CUR	0x25
#define ESR_WNR		BIT(6)
#define DFSC(esr)	((esr) & 0x3f)

/* descriptor bits (4 KiB granule) */
#define D_VALID		BIT(0)
#define D_TABLE		BIT(1)		/* level 1-2: table; level 3: page */
#define D_ATTR(i)	((u64)(i) << 2)	/* MAIR index */
#define D_AP_RO		BIT(7)		/* AP[2]: read-only */
#define D_SH_INNER	(3UL << 8)
#define D_AF		BIT(10)
#define DEVICE		D_ATTR(0)
#define NORMAL		(D_ATTR(1) | D_SH_INNER)

#define GB		(1UL << 30)
#define MB2		(1UL << 21)

static u64 l1[512] __attribute__((aligned(4096)));
static u64 l2[512] __attribute__((aligned(4096)));
static u64 l3[512] __attribute__((aligned(4096)));
static u64 scratch[512] __attribute__((aligned(2 << 20)));	/* the start of the 2 MiB the RO block maps */

static struct {
	int count;
	u64 esr, far, elr;
} seen;

static void record(struct pt_regs *regs, u64 esr)
{
	seen.count++;
	seen.esr = esr;
	seen.far = read_sysreg(far_el1);
	seen.elr = regs->pc;
	regs->pc += 4;			/* step over the access */
}

static void iabt(struct pt_regs *regs, u64 esr)
{
	seen.count++;
	seen.esr = esr;
	seen.far = read_sysreg(far_el1);
	seen.elr = regs->pc;
	regs->pc = regs->regs[30];	/* back to the caller of the bad branch */
}

static void reset_seen(void)
{
	memset(&seen, 0, sizeof(seen));
}

static void mmu_on(void)
{
	u64 ram = (u64)&l1 & ~(GB - 1);	/* the GB the image sits in */

	l1[0] = 0 | DEVICE | D_AF | D_VALID;			/* devices, flat */
	l1[1] = (u64)l2 | D_TABLE | D_VALID;			/* the test region */
	l1[ram / GB] = ram | NORMAL | D_AF | D_VALID;		/* RAM, flat */
	/* l1[3] (0xc0000000) stays invalid */
	l2[0] = (u64)scratch | NORMAL | D_VALID;		/* AF clear */
	l2[1] = (u64)scratch | NORMAL | D_AP_RO | D_AF | D_VALID;
	/* l2[2] stays invalid */
	l2[3] = (u64)l3 | D_TABLE | D_VALID;			/* l3[0] stays invalid */

	write_sysreg(0xff00UL, mair_el1);			/* attr0 Device-nGnRnE, attr1 Normal WB */
	/* T0SZ 25 (39-bit VA), IRGN0/ORGN0 WBWA, SH0 inner, TG0 4K, EPD1 (no TTBR1 walks), IPS 40 bits */
	write_sysreg(25UL | (1UL << 8) | (1UL << 10) | (3UL << 12) | (1UL << 23) | (2UL << 32), tcr_el1);
	write_sysreg((u64)l1, ttbr0_el1);
	asm volatile("dsb ish" : : : "memory");
	isb();
	write_sysreg(read_sysreg(sctlr_el1) | 1, sctlr_el1);	/* M */
	isb();
}

static u64 load(u64 va)
{
	u64 v;

	asm volatile("ldr %0, [%1]" : "=r"(v) : "r"(va) : "memory");
	return v;
}

static void store(u64 va, u64 v)
{
	asm volatile("str %0, [%1]" : : "r"(v), "r"(va) : "memory");
}

static void check_data(const char *what, u64 va, bool write, u64 dfsc)
{
	reset_seen();
	if (write)
		store(va, 0x1234);
	else
		(void)load(va);
	report(seen.count == 1, "%s: taken once", what);
	report(ESR_EC(seen.esr) == EC_DABT_CUR && (seen.esr & ESR_IL) && DFSC(seen.esr) == dfsc &&
	       !!(seen.esr & ESR_WNR) == write,
	       "%s: ESR 0x%lx (EC 0x25, DFSC 0x%lx, WnR %d)", what, seen.esr, dfsc, write);
	report(seen.far == va, "%s: FAR 0x%lx", what, seen.far);
}

void jump_to(u64 va);
asm(
	"	.text\n"
	"	.globl jump_to\n"
	"jump_to:\n"
	"	br x0\n"
);

int main(void)
{
	report_prefix("mmu");
	install_sync_handler(EL1_SPX, EC_DABT_CUR, record);
	install_sync_handler(EL1_SPX, EC_IABT_CUR, iabt);
	mmu_on();
	report(read_sysreg(sctlr_el1) & 1, "MMU on");
	printf("mmu: printing through the Device mapping works\n");

	check_data("unmapped GB, read", 0xc0000000UL, false, 0x05);
	check_data("unmapped GB, write", 0xc0000010UL, true, 0x05);
	check_data("access flag clear", 0x40000000UL + 0x40, false, 0x0a);
	scratch[8] = 0x5a5a;
	report(load(0x40200000UL + 64) == 0x5a5a, "read-only block: a read sees the memory");
	check_data("read-only block, write", 0x40200000UL + 64, true, 0x0e);
	check_data("invalid level-2 entry", 0x40400000UL + 8, false, 0x06);
	check_data("invalid level-3 entry", 0x40600000UL + 0x18, true, 0x07);
	check_data("past the 39-bit VA space", 0x8000000000UL, false, 0x04);

	reset_seen();
	jump_to(0xc0000000UL);
	report(seen.count == 1, "bad branch: taken once");
	report(ESR_EC(seen.esr) == EC_IABT_CUR && (seen.esr & ESR_IL) && DFSC(seen.esr) == 0x05,
	       "bad branch: ESR 0x%lx (EC 0x21, DFSC 0x05)", seen.esr);
	report(seen.far == 0xc0000000UL && seen.elr == 0xc0000000UL, "bad branch: FAR and ELR 0x%lx", seen.far);
	return report_summary();
}
