"""`onemetal install` / `uninstall`: put the remotes, the core they carry, and the hooks into a frontend.

The core is copied inside the remotes tree (remotes/onemetal/lib) so that
`onehost sync` brings it to every host. The install is a reconcile plan over
files: idempotent, printable with --dry-run, reversed by uninstall through the
manifest it writes. onemetal.conf is created only when absent and removed only
while it is still the shipped default.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Iterator, Mapping

import onemetal
from onemetal.errors import OneMetalError
from onemetal.reconcile import Plan, diff

MANIFEST = "remotes/onemetal/manifest.json"
CONF = "onemetal.conf"
BEGIN = "# BEGIN onemetal: managed by `onemetal install`, edit etc/oned.d/ instead"
END = "# END onemetal"

FileState = tuple[str, int]  # (sha256, mode)


class InstallError(OneMetalError):
    pass


def source_root() -> str:
    """The checkout this package runs from, or the data files `pip install .` put under share/."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(onemetal.__file__))))
    for root in (repo, os.path.join(sys.prefix, "share", "onemetal")):
        if os.path.isdir(os.path.join(root, "remotes")) and os.path.isdir(os.path.join(root, "etc")):
            return root
    raise InstallError("cannot find the remotes/ and etc/ directories; pass --source", "source")


def _digest(path: str) -> FileState:
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha256(data).hexdigest()[:16], os.stat(path).st_mode & 0o777


# A hook runs on the frontend with the interpreter onemetal is installed in (pyone is there).
_ENV_PYTHON = b"#!/usr/bin/env python3\n"


def _content(src: str, dest: str) -> bytes:
    """What `dest` must hold: the source, with a hook's interpreter line made explicit."""
    with open(src, "rb") as f:
        data = f.read()
    if f"{os.sep}hooks{os.sep}onemetal{os.sep}" in dest and data.startswith(_ENV_PYTHON):
        data = f"#!{sys.executable}\n".encode() + data[len(_ENV_PYTHON):]
    if dest.endswith(".service"):
        # The unit runs the console scripts installed next to this interpreter.
        data = data.replace(b"@BIN@", os.path.dirname(sys.executable).encode())
    return data


def _mode(path: str) -> int:
    with open(path, "rb") as f:
        return 0o755 if f.read(2) == b"#!" else 0o644


def _walk(top: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(absolute path, path relative to top) of regular files, links followed like rsync -L."""
    for base, dirs, files in os.walk(top, followlinks=True):
        rel_base = os.path.relpath(base, top)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__"
                         and os.path.normpath(os.path.join(rel_base, d)) not in skip)
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield os.path.join(base, name), os.path.normpath(os.path.join(rel_base, name))


@dataclass(frozen=True)
class Layout:
    prefix: str      # /var/lib/one
    etc: str         # /etc/one
    source: str
    systemd: str = "/etc/systemd/system"

    def sources(self) -> dict[str, str]:
        """Destination path -> source file, for every file the install owns."""
        out: dict[str, str] = {}
        remotes = os.path.join(self.prefix, "remotes")
        for path, rel in _walk(os.path.join(self.source, "remotes"), skip=("onemetal/lib",)):
            out[os.path.join(remotes, rel)] = path
        core = os.path.dirname(os.path.abspath(onemetal.__file__))
        for path, rel in _walk(core):
            out[os.path.join(remotes, "onemetal", "lib", "onemetal", rel)] = path
        hooks = os.path.join(self.source, "hooks")
        if os.path.isdir(hooks):
            for path, rel in _walk(hooks):
                out[os.path.join(remotes, "hooks", "onemetal", rel)] = path
        units = os.path.join(self.source, "etc", "systemd")
        if os.path.isdir(units):
            for path, rel in _walk(units):
                out[os.path.join(self.systemd, rel)] = path
        return out

    @property
    def conf(self) -> str:
        return os.path.join(self.etc, CONF)

    @property
    def manifest(self) -> str:
        return os.path.join(self.prefix, MANIFEST)

    def read_manifest(self) -> dict[str, object]:
        try:
            with open(self.manifest, encoding="utf-8") as f:
                data = json.load(f)
            return {"files": list(data["files"]), "conf_sha256": data.get("conf_sha256")}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError) as exc:
            raise InstallError(f"unreadable ({exc}); remove it to reinstall", self.manifest) from None

    def recorded(self) -> list[str]:
        return list(self.read_manifest().get("files", []))  # type: ignore[call-overload]

    def fragments(self) -> str:
        directory = os.path.join(self.source, "etc", "oned.d")
        if not os.path.isdir(directory):
            return ""
        parts = []
        for name in sorted(os.listdir(directory)):
            if name.endswith(".conf"):
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    parts.append(f"# {name}\n{f.read().rstrip()}\n")
        return "\n".join(parts)


class InstalledFiles:
    """The install as a reconcile Resource: destination path -> (sha256, mode)."""

    def __init__(self, layout: Layout, sources: Mapping[str, str]) -> None:
        self.layout = layout
        self.sources = sources
        self.subject = f"install@{layout.prefix}"

    def want(self, remove_all: bool = False) -> dict[str, FileState]:
        if remove_all:
            return {}
        return {dest: (hashlib.sha256(_content(src, dest)).hexdigest()[:16], _mode(src))
                for dest, src in self.sources.items()}

    def read(self) -> Mapping[str, FileState]:
        paths = set(self.sources) | set(self.layout.recorded())
        return {p: _digest(p) for p in sorted(paths) if os.path.isfile(p)}

    def apply(self, plan: Plan[str, FileState]) -> None:
        for dest in [*plan.add, *plan.change]:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = dest + ".onemetal-new"
            with open(tmp, "wb") as f:
                f.write(_content(self.sources[dest], dest))
            os.chmod(tmp, _mode(self.sources[dest]))
            os.replace(tmp, dest)
        for dest in plan.remove:
            os.unlink(dest)
            _prune_empty(os.path.dirname(dest), self.layout.prefix)


def _prune_empty(directory: str, stop: str) -> None:
    while directory.startswith(stop + os.sep) and os.path.isdir(directory) and not os.listdir(directory):
        os.rmdir(directory)
        directory = os.path.dirname(directory)


def _write_manifest(layout: Layout, files: list[str], conf_digest: str) -> None:
    text = json.dumps({"version": onemetal.__version__, "files": sorted(files),
                       "conf_sha256": conf_digest}, indent=1)
    try:
        with open(layout.manifest, encoding="utf-8") as f:
            if f.read() == text:
                return  # no change, no write
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(layout.manifest), exist_ok=True)
    with open(layout.manifest + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(layout.manifest + ".tmp", layout.manifest)


def oned_conf_with_block(text: str, block: str) -> str:
    """`text` with our managed block replaced (or appended, or removed when `block` is empty)."""
    start, end = text.find(BEGIN), text.find(END)
    if (start < 0) != (end < 0) or end < start:
        raise InstallError("has a broken onemetal block (BEGIN without END); fix it by hand", "oned.conf")
    if start >= 0:
        text = text[:start].rstrip("\n") + "\n" + text[end + len(END):].lstrip("\n")
    if block:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{block.rstrip()}\n{END}\n"
    return text if text.strip() else ""


def install(layout: Layout, *, dry_run: bool, apply_oned_conf: bool, out: list[str]) -> Plan:
    resource = InstalledFiles(layout, layout.sources())
    plan = diff(resource.subject, resource.want(), resource.read())
    shipped_conf = os.path.join(layout.source, "etc", CONF)
    new_conf = not os.path.exists(layout.conf)
    out.append(str(plan))
    out.append(f"+ {layout.conf} (new, from etc/{CONF})" if new_conf
               else f"= {layout.conf} exists, kept as it is")
    fragments = layout.fragments()
    oned_conf = os.path.join(layout.etc, "oned.conf")
    if apply_oned_conf:
        if not os.path.isfile(oned_conf):
            raise InstallError("not found, cannot apply the fragments", oned_conf)
        with open(oned_conf, encoding="utf-8") as f:
            current = f.read()
        updated = oned_conf_with_block(current, fragments)
        out.append(f"~ {oned_conf}: onemetal block {'updated' if updated != current else 'unchanged'}")
    elif fragments:
        out.append(f"Add to {oned_conf} (or rerun with --apply-oned-conf), then restart oned:\n"
                   f"{fragments}")
    if dry_run:
        return plan
    resource.apply(plan)
    if new_conf:
        os.makedirs(layout.etc, exist_ok=True)
        shutil.copyfile(shipped_conf, layout.conf)
        os.chmod(layout.conf, 0o640)
    if apply_oned_conf and updated != current:
        with open(oned_conf + ".onemetal-new", "w", encoding="utf-8") as f:
            f.write(updated)
        os.replace(oned_conf + ".onemetal-new", oned_conf)
    _write_manifest(layout, list(resource.sources), _digest(shipped_conf)[0])
    return plan


def uninstall(layout: Layout, *, dry_run: bool, out: list[str]) -> Plan:
    manifest = layout.read_manifest()
    recorded = list(manifest.get("files", []))  # type: ignore[call-overload]
    if not recorded:
        out.append(f"nothing to remove: no manifest at {layout.manifest}")
    resource = InstalledFiles(layout, {})
    plan = diff(resource.subject, resource.want(remove_all=True),
                {p: s for p, s in resource.read().items() if p in recorded})
    out.append(str(plan))
    conf_default = (os.path.isfile(layout.conf)
                    and _digest(layout.conf)[0] == manifest.get("conf_sha256"))
    if os.path.isfile(layout.conf):
        out.append(f"- {layout.conf}" if conf_default
                   else f"= {layout.conf} kept: it differs from the shipped default")
    oned_conf = os.path.join(layout.etc, "oned.conf")
    block = False
    if os.path.isfile(oned_conf):
        with open(oned_conf, encoding="utf-8") as f:
            current = f.read()
        block = BEGIN in current
        if block:
            out.append(f"~ {oned_conf}: onemetal block removed")
    if dry_run:
        return plan
    resource.apply(plan)
    if conf_default:
        os.unlink(layout.conf)
    if block:
        with open(oned_conf, "w", encoding="utf-8") as f:
            f.write(oned_conf_with_block(current, ""))
    if recorded and os.path.exists(layout.manifest):
        os.unlink(layout.manifest)
        _prune_empty(os.path.dirname(layout.manifest), layout.prefix)
    return plan
