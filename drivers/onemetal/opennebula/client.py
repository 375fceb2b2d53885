"""The XML-RPC API through pyone, set up the way OpenNebula's own CLI does it.

pyone reads no environment, so: endpoint from ONE_XMLRPC (default
http://localhost:2633/RPC2), session from the file ONE_AUTH names (default
~/.one/one_auth, one line `user:password`).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from onemetal.errors import ConfigError, InputError, OneMetalError
from onemetal.opennebula import values
from onemetal.opennebula.resources import Host, VmSummary

DEFAULT_ENDPOINT = "http://localhost:2633/RPC2"


def endpoint(env: Mapping[str, str] = os.environ) -> str:
    return env.get("ONE_XMLRPC") or DEFAULT_ENDPOINT


def session(env: Mapping[str, str] = os.environ) -> str:
    path = env.get("ONE_AUTH") or os.path.expanduser("~/.one/one_auth")
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the session file ({exc.strerror})", f"ONE_AUTH={path}") from None
    if ":" not in line:
        raise ConfigError("must hold one line user:password", f"ONE_AUTH={path}")
    return line


def connect(env: Mapping[str, str] = os.environ) -> Any:
    import pyone

    return pyone.OneServer(endpoint(env), session=session(env))


def _listed(value: Any) -> list[Any]:
    """pyone gives one element as an object and several as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _template(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {k: str(v) for k, v in raw.items() if not isinstance(v, (Mapping, list))}


class ApiError(OneMetalError):
    """oned refused a call or could not be reached."""


class NoSuchObject(ApiError):
    """oned answered NO_EXISTS: the VM (host, ...) is not there."""


def call(method: Callable[..., Any], name: str, *args: Any) -> Any:
    """One API call; pyone's exceptions and connection errors become one clear line."""
    import pyone

    try:
        return method(*args)
    except pyone.OneNoExistsException as exc:
        raise NoSuchObject(str(exc).strip(), name) from None
    except pyone.OneException as exc:
        raise ApiError(str(exc).strip(), name) from None
    except OSError as exc:
        raise ApiError(f"cannot reach oned at {endpoint()} ({exc})", name) from None


def host_pool(server: Any) -> tuple[Host, ...]:
    """one.hostpool.info as Host views (names checked like any other input)."""
    out = []
    for h in _listed(call(server.hostpool.info, "one.hostpool.info").HOST):
        field = f"HOST[ID={h.ID}]"
        try:
            out.append(Host(id=int(h.ID), name=values.name(str(h.NAME), f"{field}/NAME"),
                            state=int(h.STATE), cluster_id=int(h.CLUSTER_ID),
                            im_mad=str(h.IM_MAD), vm_mad=str(h.VM_MAD),
                            template=_template(h.TEMPLATE)))
        except (TypeError, ValueError) as exc:
            raise InputError(f"unexpected value from one.hostpool.info ({exc})", field) from None
    return tuple(out)


def _summary(vm: Any, source: str) -> VmSummary:
    """A pyone VM (full or, from the pool, short: both carry UID, GID and each NIC's id and IP)."""
    field = f"VM[ID={getattr(vm, 'ID', '?')}]"
    template = vm.TEMPLATE if isinstance(vm.TEMPLATE, Mapping) else {}
    try:
        nics = tuple((int(nic["NIC_ID"]), nic.get("IP") or None,
                      int(nic["NETWORK_ID"]) if nic.get("NETWORK_ID") not in (None, "") else None)
                     for nic in _listed(template.get("NIC")))
        return VmSummary(id=int(vm.ID), uid=int(vm.UID), gid=int(vm.GID), state=int(vm.STATE),
                         nics=nics)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"unexpected VM in {source} ({exc})", field) from None


def vm_info(server: Any, vm_id: int) -> VmSummary:
    return _summary(call(server.vm.info, "one.vm.info", vm_id), "one.vm.info")


# one.vmpool.info(filter, start, end, state): every user's VMs (-2, which needs oneadmin's
# rights), the whole id range (-1, -1), in any state but DONE (-1).
ALL_RESOURCES, WHOLE_RANGE, NOT_DONE = -2, (-1, -1), -1


def vm_pool(server: Any) -> dict[int, VmSummary]:
    """Every VM that is not DONE, by id, from one.vmpool.info."""
    pool = call(server.vmpool.info, "one.vmpool.info", ALL_RESOURCES, *WHOLE_RANGE, NOT_DONE)
    vms = [_summary(vm, "one.vmpool.info") for vm in _listed(getattr(pool, "VM", None))]
    return {vm.id: vm for vm in vms if vm.state != VmSummary.DONE}


def set_user_attributes(server: Any, vm_id: int, attributes: Mapping[str, str | None]) -> None:
    """Merge (one.vm.update type 1) these attributes into the USER_TEMPLATE; None removes one.

    oned's merge (Template::merge) replaces only the attributes it is given and drops
    an empty vector, so `NAME=[]` deletes NAME (OpenNebula 5.6 and later, F #5461) and
    every other attribute, vectors and repeats included, stays exactly as it was. A
    replace (type 0) would rewrite the whole template from a copy read earlier.
    """
    text = "\n".join(f"{k}={values.template_value(v) if v is not None else '[]'}"
                     for k, v in attributes.items())
    call(server.vm.update, "one.vm.update", vm_id, text, 1)
