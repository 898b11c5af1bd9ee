"""The 17 patches of "KVM/ARM: Guest Entry/Exit optimizations" (2016) as plugins.

Each module is one patch: it declares ``WORLDSWITCH_PLUGIN`` and changes one step of
the vanilla v4.5 path through the hooks of :mod:`worldswitch.hookspecs`.
"""
