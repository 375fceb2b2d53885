"""etc/oned.d/vmm.conf: the VM_MAD section for onemetal, as `onemetal install --apply-oned-conf`
puts it into oned.conf next to OpenNebula's own kvm section, checked against oned's rules."""

from __future__ import annotations

import os
import re
import shlex

from onemetal import oned_conf
from onemetal.install import Layout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIRROR_DEFAULT = os.path.join(REPO, "tests", "data", "oned_conf_default.conf")
# one_vmm_exec.rb's GetoptLong options: those with an argument, and -p without one
WITH_ARGUMENT = {"-r", "-t", "-l", "-d", "-s", "-w"}


def _sections(text: str, name: str) -> list[dict[str, str]]:
    """Every uncommented `NAME = [ KEY = "value", ... ]` of oned.conf's syntax."""
    found = []
    for body in re.findall(rf"^[ \t]*{name}[ \t]*=[ \t]*\[(.*?)\]", text, re.M | re.S):
        pairs = re.findall(r'(\w+)\s*=\s*"([^"]*)"', body)
        assert len(pairs) == body.count("="), f"unquoted value in {name}: {body}"
        found.append(dict(pairs))
    return found


def _installed() -> str:
    with open(MIRROR_DEFAULT, encoding="utf-8") as f:
        default = f.read()
    fragments = Layout(prefix="/var/lib/one", etc="/etc/one", source=REPO).fragments()
    return oned_conf.installed(default + KVM, fragments, [], [])[0]


# OpenNebula's own kvm section (share/etc/oned.conf), which the block must leave alone
KVM = """
VM_MAD = [
    NAME           = "kvm",
    SUNSTONE_NAME  = "KVM",
    EXECUTABLE     = "one_vmm_exec",
    ARGUMENTS      = "-t 15 -r 0 kvm -p",
    DEFAULT        = "vmm_exec/vmm_exec_kvm.conf",
    TYPE           = "kvm",
    KEEP_SNAPSHOTS = "yes",
    LIVE_RESIZE    = "yes",
    SUPPORT_SHAREABLE    = "yes"
]
"""


def test_the_block_adds_a_second_vm_mad_with_its_own_name():
    sections = _sections(_installed(), "VM_MAD")
    names = [s["NAME"] for s in sections]
    assert names.count("onemetal") == 1 and "kvm" in names and len(set(names)) == len(names)
    ours = next(s for s in sections if s["NAME"] == "onemetal")
    assert ours["EXECUTABLE"] == "one_vmm_exec" and ours["TYPE"] == "kvm"
    assert ours["DEFAULT"] == "vmm_exec/vmm_exec_kvm.conf"
    assert ours["KEEP_SNAPSHOTS"] in ("yes", "no") and ours["LIVE_RESIZE"] in ("yes", "no")


def test_the_arguments_parse_as_one_vmm_exec_reads_them_and_name_our_remotes():
    ours = next(s for s in _sections(_installed(), "VM_MAD") if s["NAME"] == "onemetal")
    words, options, positional = shlex.split(ours["ARGUMENTS"]), {}, []
    while words:
        word = words.pop(0)
        if word in WITH_ARGUMENT:
            options[word] = words.pop(0)
        elif word == "-p":
            options[word] = ""
        else:
            assert not word.startswith("-"), f"one_vmm_exec has no option {word}"
            positional.append(word)
    assert positional == ["onemetal"]  # GetoptLong permutes: vmm/<this> is the remotes directory
    assert os.path.isfile(os.path.join(REPO, "remotes", "vmm", "onemetal", "driver"))
    assert "-p" in options and "-l" not in options  # every action on the host, in parallel
    assert options["-t"].isdigit() and options["-r"].isdigit()
