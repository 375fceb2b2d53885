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


def call(method: Callable[..., Any], name: str, *args: Any) -> Any:
    """One API call; pyone's exceptions and connection errors become one clear line."""
    import pyone

    try:
        return method(*args)
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
