"""DS_DRIVER_ACTION_DATA decoding, import sources and URL downloads, in-process."""

from __future__ import annotations

import base64
import http.server
import io
import os
import threading

import pytest

from onemetal.config import StorageConfig
from onemetal.errors import InputError
from onemetal.storage import ds_fetch
from onemetal.storage.ds_request import MAX_INPUT, decode

DOC = ("<DS_DRIVER_ACTION_DATA><DATASTORE><BASE_PATH>/var/lib/one//datastores/1</BASE_PATH>"
       "<TEMPLATE/></DATASTORE><IMAGE><SOURCE>/var/lib/one/datastores/1/abc</SOURCE>"
       "<TARGET_SNAPSHOT>3</TARGET_SNAPSHOT></IMAGE></DS_DRIVER_ACTION_DATA>")
CFG = StorageConfig()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_both_argv_forms_give_the_same_request():
    new = decode(["7"], io.StringIO(b64(DOC)))  # 6.8+: id in argv, document on stdin
    old = decode([b64(DOC), "7"], io.StringIO(""))  # before 6.8
    assert new.id == old.id == 7 and new.text("IMAGE/SOURCE") == old.text("IMAGE/SOURCE")
    assert new.base_path(CFG) == "/var/lib/one/datastores/1"
    assert new.source(CFG) == "/var/lib/one/datastores/1/abc" and new.snapshot_id() == 3


def test_base64_quirks_wrapped_lines_trailing_newline_and_missing_padding():
    wrapped = base64.encodebytes(DOC.encode()).decode()  # Ruby's encode64: 60-char lines
    assert "\n" in wrapped.strip()
    assert decode(["1"], io.StringIO(wrapped)).root.tag == "DS_DRIVER_ACTION_DATA"
    assert decode(["1"], io.StringIO(b64(DOC + " ").rstrip("=") + "\n")).id == 1


@pytest.mark.parametrize("data, raw_id, field", [
    ("not base64!", "1", "DS_DRIVER_ACTION_DATA"),
    (b64("<DS_DRIVER_ACTION_DATA><IMAGE>"), "1", "DS_DRIVER_ACTION_DATA"),
    (b64('<!DOCTYPE x [<!ENTITY a "b">]><DS_DRIVER_ACTION_DATA/>'), "1", "DS_DRIVER_ACTION_DATA"),
    (b64("<VM/>"), "1", "DS_DRIVER_ACTION_DATA"),
    (b64(DOC), "7x", "ID"),
    (b64(DOC), "", "ID"),
    ("A" * (MAX_INPUT + 4), "1", "DS_DRIVER_ACTION_DATA"),
])
def test_malformed_requests_name_the_field(data, raw_id, field):
    with pytest.raises(InputError) as err:
        decode([raw_id], io.StringIO(data))
    assert err.value.field == field


def test_no_argument_at_all_is_refused():
    with pytest.raises(InputError, match="ID"):
        decode([], io.StringIO(b64(DOC)))


@pytest.mark.parametrize("source", ["/var/lib/one/datastores/1/../2/abc", "/var/lib/one/datastores/2/abc",
                                    "/var/lib/one/datastores/1/sub/abc", "abc"])
def test_sources_outside_the_datastore_are_refused(source):
    req = decode(["1"], io.StringIO(b64(DOC.replace("/var/lib/one/datastores/1/abc", source))))
    with pytest.raises(InputError) as err:
        req.source(CFG)
    assert err.value.field == "IMAGE/SOURCE"


def _image_req(path: str, extra: str = "") -> object:
    doc = DOC.replace("<TEMPLATE/>", f"<TEMPLATE>{extra}</TEMPLATE>").replace(
        "<IMAGE>", f"<IMAGE><PATH>{path}</PATH>")
    return decode(["1"], io.StringIO(b64(doc)))


def test_restricted_and_safe_dirs_as_the_stock_check_restricted(tmp_path):
    image = tmp_path / "a.img"
    image.write_bytes(b"x" * 10)
    assert ds_fetch.local_path(_image_req(str(image)), CFG) == str(image)
    restricted = f"<RESTRICTED_DIRS>{tmp_path}</RESTRICTED_DIRS>"
    with pytest.raises(InputError, match="RESTRICTED_DIRS"):
        ds_fetch.local_path(_image_req(str(image), restricted), CFG)
    safe = restricted + f"<SAFE_DIRS>{tmp_path}/</SAFE_DIRS>"
    assert ds_fetch.local_path(_image_req(str(image), safe), CFG) == str(image)
    link = tmp_path / "link"
    os.symlink("/etc/one", link)  # resolved first, like readlink -f
    with pytest.raises(InputError, match="not allowed"):
        ds_fetch.local_path(_image_req(f"{link}/oned.conf"), CFG)


def test_paths_in_a_datastore_or_with_dotdot_are_refused(tmp_path):
    cfg = StorageConfig(datastores_dir=str(tmp_path))
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "img").write_bytes(b"x")
    for path, reason in [(f"{tmp_path}/2/img", "inside a datastore"), ("/tmp/../etc/passwd", "'..'"),
                         ("relative.img", "absolute")]:
        with pytest.raises(InputError, match=reason) as err:
            ds_fetch.local_path(_image_req(path), cfg)
        assert err.value.field == "IMAGE/PATH"


@pytest.fixture()
def http_server(tmp_path):
    (tmp_path / "small").write_bytes(b"q" * 1000)
    (tmp_path / "big").write_bytes(b"b" * (3 << 20))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/stream":
                return super().do_GET()
            self.send_response(200)  # no Content-Length: the limit is counted while reading
            self.end_headers()
            for _ in range(3):
                self.wfile.write(b"s" * (1 << 20))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(5)


def test_download_is_bounded_and_leaves_no_partial_file(http_server, tmp_path):
    cfg = StorageConfig(url_max_mb=1, url_timeout=10, url_allowed_networks=("127.0.0.1/32",))
    dst = tmp_path / "out"
    ds_fetch.download(f"{http_server}/small", str(dst), cfg)
    assert dst.read_bytes() == b"q" * 1000
    assert ds_fetch.remote_size_mb(f"{http_server}/big", cfg) == 3
    for name, reason in [("big", "url_max_mb = 1 MB"), ("stream", "url_max_mb = 1 MB"),
                         ("missing", "404")]:
        with pytest.raises(ds_fetch.DownloadFailed, match=reason) as err:
            ds_fetch.download(f"{http_server}/{name}", str(tmp_path / "part"), cfg)
        assert err.value.field == "IMAGE/PATH"
        assert not (tmp_path / "part").exists()


def test_an_existing_file_is_never_overwritten_by_a_download(http_server, tmp_path):
    dst = tmp_path / "keep"
    dst.write_bytes(b"mine")
    with pytest.raises(ds_fetch.DownloadFailed):
        ds_fetch.download(f"{http_server}/small", str(dst), StorageConfig())
    assert dst.read_bytes() == b"mine"


@pytest.mark.parametrize("url", ["ftp://x/y", "file:///etc/passwd", "http:///nohost"])
def test_only_http_urls_are_accepted(url):
    with pytest.raises(InputError, match="http"):
        ds_fetch.checked_url(_image_req(url))
