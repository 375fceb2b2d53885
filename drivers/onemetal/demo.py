"""`onemetal demo`: the reference deployment on one machine, every driver called as oned calls it.

The machines (demo_lab): a frontend with onemetal installed by its own CLI and
the API stand-in where oned would be, hosts one-0..one-2 (one-0 also the NAT
gateway, an "internet" client behind its ENI), an NFS server holding the
datastores. Then what an operator does (demo_steps, demo_vms): the mesh, the
vnet, an image imported by the DS driver, VMs deployed through the remotes by
the oned double (lab.oned_vmm: namespace VMs, and one TCG guest whose disk the
TM driver cloned on the share), two Elastic IPs mapped with onenat, a live
migration of a VM with an EIP; and what an operator checks (demo_checks), in
one report (demo_report). Everything is torn down at the end, on a failure and
on Ctrl-C too, unless --keep.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
import time
from dataclasses import replace
from typing import Callable, Iterator, TextIO

from onemetal import demo_checks as checks
from onemetal import demo_faults, demo_lab, demo_steps
from onemetal.demo_progress import Progress
from onemetal.demo_report import Check, Report, doctor_check, failures, render_text, to_json
from onemetal.demo_vms import GUEST, MIGRATE_TO, MIGRATE_VM, PLAN, DemoFailed, Fleet
from onemetal.doctor_report import Check as DoctorCheck
from onemetal.errors import OneMetalError
from onemetal.lab import Lab, LabError
from onemetal.lab.keep import entry_hints
from onemetal.net.mtu import VXLAN_OVERHEAD, overlay_mtu
from onemetal.run import CommandError

PATH_MTU_PAIR = (10, 11)  # web on one-1 to db on one-2: through one tunnel
MESH_PROBE = "/var/tmp/one/im/kvm-probes.d/host/system/onemetal_mesh"


class _Run:
    """One demo run: its lab, the report it fills, the phases it goes through."""

    def __init__(self, lab: Lab, progress: Progress, inject: str | None) -> None:
        self.lab, self.progress, self.inject = lab, progress, inject
        self.report = Report(token=lab.token, elapsed=0.0)
        self.demo: demo_lab.DemoLab | None = None

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.report.checks.append(Check(name, ok, detail))

    def build(self) -> demo_lab.DemoLab:
        lab = self.lab
        with self.progress.phase("lab: frontend, 3 hosts, NFS server, internet client"):
            lab.start()
            client = demo_lab.add_internet(lab)
            api = demo_lab.start_api(lab)
        with self.progress.phase("onemetal install on the frontend, remotes synced to the hosts"):
            demo_lab.install_frontend(lab)
        with self.progress.phase("datastores on the NFS server, mounted everywhere",
                                 total=len(lab.hosts) + 1) as p:
            share = demo_lab.start_share(lab)
            demo_lab.configure(lab, share)
            demo = demo_lab.DemoLab(lab, api, client, share)
            demo.onemetal("mount", "ensure", demo_lab.DATASTORES)
            p.advance("frontend")
            for name in demo.hosts:
                demo.onemetal("mount", "ensure", demo_lab.DATASTORES, "--host", name)
                p.advance(name)
        with self.progress.phase("onemetal mesh sync (VXLAN full mesh from the host pool)"):
            synced = demo.onemetal("mesh", "sync").stdout.count("CHANGED=YES")
            self.check("mesh sync", synced == len(demo.hosts),
                       f"{synced} of {len(demo.hosts)} hosts got their tunnel ports")
        self.demo = demo
        return demo

    def deploy(self, demo: demo_lab.DemoLab) -> Fleet:
        with self.progress.phase("vnet private 192.168.0.0/24 (vnet_create, onenat vnet add)"):
            mtu = demo_steps.create_vnet(demo)
            want = overlay_mtu(self.lab.underlay_mtu)
            self.check("vnet MTU from the underlay", mtu == want,
                       f"vnet_create set MTU={mtu}, want {want} (underlay "
                       f"{self.lab.underlay_mtu} - {VXLAN_OVERHEAD})")
        with self.progress.phase("image imported by the DS driver onto the share"):
            source = demo_steps.import_image(demo)
            usage = demo_steps.monitor_datastore(demo, demo_lab.IMAGE_DS)
            self.check("DS cp + monitor",
                       source.startswith(f"{demo_lab.DATASTORES}/{demo_lab.IMAGE_DS}/"),
                       f"SOURCE {source}; {usage}")
        fleet = Fleet(demo, source, mtu)
        with self.progress.phase("libvirtd on every host (qemu under TCG)"):
            fleet.start_libvirt()
        with self.progress.phase(f"deploy {len(PLAN)} VMs through the remotes",
                                 total=len(PLAN)) as p:
            for vm in PLAN:
                fleet.deploy(vm)
                p.advance(f"{vm.name} on {vm.host}")
        return fleet

    def verify(self, fleet: Fleet, mapped: dict[int, str]) -> None:
        demo = fleet.demo
        with self.counted("checks: connectivity, MTU, Elastic IPs, egress, mounts, guest"):
            checks.listen_everywhere(fleet)
            self.report.matrix = checks.matrix(fleet)
            self.report.nics = checks.nics(fleet)
            self.report.eips += checks.eips(fleet, mapped)
            self.report.egress = checks.egress(fleet, mapped)
            self.report.mounts = checks.datastore_mounts(demo)
            self.report.checks += checks.guest_checks(fleet)
            self.report.checks.append(checks.guest_dhcp(fleet))
            self.report.checks.append(checks.path_mtu(fleet, *PATH_MTU_PAIR))
            for name in demo.hosts:
                probe = self.lab.ssh(name).run([MESH_PROBE], check=False).stdout
                self.check(f"mesh probe {name}", 'ONEMETAL_MESH_STATUS="ok"' in probe,
                           " ".join(w for w in probe.split() if "STATUS" in w or "UP=" in w))

    @contextlib.contextmanager
    def counted(self, name: str) -> Iterator[None]:
        """A phase of checks: its line says how many of the checks it added failed."""
        before = len(failures(self.report))
        with self.progress.phase(name) as p:
            yield
            failed = len(failures(self.report)) - before
            p.detail = f"{failed} failed" if failed else ""

    def migrate(self, fleet: Fleet, mapped: dict[int, str]) -> None:
        """The VM with an EIP moves; then it must be on its new host, reach its vnet from there,
        and its EIP must still lead to it, both ways."""
        vm = fleet.vms[MIGRATE_VM].vm
        with self.progress.phase(f"migrate {vm.name} (with an EIP) {vm.host} -> {MIGRATE_TO}"):
            steps = demo_steps.migrate(fleet, MIGRATE_VM, MIGRATE_TO)
            self.check(f"migrate {vm.name}", True, steps)
        with self.counted("checks after the migration"):
            self.report.checks += checks.placement(fleet, MIGRATE_VM, vm.host)
            rows = checks.eips(fleet, {MIGRATE_VM: mapped[MIGRATE_VM]})
            self.report.eips += [replace(r, vm=f"{r.vm} (migrated)") for r in rows]

    def operate(self, fleet: Fleet) -> None:
        demo = fleet.demo
        with self.progress.phase("Elastic IPs: onenat pool create, onenat map x2"):
            mapped = demo_steps.map_eips(demo, [vm.vm_id for vm in PLAN if vm.eip])
        if self.inject:
            self.report.fault = demo_faults.inject(demo, self.inject)
            self.progress.note(f"fault injected: {self.report.fault}")
        self.verify(fleet, mapped)
        self.migrate(fleet, mapped)
        with self.progress.phase("onemetal doctor"):
            done = demo.onemetal("doctor", "-j", check=False)
            found = [DoctorCheck(**c) for c in json.loads(done.stdout or "[]")]
            self.report.checks.append(doctor_check("onemetal doctor", found))
        gone = [vm for vm in PLAN if vm.kind == GUEST or vm.vni != demo_lab.VNI]
        with self.progress.phase(f"terminate {' and '.join(vm.name for vm in gone)}: "
                                 "cancel / shutdown, vnm clean, TM delete", total=len(gone)) as p:
            for vm in gone:
                self.check(*fleet.undeploy(vm.vm_id))
                p.advance(vm.name)

    def run(self) -> None:
        demo = self.build()
        fleet = self.deploy(demo)
        self.operate(fleet)


def _teardown(run: _Run) -> int:
    """The lab down, as a phase of its own: every process ended, every namespace removed.
    Returns the exit code of a Ctrl-C or SIGTERM that came during it (the teardown finishes
    first), else 0."""
    try:
        with run.progress.phase("teardown: every process and namespace of the lab"):
            left = run.lab.stop()
            if left:
                raise DemoFailed(f"could not remove {', '.join(left)}")
    except (DemoFailed, LabError, OSError) as exc:
        run.check("teardown", False, _last_line(exc))
    except (KeyboardInterrupt, SystemExit) as exc:
        return _stopped_code(exc)
    return 0


def _stopped_code(exc: KeyboardInterrupt | SystemExit) -> int:
    """The exit code of a run stopped by Ctrl-C (130) or by SIGTERM (the lab's handler raises
    SystemExit(143))."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return exc.code if isinstance(exc.code, int) else 1


def _last_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1][:300] if lines else type(exc).__name__


def run_demo(underlay_mtu: int = 1500, *, out: TextIO | None = None, as_json: bool = False,
             keep: bool = False, inject: str | None = None, tty: bool | None = None,
             on_lab: Callable[[_Run], None] | None = None) -> int:
    """The whole demo; 0 when every check passed. `on_lab` runs on the lab once the demo ran (or
    failed), before the teardown; what it raises propagates (tests)."""
    out = out or sys.stdout
    if inject is not None and inject not in demo_faults.FAULTS:
        raise OneMetalError(f"unknown fault {inject!r} (one of {', '.join(demo_faults.FAULTS)})",
                            field="--inject")
    started = time.monotonic()
    progress_out = sys.stderr if as_json else out
    progress = Progress(progress_out, progress_out.isatty() if tty is None else tty)
    lab = Lab(hosts=3, underlay_mtu=underlay_mtu, frontend_host=True,
              servers=(demo_lab.NFS_SERVER,))
    run = _Run(lab, progress, inject)
    interrupted = 0
    hook_error: Exception | None = None
    try:
        try:
            run.run()
        finally:
            if on_lab is not None and lab.record is not None:
                try:
                    on_lab(run)
                except Exception as exc:  # re-raised after the teardown below
                    hook_error = exc
    except (KeyboardInterrupt, SystemExit) as exc:
        interrupted = _stopped_code(exc)
        progress.note(f"{'interrupted' if interrupted == 130 else 'terminated'}: "
                      "tearing the lab down")
    except (DemoFailed, LabError, CommandError, OneMetalError, OSError) as exc:
        run.check("the demo ran to its end", False, _last_line(exc))
    except Exception as exc:  # a bug of ours: still torn down and reported, with its place
        where = traceback.extract_tb(exc.__traceback__)[-1]
        run.check("the demo ran to its end", False, f"{type(exc).__name__} at "
                  f"{os.path.basename(where.filename)}:{where.lineno}: {_last_line(exc)}")
    finally:
        if keep and not interrupted and lab.record is not None:
            lab.keep()
            hints = entry_hints(lab, [run.demo.client] if run.demo else [])
        else:
            interrupted = _teardown(run) or interrupted
            hints = []
    if hook_error is not None:
        raise hook_error
    report = run.report
    report.phases = progress.phases
    report.elapsed = time.monotonic() - started
    print(to_json(report) if as_json else render_text(report), file=out)
    for line in hints:
        print(line, file=progress_out)
    if interrupted:
        return interrupted
    return 1 if failures(report) else 0
