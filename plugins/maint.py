"""The test patches 8 (GICv2) and 14 (GICv3) share: can a maintenance interrupt be pending?"""


def expect_maint_int(vgic_cpu, lrs: int, uie: int, lr_eoi: int, lr_hw: int) -> bool:
    """Only if underflow was requested (HCR.UIE) or a saved LR asked to be told of its EOI
    (EOI set, HW clear): otherwise MISR and EISR are known to read zero."""
    if vgic_cpu.vgic_hcr & uie:
        return True
    for i in range(vgic_cpu.nr_lr):
        if (lrs >> i) & 1:
            lr = vgic_cpu.vgic_lr[i]
            if lr & lr_eoi and not lr & lr_hw:
                return True
    return False
