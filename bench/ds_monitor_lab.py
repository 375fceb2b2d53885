"""bench/ds_monitor.py --lab: the storage drivers on the lab's real NFS (docs/storage.md,
"The lab's NFS"), every action run as oned runs it, as oneadmin over SSH.

nfs-ganesha on one-2; the FUSE NFSv4 client mounted by `mount-ensure` on one-0 (the frontend,
where the DS and TM scripts run) and one-1 (the VM's host, where TM clone writes), profile
"lab". Each host mounts the export once, at the datastores directory: the system datastore 0
and the image datastore 1 are directories of the one share, so a clone of a raw image copies
within one mount. The images are written on the server's own disk before any client mounts,
so that the bench pays the share's slow writes only where it measures them.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Callable

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "drivers"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from conftest import installed_lab  # noqa: E402
from ds_monitor import show, timed  # noqa: E402
from tm_lab import DS, TM, conf, make_frontend  # noqa: E402

from onemetal.lab import Lab, nfs  # noqa: E402
from onemetal.lab.hung_fuse import hold_script  # noqa: E402
from onemetal.lab.host import ONEADMIN_ID  # noqa: E402
from onemetal.lab.samples import b64  # noqa: E402

FE, HOST, SERVER = "one-0", "one-1", "one-2"
DS_MONITOR = "/var/tmp/one/datastore/onemetal/monitor"
DS_XML = ("<DS_DRIVER_ACTION_DATA><DATASTORE><ID>1</ID><BASE_PATH>/var/lib/one//datastores/1"
          "</BASE_PATH><TEMPLATE></TEMPLATE></DATASTORE><IMAGE></IMAGE></DS_DRIVER_ACTION_DATA>")
TM_XML = (f"<DS_DRIVER_ACTION_DATA><DATASTORE_LOCATION>{DS}</DATASTORE_LOCATION>"
          "<MONITOR_VM_DISKS>1</MONITOR_VM_DISKS></DS_DRIVER_ACTION_DATA>")
MONITORS = (("DS monitor", DS_MONITOR, "1", DS_XML), ("TM monitor", f"{TM}/monitor", "0", TM_XML))
THROUGHPUT_MB = 128  # enough for a steady rate; a 1 GiB write would add a minute
HOLD_SECONDS = 600.0  # the hung mount's holder ends by itself at the latest after this


def _storage_conf(timeout: float, source: str = "") -> str:
    line = f'source = "{source}"\n' if source else ""
    return conf("lab") + line + f"probe_timeout = {timeout!r}\nmount_timeout = 10.0\n"


def _message(stderr: str) -> str:
    """The message inside the driver's ERROR MESSAGE block, which oned shows."""
    lines = [line for line in stderr.splitlines() if line and not line.startswith("ERROR MESSAGE")]
    return lines[-1] if lines else ""


def monitors(lab: Lab, host: str, what: str, cycles: int, healthy: bool) -> None:
    """DS and TM monitor on `host`; a healthy share must answer USED_MB=, any other must fail."""
    for name, script, ds_id, xml in MONITORS:
        def call():  # type: ignore[no-untyped-def]
            return lab.ssh(host).run([script, ds_id], input=b64(xml), check=False, timeout=120)

        times, result = timed(call, cycles)
        answered = result.returncode == 0 and result.stdout.startswith("USED_MB=")
        if answered != healthy:
            raise RuntimeError(f"{name} on {what}: exit {result.returncode}: "
                               f"{result.stdout.strip()} {result.stderr.strip()}")
        said = result.stdout.splitlines()[0] if healthy else _message(result.stderr)
        show(f"{name}, {what}", times, f"  exit {result.returncode}: {said}")


def hung_monitors(lab: Lab, cycles: int, timeout: float) -> None:
    """The hung FUSE mount (onemetal.lab.hung_fuse) at the datastores path of the server's host,
    which mounts no NFS client: a share whose server never answers."""
    host = lab.host(SERVER)
    host.write_conf(_storage_conf(timeout))
    host.run(["mkdir", "-p", DS])
    holder = int(host.run(["python3", "-c", hold_script(os.path.join(REPO, "drivers"), DS,
                                                        "hung:/export", HOLD_SECONDS)]).stdout)
    lab.record.add_pid(holder)  # the lab's teardown ends it too, after a Ctrl-C
    try:
        monitors(lab, SERVER, "hung share", cycles, healthy=False)
    finally:
        os.kill(holder, signal.SIGKILL)
        host.run(["umount", "-l", DS], check=False)


def images(lab: Lab, server: nfs.NfsServer, size_mb: int) -> None:
    """base.raw (random data: a sparse file would make the copy look free) and base.qcow2 of
    it in datastore 1 on the server's disk, owned by oneadmin as the DS driver leaves them."""
    host, image_dir = lab.host(SERVER), os.path.join(server.export_dir, "1")
    for ds_dir in (image_dir, os.path.join(server.export_dir, "0")):
        os.makedirs(ds_dir, exist_ok=True)
        os.chown(ds_dir, ONEADMIN_ID, ONEADMIN_ID)
    raw, qcow2 = os.path.join(image_dir, "base.raw"), os.path.join(image_dir, "base.qcow2")
    host.run(["dd", "if=/dev/urandom", f"of={raw}", "bs=1M", f"count={size_mb}", "status=none"],
             timeout=600)
    host.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2], timeout=600)
    host.run(["chown", f"{ONEADMIN_ID}:{ONEADMIN_ID}", raw, qcow2])


def throughput(lab: Lab, size_mb: int) -> None:
    """dd through the FUSE client of the VM's host, where clone writes (1 MiB blocks, fsync)."""
    ssh, path, mb = lab.ssh(HOST), f"{DS}/0/throughput", min(size_mb, THROUGHPUT_MB)
    rates = []
    for argv in (["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mb}", "conv=fsync",
                  "status=none"], ["dd", f"if={path}", "of=/dev/null", "bs=1M", "status=none"]):
        started = time.perf_counter()
        ssh.run(argv, timeout=600)
        rates.append(mb / (time.perf_counter() - started))
    ssh.run(["rm", "-f", path])
    print(f"  FUSE NFSv4 client on {HOST}, dd of {mb} MiB: write {rates[0]:.1f} MiB/s, "
          f"read {rates[1]:.1f} MiB/s")


def clones(lab: Lab, size_mb: int, cycles: int) -> None:
    """tm clone from the frontend to the VM's host, as oned runs it; each disk deleted after."""
    fe, vm = lab.ssh(FE), iter(range(100, 100 + 2 * cycles))

    def clone(image: str) -> Callable[[], object]:
        def call() -> None:
            vm_id = str(next(vm))
            disk_dir = f"{DS}/0/{vm_id}"
            fe.run([f"{TM}/clone", f"{FE}:{DS}/1/{image}", f"{HOST}:{disk_dir}/disk.0", vm_id,
                    "1"], timeout=3700)
            lab.ssh(HOST).run(["test", "-s", f"{disk_dir}/disk.0"])  # the disk is there
            fe.run([f"{TM}/delete", f"{HOST}:{disk_dir}", vm_id, "0"], timeout=600)
        return call

    print(f"TM clone of a {size_mb} MiB image on the share ({FE} -> {HOST}), {cycles} cycles "
          "(median [min..max]; the delete after each is not timed):")
    overlay = show("qcow2 image: overlay (qemu-img create -b)", timed(clone("base.qcow2"),
                                                                      cycles)[0])
    copy = show("raw image: full copy (cp)", timed(clone("base.raw"), cycles)[0])
    print(f"  full copy / overlay: {copy / overlay:.1f}x "
          f"(full copy {size_mb / (copy / 1000):.1f} MiB/s)")


def _stop_on_term() -> None:
    """A kill (SIGTERM) unwinds like Ctrl-C, so that the lab's teardown runs instead of being
    left behind."""
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def run_lab(size_mb: int, cycles: int, monitor_cycles: int, timeout: float) -> int:
    started = time.perf_counter()
    _stop_on_term()
    with installed_lab(3) as lab:
        server = nfs.start_server(lab.host(SERVER), lab.record,  # type: ignore[arg-type]
                                  owner=ONEADMIN_ID)
        try:
            images(lab, server, size_mb)
            make_frontend(lab, FE)
            for name in (FE, HOST):
                nfs.install_client(lab.host(name))
                lab.host(name).write_conf(_storage_conf(timeout, server.source))
                lab.host(name).run(["mkdir", "-p", DS])
                lab.ssh(name).run_entry("mount-ensure", [DS])
            print(f"lab: ganesha on {SERVER} (answered in {server.started_in:.2f} s), FUSE NFSv4 "
                  f"client by mount-ensure on {FE} (frontend) and {HOST} (VM host) at {DS}, "
                  "profile lab")
            show("SSH round trip (`true` on the frontend)",
                 timed(lambda: lab.ssh(FE).run(["true"]), monitor_cycles)[0])
            throughput(lab, size_mb)
            clones(lab, size_mb, cycles)
            print(f"monitor, deadline storage.probe_timeout = {timeout:g} s, {monitor_cycles} "
                  "cycles (the whole SSH call, median [min..max]):")
            monitors(lab, FE, "healthy share", monitor_cycles, healthy=True)
            hung_monitors(lab, monitor_cycles, timeout)
            server.stop()
            monitors(lab, FE, "server stopped", monitor_cycles, healthy=False)
        finally:
            for name in (FE, HOST):
                nfs.stop_clients(lab.host(name))
            server.stop()
    print(f"total {time.perf_counter() - started:.0f} s (lab set-up and teardown included)")
    return 0
