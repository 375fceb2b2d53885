"""What a deployment file may not do (onemetal.vmm.domain_policy): every element that would
hand the VM a host program, device, socket, file or network endpoint is refused naming it,
in-process here; tests/test_vmm_security_lab.py shows deploy leaving no domain and no file."""

from __future__ import annotations

import os

import pytest

from onemetal.errors import InputError
from onemetal.vmm import domain_xml

DATA = os.path.join(os.path.dirname(__file__), "data", "vmm", "deployment.0")
DATASTORES = "/var/lib/one/datastores"
VM_DIR = f"{DATASTORES}/0/7"
NIC = ("<interface type='bridge'><virtualport type='openvswitch'/><source bridge='br-mesh'/>"
       "<target dev='one-7-0'/>{}</interface>")


def _sample(devices: str = "", top: str = "") -> str:
    with open(DATA, encoding="utf-8") as f:
        text = f.read()
    return text.replace("\t</devices>", devices + "\t</devices>" + top, 1)


def _rewrite(text: str) -> str:
    return domain_xml.rewrite(text, {"one-7-0": 1450}, "127.0.0.1", "rewrite", "7",
                              (DATASTORES, VM_DIR))[1]


# (what goes into <devices>, what goes after it, the field named, words of the reason)
HOSTILE = [
    (NIC.format("<script path='/tmp/x.sh'/>"), "", "devices/interface[1]/script",
     "program libvirtd runs as root"),
    (NIC.format("<downscript path='/tmp/x.sh'/>"), "", "devices/interface[1]/downscript",
     "program"),
    ("", "<qemu:commandline><qemu:arg value='-run-with'/></qemu:commandline>",
     "qemu:commandline", "raw options"),
    ("<qemu:arg xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' value='x'/>", "",
     "devices/qemu:arg", "raw options"),
    ("<hostdev mode='subsystem' type='pci'><source><address bus='0x01'/></source></hostdev>", "",
     "devices/hostdev", "host device"),
    ("<shmem name='shared'/>", "", "devices/shmem", "host memory"),
    ("", "<seclabel type='static' model='dac'><label>+0:+0</label></seclabel>", "seclabel",
     "user qemu runs as"),
    ("<filesystem type='mount'><source dir='/etc'/><target dir='etc'/></filesystem>", "",
     "devices/filesystem/source", "'/etc' is outside /var/lib/one/datastores"),
    ("<filesystem type='mount'><binary path='/tmp/virtiofsd'/><source dir='"
     f"{VM_DIR}/fs'/></filesystem>", "", "devices/filesystem/binary", "program '/tmp/virtiofsd'"),
    ("<serial type='file'><source path='/var/lib/one/.ssh/authorized_keys'/></serial>", "",
     "devices/serial/source", "outside /var/lib/one/datastores/0/7"),
    (f"<console type='file'><source path='{DATASTORES}/0/8/disk.0'/></console>", "",
     "devices/console/source", "outside /var/lib/one/datastores/0/7"),
    ("<serial type='pty'><log file='/etc/cron.d/x'/></serial>", "", "devices/serial/log",
     "outside"),
    ("<serial type='tcp'><source mode='bind' host='0.0.0.0' service='4444'/></serial>", "",
     "devices/serial", "type 'tcp'"),
    ("<channel type='dev'><source path='/dev/ttyS0'/></channel>", "", "devices/channel",
     "type 'dev'"),
    ("<disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vda'/></disk>", "",
     "devices/disk", "type 'block'"),
    ("<disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vda'/></disk>", "",
     "devices/disk/source", "'/etc/shadow' is outside"),
    ("<disk type='network' device='disk'><source protocol='nbd' name='x'><host name='10.0.0.1'/>"
     "</source><target dev='vda'/></disk>", "", "devices/disk", "type 'network'"),
    ("<interface type='direct'><source dev='eth0' mode='bridge'/></interface>", "",
     "devices/interface[1]", "bypasses the OVS bridge"),
    ("<interface type='user'/>", "", "devices/interface[1]", "type 'user'"),
    (NIC.format("<backend tap='/dev/net/tun' vhost='/dev/vhost-net'/>"), "",
     "devices/interface[1]/backend", "tap or vhost"),
    ("<input type='evdev'><source dev='/dev/input/event0'/></input>", "", "devices/input/source",
     "host device"),
    ("<tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>",
     "", "devices/tpm/backend", "host's TPM"),
    ("<rng model='virtio'><backend model='random'>/dev/sda</backend></rng>", "",
     "devices/rng/backend", "'/dev/sda'"),
    ("<emulator>/bin/sh</emulator>", "", "devices/emulator[1]", "not a qemu binary"),
]


@pytest.mark.parametrize("devices, top, field, reason", HOSTILE,
                         ids=[h[2] + (":" + h[3][:12] if i else "") for i, h in enumerate(HOSTILE)])
def test_a_hostile_element_is_refused_naming_it(devices, top, field, reason):
    with pytest.raises(InputError) as caught:
        _rewrite(_sample(devices, top))
    assert caught.value.field == f"deployment file: {field}", str(caught.value)
    assert reason in str(caught.value)


@pytest.mark.parametrize("os_part, field", [
    ("<kernel>/boot/vmlinuz</kernel>", "os/kernel"),
    ("<initrd>/var/lib/one/.ssh/id_rsa</initrd>", "os/initrd"),
    ("<loader>/etc/passwd</loader>", "os/loader"),
    ("<nvram>/var/lib/one/one_auth</nvram>", "os/nvram"),
])
def test_os_files_outside_their_places_are_refused(os_part, field):
    text = _sample().replace("<boot dev='network'/>", "<boot dev='network'/>" + os_part)
    with pytest.raises(InputError, match="is outside") as caught:
        _rewrite(text)
    assert caught.value.field == f"deployment file: {field}"


def test_what_libvirtdriverkvm_writes_for_onemetal_passes():
    devices = (f"<disk type='file' device='disk'><source file='{VM_DIR}/disk.0'/>"
               "<target dev='vda'/></disk>"
               f"<disk type='file' device='cdrom'><source file='{VM_DIR}/disk.1'/>"
               "<target dev='hda'/><readonly/></disk>"
               "<serial type='pty'><target port='0'/></serial><console type='pty'/>"
               "<channel type='unix'><source mode='bind'/>"
               "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
               "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
               f"<filesystem type='mount'><binary path='/var/tmp/one/vmm/kvm/virtiofsd.sh'/>"
               f"<source dir='{DATASTORES}/1/fs'/><target dir='fs'/></filesystem>")
    os_part = "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>" \
              f"<nvram>{VM_DIR}/nvram</nvram>"
    text = _sample(devices).replace("<boot dev='network'/>", "<boot dev='network'/>" + os_part)
    assert "org.qemu.guest_agent.0" in _rewrite(text)


def test_libvirts_own_xml_is_not_checked_without_host_paths():
    # save images and live XML carry libvirt's seclabels and pty paths: the policy is deploy's
    text = _sample("<serial type='pty'><source path='/dev/pts/3'/></serial>",
                   "<seclabel type='dynamic' model='dac' relabel='yes'/>")
    domain_xml.rewrite(text, {}, "127.0.0.1", "rewrite", "7")
    with pytest.raises(InputError, match="seclabel"):
        _rewrite(text)
