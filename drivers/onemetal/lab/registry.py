"""What a lab created (namespaces, PIDs), on disk, so that teardown happens even
after the test process was killed: the next lab sweeps records whose owner is gone,
unless the lab was kept (`onemetal demo --keep`): then only an explicit teardown ends it."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field

log = logging.getLogger(__name__)

REGISTRY_DIR = "/run/onemetal-lab"
# Threads of one lab record at once (libvirtd started on every host in parallel): two saves
# sharing the .tmp file would replace each other's and fail on the missing one.
_SAVE_LOCK = threading.Lock()


@dataclass
class Record:
    token: str
    owner_pid: int
    workdir: str
    namespaces: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    netns_etc: list[str] = field(default_factory=list)
    kept: bool = False   # left up on purpose after its owner exits: never swept

    @property
    def path(self) -> str:
        return os.path.join(REGISTRY_DIR, f"{self.token}.json")

    def save(self) -> None:
        os.makedirs(REGISTRY_DIR, exist_ok=True)
        tmp = self.path + ".tmp"
        with _SAVE_LOCK:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(asdict(self), f)
            os.replace(tmp, self.path)

    def add_pid(self, pid: int) -> None:
        self.pids.append(pid)
        self.save()

    def add_namespace(self, name: str) -> None:
        self.namespaces.append(name)
        self.save()

    def forget(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes; it only waits for its parent to reap it.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stop_pids(pids: list[int], grace: float = 2.0) -> list[int]:
    """TERM, wait up to `grace`, then KILL; returns PIDs still alive after a bounded wait."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.02)
        pids = [p for p in pids if alive(p)]
        if not pids:
            break
    return pids


def records() -> list[Record]:
    """Every readable lab record, by token."""
    try:
        names = sorted(os.listdir(REGISTRY_DIR))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(REGISTRY_DIR, name), encoding="utf-8") as f:
                found.append(Record(**json.load(f)))
        except (OSError, ValueError, TypeError):
            log.warning("unreadable lab record %s, left alone", name)
    return found


def stale_records() -> list[Record]:
    """Records of labs whose owning process no longer exists and that were not kept."""
    return [r for r in records() if not r.kept and not alive(r.owner_pid)]


def kept_records() -> list[Record]:
    return [r for r in records() if r.kept]
