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
from onemetal.opennebula.resources import Host

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


def vm_nics(server: Any, vm_id: int) -> list[tuple[int, str | None, int | None]]:
    """(NIC_ID, IP, NETWORK_ID) of each NIC of a VM, from one.vm.info."""
    vm = call(server.vm.info, "one.vm.info", vm_id)
    template = vm.TEMPLATE if isinstance(vm.TEMPLATE, Mapping) else {}
    out = []
    for nic in _listed(template.get("NIC")):
        field = f"VM[ID={vm_id}]/NIC"
        try:
            out.append((int(nic["NIC_ID"]), nic.get("IP"),
                        int(nic["NETWORK_ID"]) if nic.get("NETWORK_ID") not in (None, "") else None))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"unexpected NIC in one.vm.info ({exc})", field) from None
    return out


def user_template(server: Any, vm_id: int) -> dict[str, str]:
    vm = call(server.vm.info, "one.vm.info", vm_id)
    return _template(vm.USER_TEMPLATE)


def set_user_attributes(server: Any, vm_id: int, attributes: Mapping[str, str | None]) -> None:
    """Merge attributes into the USER_TEMPLATE; None removes one (which needs the replace mode)."""
    if all(v is not None for v in attributes.values()):
        text = "\n".join(f"{k}={values.template_value(v)}" for k, v in attributes.items()
                         if v is not None)
        call(server.vm.update, "one.vm.update", vm_id, text, 1)
        return
    current = user_template(server, vm_id)
    for key, value in attributes.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    text = "\n".join(f"{k}={values.template_value(v)}" for k, v in current.items())
    call(server.vm.update, "one.vm.update", vm_id, text, 0)
