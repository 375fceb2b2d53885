"""The lab's frontend as oned's side sees it: the API stand-in, onemetal.conf, and the CLIs."""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass

from onemetal.lab.lab import Lab, LabError
from onemetal.lab.samples import SampleNic
from onemetal.run import Result

SESSION = "oneadmin:opennebula"
API_PORT = 2633
# The lab's tenant: the VMs' owner, in the group the lab's EIP policy admits.
TENANT_UID, TENANT_GID, TENANT_GROUP = 2, 100, "eip-users"
POLICY = f'eip_groups = ["{TENANT_GROUP}"]\neip_quota_user = -1\neip_quota_group = -1\n'
VM_XML = ("<VM><ID>{id}</ID>"
          f"<UID>{TENANT_UID}</UID><GID>{TENANT_GID}</GID><UNAME>tenant</UNAME>"
          f"<GNAME>{TENANT_GROUP}</GNAME>"
          "<NAME>vm{id}</NAME><STATE>3</STATE><LCM_STATE>3</LCM_STATE>"
          "<TEMPLATE><NIC><NIC_ID>0</NIC_ID><IP><![CDATA[{ip}]]></IP><NETWORK_ID>{net}"
          "</NETWORK_ID><MAC><![CDATA[{mac}]]></MAC></NIC></TEMPLATE>"
          "<USER_TEMPLATE><EIP><![CDATA[yes]]></EIP></USER_TEMPLATE></VM>")


@dataclass(frozen=True)
class Frontend:
    lab: Lab
    data: str      # the API stand-in's directory (host_pool.xml, vm-<id>.xml), conf and store

    @property
    def env(self) -> dict[str, str]:
        return {"ONEMETAL_CONF": os.path.join(self.data, "onemetal.conf"),
                "ONE_XMLRPC": f"http://127.0.0.1:{API_PORT}/RPC2",
                "ONE_AUTH": os.path.join(self.data, "one_auth")}

    def add_vm(self, vm_id: int, nic: SampleNic, network_id: int) -> None:
        """The VM as one.vm.info returns it (one NIC, EIP="yes" in its USER_TEMPLATE)."""
        with open(os.path.join(self.data, f"vm-{vm_id}.xml"), "w", encoding="utf-8") as f:
            f.write(VM_XML.format(id=vm_id, ip=nic.ip, net=network_id, mac=nic.mac))

    def onenat(self, *args: str, check: bool = True) -> Result:
        return self.lab.frontend_cli(self.env).run(
            [sys.executable, "-m", "onemetal.cli.onenat", *args], check=check)


def start(lab: Lab, data: str, nat_gateway: str = "", nat_interface: str = "",
          policy: str = POLICY) -> Frontend:
    """Start the API stand-in in the frontend namespace and write the frontend's onemetal.conf
    ([nat] `policy`: the EIP keys, by default the tenant's group with no quota)."""
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "one_auth"), "w", encoding="ascii") as f:
        f.write(SESSION + "\n")
    with open(lab.frontend_conf(), encoding="utf-8") as f:
        conf = f.read()
    with open(os.path.join(data, "onemetal.conf"), "w", encoding="utf-8") as f:
        f.write(conf + f'[nat]\nstore = "{data}/nat.db"\ngateway = "{nat_gateway}"\n'
                       f'interface = "{nat_interface}"\n' + policy)
    lab.frontend.spawn([sys.executable, "-m", "onemetal.lab.one_api", str(API_PORT), SESSION, data],
                       os.path.join(data, "api.log"))
    deadline = time.monotonic() + 10
    probe = [sys.executable, "-c", "import socket, sys; socket.create_connection("
             f"('127.0.0.1', {API_PORT}), timeout=1)"]
    while lab.frontend.run(probe, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise LabError("the API stand-in did not start within 10 s")
        time.sleep(0.1)
    return Frontend(lab, data)
