"""The two drivers bench/vnm_actions.py runs side by side: how to call each action, what the
"hypervisor" does between them, and what each driver's state must be afterwards."""

from __future__ import annotations

import stock_lab
from test_net_mesh import config_columns, flow_cookies
from vnm_commands import ovsdb_records

from onemetal.lab.host import LabHost
from onemetal.lab.lab import Lab
from onemetal.lab.oned import Step, StepResult
from onemetal.lab.samples import VN_MAD, SampleNic, b64, sg_rule_xml, vnm_vm_xml
from onemetal.net.openflow import group_of

HOSTS = ["one-0", "one-1", "one-2", "one-3"]   # one-0 and its 3 mesh peers
HOST = HOSTS[0]
ACTIONS = ("pre", "post", "post again", "clean")
REMOTE_DIR = "/var/tmp/one"
RULES = sg_rule_xml(3, "TCP", "inbound", range="22,80:90") + sg_rule_xml(3, "ALL", "outbound")


def vm_document(vm_id: int, nic: SampleNic, rules: str) -> str:
    """The VNM document as one_vmm_exec builds it, VM_MAD included (stock reads it)."""
    history = "<HISTORY_RECORDS><HISTORY><VM_MAD>kvm</VM_MAD></HISTORY></HISTORY_RECORDS>"
    return vnm_vm_xml(vm_id, HOST, [nic], rules=rules).replace("</VM>", history + "</VM>")


class Driver:
    """One driver's VM on HOST."""

    name = ""
    vn_mad = ""
    bridge = ""

    def __init__(self, vm_id: int, nic: SampleNic, rules: str) -> None:
        self.vm_id, self.nic = vm_id, nic
        self.xml = vm_document(vm_id, nic, rules)
        self.port = f"one-{vm_id}-{nic.nic_id}"
        self.noop_records: list[int] = []  # OVSDB records each no-change post wrote
        self.noop_logs: list[int] = []     # stderr lines each no-change post wrote
        self._records = 0

    def script(self, action: str) -> str:
        return f"{REMOTE_DIR}/vnm/{self.vn_mad}/{action.split()[0]}"

    def step(self, action: str) -> Step:
        args = {"pre": (), "clean": (HOST,)}.get(action, (f"deploy-{self.vm_id}", HOST))
        return Step(self.script(action).removeprefix(REMOTE_DIR + "/"), args, b64(self.xml))

    def plug(self, host: LabHost) -> None:
        """What libvirt does at deploy: a tap-like device, up, on the bridge, the MAC in
        external_ids:attached-mac."""
        host.run(["ip", "link", "add", self.port, "type", "veth", "peer", "name", f"{self.port}p"])
        for dev in (self.port, f"{self.port}p"):
            host.run(["ip", "link", "set", dev, "up"])
        host.vsctl("--", "add-port", self.bridge, self.port, "--", "set", "interface",
                   self.port, f"external_ids:attached-mac={self.nic.mac}")

    def unplug(self, host: LabHost) -> None:
        host.run(["ip", "link", "del", self.port])  # the VM is gone, its tap with it

    def verify(self, lab: Lab, action: str, result: StepResult) -> None:
        """Raises AssertionError when the action left the wrong state."""
        if action == "post":
            self._records = ovsdb_records(lab)
        if action == "post again":
            self.noop_records.append(ovsdb_records(lab) - self._records)
            self.noop_logs.append(len(result.stderr.splitlines()))
        self.state_after(lab, action, result)

    def state_after(self, lab: Lab, action: str, result: StepResult) -> None:
        raise NotImplementedError


class Ours(Driver):
    """onemetal: its port and flows on br-mesh, 3 tunnels, no write and no log with no change."""

    name, vn_mad, bridge = "onemetal", VN_MAD, "br-mesh"

    def __init__(self, rules: str) -> None:
        super().__init__(77, SampleNic(0, "192.168.0.77", "02:00:c0:a8:00:4d",
                                       security_groups="3" if rules else "0"), rules)
        self.ofport = 0
        self.after_post: tuple[object, ...] = ()

    def _state(self, lab: Lab) -> tuple[object, ...]:
        return tuple(config_columns(lab, HOST)), tuple(flow_cookies(lab, HOST))

    def _groups(self, lab: Lab) -> set[int]:
        return {group_of(int(c, 16)) for c in flow_cookies(lab, HOST)}

    def state_after(self, lab: Lab, action: str, result: StepResult) -> None:
        host = lab.host(HOST)
        ports = host.vsctl("list-ports", self.bridge).split()
        if action == "pre":
            tunnels = host.vsctl("--columns=name", "--bare", "find", "interface",
                                 "external_ids:onemetal-role=tunnel").split()
            if len(tunnels) != len(HOSTS) - 1 or self.port in ports:
                raise AssertionError(f"onemetal pre: tunnels {tunnels}, ports {ports}")
        elif action == "post":
            vm = host.vsctl("get", "interface", self.port, "external_ids:onemetal-vm")
            mtu = host.vsctl("get", "interface", self.port, "mtu_request")
            self.ofport = int(host.vsctl("get", "interface", self.port, "ofport"))
            flows = host.run(["ovs-ofctl", "dump-flows", self.bridge,
                              f"in_port={self.ofport}"]).stdout
            if vm.strip('"') != str(self.vm_id) or mtu != str(self.nic.mtu):
                raise AssertionError(f"onemetal post: {self.port} vm={vm} mtu_request={mtu}")
            if self.ofport not in self._groups(lab) or f"dl_src={self.nic.mac}" not in flows:
                raise AssertionError(f"onemetal post: no flows of port {self.ofport}:\n{flows}")
            self.after_post = self._state(lab)
        elif action == "post again":
            if self.noop_records[-1] or self.noop_logs[-1] or self._state(lab) != self.after_post:
                raise AssertionError(f"onemetal post with nothing to change wrote "
                                     f"{self.noop_records[-1]} OVSDB records or logged: "
                                     f"{result.stderr.strip()!r}")
        elif self.port in ports or self.ofport in self._groups(lab):
            raise AssertionError(f"onemetal clean: port {self.port} or its flows remain")


class Stock(Driver):
    """OpenNebula's ovswitch_vxlan: its bridge, VXLAN device, tagged port and flows."""

    name, vn_mad = "stock", stock_lab.DRIVER
    CHECKS = {"pre": stock_lab.check_pre, "post": stock_lab.check_post,
              "post again": stock_lab.check_post, "clean": stock_lab.check_clean}

    def __init__(self, rules: str) -> None:
        self.vm = stock_lab.stock_vm(78, "192.168.1.78", "02:00:c0:a8:01:4e")
        self.bridge = self.vm.bridge
        super().__init__(self.vm.vm_id, self.vm.nic, rules)

    def plug(self, host: LabHost) -> None:
        stock_lab.define_domain(host, f"deploy-{self.vm_id}", self.vm)
        super().plug(host)

    def state_after(self, lab: Lab, action: str, result: StepResult) -> None:
        self.CHECKS[action](lab.host(HOST), self.vm)
