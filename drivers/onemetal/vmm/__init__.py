"""The KVM virtualization driver (VM_MAD onemetal) on libvirt-python: see docs/vmm.md."""
