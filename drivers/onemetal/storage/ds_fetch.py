"""Where an imported image comes from (DS cp and stat): a local file or an http(s) URL.

A local IMAGE/PATH is refused inside RESTRICTED_DIRS (with oned's defaults
/var/lib/one/, /etc/one/ and oneadmin's home, as the stock set_up_datastore adds)
unless it is inside SAFE_DIRS, and refused inside any datastore: an image must
not be registered from another one's files. Checks are on the resolved path,
as the stock check_restricted's `readlink -f`, but by directory prefix rather
than as a regular expression. A download is bounded in size and time, and the
partial file is removed on any failure.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from onemetal.config import StorageConfig
    from onemetal.storage.ds_request import Request

from onemetal.errors import InputError, OneMetalError
from onemetal.storage.mounts import within

FIELD = "IMAGE/PATH"
DEFAULT_RESTRICTED = ("/var/lib/one/", "/etc/one/")
_CHUNK = 1 << 20


class DownloadFailed(OneMetalError):
    """The URL could not be fetched completely; nothing was kept."""


def is_url(path: str) -> bool:
    return path.lower().startswith(("http://", "https://"))


def _under(path: str, prefix: str) -> bool:
    return within(path, os.path.normpath(prefix))


def local_path(req: Request, cfg: StorageConfig, allow_dir: bool = False) -> str:
    """IMAGE/PATH as an existing regular file (or directory) this datastore may import from."""
    raw = req.required(FIELD)
    if not raw.startswith("/") or any(c in raw for c in "\0\n\r"):
        raise InputError(f"{raw!r} is not an absolute path or an http(s) URL", FIELD)
    if ".." in raw.split("/"):
        raise InputError(f"{raw!r} holds a '..' component", FIELD)
    real = os.path.realpath(raw)
    safe = req.text("DATASTORE/TEMPLATE/SAFE_DIRS").split()
    restricted = [*DEFAULT_RESTRICTED, os.path.expanduser("~") + "/",
                  *req.text("DATASTORE/TEMPLATE/RESTRICTED_DIRS").split()]
    if _under(real, cfg.datastores_dir):
        raise InputError(f"{real} is inside a datastore ({cfg.datastores_dir})", FIELD)
    if not any(_under(real, d) for d in safe) and any(_under(real, d) for d in restricted):
        raise InputError(f"not allowed to copy an image from {real}: check RESTRICTED_DIRS "
                         "and SAFE_DIRS of the datastore", FIELD)
    if not (os.path.isfile(real) or (allow_dir and os.path.isdir(real))):
        raise InputError(f"{raw} is not a regular file", FIELD)
    return real


def checked_url(req: Request) -> str:
    from urllib.parse import urlsplit

    url = req.required(FIELD)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InputError(f"{url!r} is not an http(s) URL", FIELD)
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InputError("holds white space or control characters", FIELD)
    return url


def _opener(cfg: StorageConfig):  # noqa: ANN202 - urllib's OpenerDirector, only for a download
    import urllib.request

    from onemetal.storage import ds_fence

    class HttpOnly(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
            if not newurl.lower().startswith(("http://", "https://")):
                raise DownloadFailed(f"redirected to a non-http(s) URL {newurl}", FIELD)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return ds_fence.opener(cfg, HttpOnly)


def _too_large(limit: int, what: str) -> DownloadFailed:
    return DownloadFailed(f"the download is larger than {what} = {limit // (1 << 20)} MB", FIELD)


def _copy_response(response, out, limit: int, deadline: float,  # noqa: ANN001
                   what: str) -> None:
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise _too_large(limit, what)
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise DownloadFailed("did not finish within storage.url_timeout", FIELD)
        chunk = response.read(_CHUNK)
        if not chunk:
            return
        total += len(chunk)
        if total > limit:
            raise _too_large(limit, what)
        out.write(chunk)


def download(url: str, dst: str, cfg: StorageConfig, free_mb: int | None = None) -> None:
    """`url` into the new file `dst` (created exclusively), or DownloadFailed and no `dst`;
    at most storage.url_max_mb, and at most the `free_mb` of the datastore: a download
    never fills the share other tenants' images and VMs live on."""
    limit, deadline = cfg.url_max_mb << 20, time.monotonic() + cfg.url_timeout
    what = "storage.url_max_mb"
    if free_mb is not None and free_mb << 20 < limit:
        limit, what = free_mb << 20, "the space free in the datastore"
    try:
        out = open(dst, "xb")  # noqa: SIM115 - closed below; an existing file is never touched
    except OSError as exc:
        raise DownloadFailed(f"cannot create {dst}: {exc}", FIELD) from None
    try:
        with out, _opener(cfg).open(url, timeout=min(cfg.url_timeout, 60)) as response:
            _copy_response(response, out, limit, deadline, what)
    except BaseException as exc:
        os.unlink(dst)
        if isinstance(exc, OneMetalError):
            raise
        if isinstance(exc, (OSError, ValueError)):
            raise DownloadFailed(f"cannot fetch {url}: {exc}", FIELD) from None
        raise


def remote_size_mb(url: str, cfg: StorageConfig) -> int:
    """The size a server announces for `url` (HEAD), in MB rounded up, for DS stat."""
    import urllib.request

    request = urllib.request.Request(url, method="HEAD")
    try:
        with _opener(cfg).open(request, timeout=min(cfg.url_timeout, 60)) as response:
            length = response.headers.get("Content-Length", "")
    except (OSError, ValueError) as exc:
        raise DownloadFailed(f"cannot reach {url}: {exc}", FIELD) from None
    if not length.isdigit():
        raise DownloadFailed(f"{url} announces no size", FIELD)
    return -(-int(length) // (1 << 20))


def digest(path: str, algorithm: str = "md5") -> str:
    import hashlib  # only export and a checksum check read a whole image

    found = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            found.update(chunk)
    return found.hexdigest()


def verify(req: Request, path: str) -> None:
    """IMAGE/TEMPLATE/MD5 and SHA1, when given, match the imported file (downloader.sh's check)."""
    for algorithm in ("md5", "sha1"):
        field = f"IMAGE/TEMPLATE/{algorithm.upper()}"
        want = req.text(field).lower()
        if want and digest(path, algorithm) != want:
            raise InputError(f"the imported image's {algorithm} is not {want}", field)
