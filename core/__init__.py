"""worldswitch: a simulator of KVM/ARM world-switch costs, with the 2016 entry/exit
optimizations as plugins. Import-light: the emulator loads only when a run starts."""

__version__ = "0.1.0"
