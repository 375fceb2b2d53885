"""The restricted attributes onemetal's isolation relies on reach oned.conf with the fragments."""

from __future__ import annotations

import os
import re

from onemetal.install import Layout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDED = {("VM_RESTRICTED_ATTR", f"{section}/{attr}")
          for section in ("NIC", "NIC_ALIAS", "NIC_DEFAULT")
          for attr in ("FILTER_IP_SPOOFING", "FILTER_MAC_SPOOFING")} | {
    ("VNET_RESTRICTED_ATTR", f"{prefix}{attr}") for prefix in ("", "AR/")
    for attr in ("FILTER_IP_SPOOFING", "FILTER_MAC_SPOOFING")}


def test_install_shows_every_restricted_attribute_as_oned_reads_it():
    text = Layout(prefix="/var/lib/one", etc="/etc/one", source=REPO).fragments()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    found = {(m[1], m[2]) for line in lines
             if (m := re.fullmatch(r'(\w+_RESTRICTED_ATTR) = "([A-Z_/]+)"', line))}
    assert NEEDED <= found
