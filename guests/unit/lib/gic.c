/*
 * gic.c: the guest's side of a GICv2 or GICv3, whichever the DT describes.
 *
 * GICv2 ("arm,cortex-a15-gic"): reg = distributor, CPU interface. All
 * registers are 32-bit MMIO; SGIs go through GICD_SGIR.
 * GICv3 ("arm,gic-v3"): reg = distributor, redistributor region. Affinity
 * routing is on, so SGIs and PPIs are configured in the redistributor's SGI
 * frame; the CPU interface is the ICC_* system registers (written with their
 * generic s3_* names, which every assembler accepts).
 */
#include "unit.h"

/* GICv2 CPU interface */
#define GICC_CTLR 0x00
#define GICC_PMR  0x04
#define GICC_IAR  0x0c
#define GICC_EOIR 0x10

/* GICv3 distributor and redistributor */
#define GICD_CTLR_ARE_NS      BIT(4)
#define GICD_CTLR_ENABLE_G1A  BIT(1)
#define GICR_WAKER            0x0014
#define GICR_TYPER            0x0008
#define GICR_TYPER_LAST       BIT(4)
#define GICR_WAKER_PSLEEP     BIT(1)
#define GICR_WAKER_CASLEEP    BIT(2)
#define GICR_FRAME_SIZE       0x20000
#define GICR_SGI_BASE         0x10000
#define GICR_ISENABLER0       (GICR_SGI_BASE + 0x100)
#define GICR_IPRIORITYR0      (GICR_SGI_BASE + 0x400)

#define read_icc_sre()       read_sysreg(s3_0_c12_c12_5)
#define write_icc_pmr(v)     write_sysreg(v, s3_0_c4_c6_0)
#define write_icc_igrpen1(v) write_sysreg(v, s3_0_c12_c12_7)
#define read_icc_iar1()      read_sysreg(s3_0_c12_c12_0)
#define write_icc_eoir1(v)   write_sysreg(v, s3_0_c12_c12_1)
#define write_icc_sgi1r(v)   write_sysreg(v, s3_0_c12_c11_5)

static int version;
static u64 dist, cpu;	/* cpu: GICv2 CPU interface, or this CPU's redistributor */
static u64 redist_region, redist_size;

int gic_version(void) { return version; }
u64 gic_dist_base(void) { return dist; }
u64 gic_cpu_base(void) { return version == 3 ? redist_region : cpu; }

/* The redistributor frame whose GICR_TYPER affinity is this CPU's MPIDR. */
static u64 find_redist(void)
{
	u64 mpidr = read_sysreg(mpidr_el1);
	u32 aff = (u32)(((mpidr >> 8) & 0xff000000) | (mpidr & 0xffffff));
	u64 frame;

	for (frame = redist_region; frame + GICR_FRAME_SIZE <= redist_region + redist_size;
	     frame += GICR_FRAME_SIZE) {
		u64 typer = readq(frame + GICR_TYPER);

		if ((u32)(typer >> 32) == aff)
			return frame;
		if (typer & GICR_TYPER_LAST)
			break;
	}
	return 0;
}

int gic_init(void)
{
	int node;

	version = 0;
	node = dt_find_compatible("arm,cortex-a15-gic");
	if (node >= 0 && !dt_reg(node, 0, &dist, NULL) && !dt_reg(node, 1, &cpu, NULL)) {
		version = 2;
		return version;
	}
	node = dt_find_compatible("arm,gic-v3");
	if (node >= 0 && !dt_reg(node, 0, &dist, NULL) &&
	    !dt_reg(node, 1, &redist_region, &redist_size)) {
		cpu = find_redist();
		if (cpu)
			version = 3;
	}
	return version;
}

void gic_enable_defaults(void)
{
	if (version == 2) {
		writel(1, dist + GICD_CTLR);		/* forward Group 0 */
		writel(0xf0, cpu + GICC_PMR);
		writel(1, cpu + GICC_CTLR);		/* signal Group 0 */
	} else if (version == 3) {
		writel(GICD_CTLR_ARE_NS | GICD_CTLR_ENABLE_G1A, dist + GICD_CTLR);
		writel(readl(cpu + GICR_WAKER) & ~(u32)GICR_WAKER_PSLEEP, cpu + GICR_WAKER);
		while (readl(cpu + GICR_WAKER) & GICR_WAKER_CASLEEP)
			;
		write_icc_pmr(0xf0);
		write_icc_igrpen1(1);
		isb();
	}
}

void gic_irq_enable(unsigned int irq)
{
	u64 reg = (version == 3 && irq < 32) ? cpu + GICR_ISENABLER0
					     : dist + GICD_ISENABLER + 4 * (irq / 32);

	writel((u32)BIT(irq % 32), reg);
}

void gic_irq_set_priority(unsigned int irq, u8 prio)
{
	u64 reg = (version == 3 && irq < 32) ? cpu + GICR_IPRIORITYR0 + (irq & ~3U)
					     : dist + GICD_IPRIORITYR + (irq & ~3U);
	unsigned int shift = 8 * (irq & 3);
	u32 v = readl(reg);

	/* one 32-bit read-modify-write: byte accesses are optional on a GICv2 */
	writel((v & ~(0xffU << shift)) | ((u32)prio << shift), reg);
}

void gic_send_sgi_self(unsigned int sgi)
{
	if (version == 2) {
		writel((2U << 24) | (sgi & 0xf), dist + GICD_SGIR);	/* "this CPU only" */
	} else if (version == 3) {
		u64 mpidr = read_sysreg(mpidr_el1);
		u64 v = ((u64)(sgi & 0xf) << 24) | BIT(mpidr & 0xf);

		v |= ((mpidr >> 8) & 0xff) << 16;	/* Aff1 */
		v |= ((mpidr >> 16) & 0xff) << 32;	/* Aff2 */
		v |= ((mpidr >> 32) & 0xff) << 48;	/* Aff3 */
		write_icc_sgi1r(v);
		isb();
	}
}

u32 gic_read_iar(void)
{
	if (version == 3) {
		u32 iar = (u32)read_icc_iar1();

		dsb(sy);
		return iar;
	}
	return readl(cpu + GICC_IAR);
}

void gic_write_eoir(u32 iar)
{
	if (version == 3) {
		write_icc_eoir1(iar);
		isb();
	} else {
		writel(iar, cpu + GICC_EOIR);
	}
}

u64 gic_icc_sre(void)
{
	return version == 3 ? read_icc_sre() : 0;
}
