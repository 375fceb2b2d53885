"""bench/vmm_deploy.py: one round prints deploy and cancel for onemetal, direct libvirt, virsh and,
with OpenNebula's git mirror here, its stock kvm scripts."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO

LINE = re.compile(r"^  (deploy|cancel) +onemetal +([\d.]+) +direct +([\d.]+) +virsh +([\d.]+) +"
                  r"onemetal overhead +(-?[\d.]+) +ratio onemetal/virsh ([\d.]+)"
                 r"(?: +stock +([\d.]+) +ratio onemetal/stock ([\d.]+))?$", re.M)
MIRROR = "/work/.mirror/OpenNebula+one/repo"


def test_one_round_prints_both_actions_every_way():
    run = subprocess.run([sys.executable, os.path.join(REPO, "bench", "vmm_deploy.py"),
                          "--rounds", "1"], capture_output=True, text=True, timeout=300)
    print(run.stdout)
    assert run.returncode == 0, run.stderr
    found = {m.group(1): [None if g is None else float(g) for g in m.groups()[1:]]
             for m in LINE.finditer(run.stdout)}
    assert sorted(found) == ["cancel", "deploy"]
    for onemetal, direct, virsh, overhead, ratio, stock, stock_ratio in found.values():
        assert min(onemetal, direct, virsh) > 0
        assert abs(overhead - (onemetal - direct)) < 0.2
        assert abs(ratio - onemetal / virsh) < 0.02
        assert (stock is not None) == os.path.isdir(MIRROR)
        if stock is not None:
            assert stock > 0 and abs(stock_ratio - onemetal / stock) < 0.02
