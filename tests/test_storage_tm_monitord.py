"""The MONITOR_VM message the system datastore monitor sends monitord, against the stock shell."""

import subprocess

from onemetal.storage import tm_monitord

# monitord.conf's NETWORK section as OpenNebula installs it.
MONITORD_CONF = """# comment: PORT = 1
NETWORK = [
    ADDRESS         = "::",
    MONITOR_ADDRESS = "auto",
    PORT    = 4124,
    THREADS = 8,
    PUBKEY  = "",
    PRIKEY  = ""
]
"""
LINES = ['VM=[ID=44, MONITOR="RElTS19TSVpFID0gWyBJRD0wLCBTSVpFPTFd"]',
         'VM=[ID=45, MONITOR="RElTS19TSVpFID0gWyBJRD0xLCBTSVpFPTJd"]']


def test_the_message_is_the_stock_send_to_monitor_s():
    # scripts_common.sh: echo $msg_payload | ruby -e "..." | base64 -w 0, after the header.
    stock = subprocess.run(
        ["bash", "-c", "echo \"MONITOR_VM SUCCESS -1 0 $(echo $P | ruby -e \"require 'zlib'; "
                       "puts Zlib::Deflate.deflate(STDIN.read)\" | base64 -w 0)\""],
        env={"P": "\n".join(LINES), "PATH": "/usr/bin:/bin"}, capture_output=True, check=True,
        timeout=30).stdout
    assert tm_monitord.message(LINES) == stock


def test_settings_are_read_from_the_network_vector():
    assert tm_monitord.setting(MONITORD_CONF, "MONITOR_ADDRESS") == "auto"
    assert tm_monitord.setting(MONITORD_CONF, "PORT") == "4124"
    assert tm_monitord.setting(MONITORD_CONF, "PUBKEY") == ""
    assert tm_monitord.setting("NETWORK = [ PORT = 5000 ]", "PORT") == "5000"


def test_every_snapshot_of_a_disk_is_sized_ten_and_beyond_included(tmp_path):
    from onemetal.storage.tm_monitor import vm_sizes

    vm = tmp_path / "42"
    (vm / "disk.0.snap").mkdir(parents=True)
    (vm / "disk.0").write_bytes(b"x")
    for snap in ("0", "2", "10", "tmp"):
        (vm / "disk.0.snap" / snap).write_bytes(b"y")
    lines = vm_sizes(str(tmp_path))["42"]
    assert [line.split(",")[0] for line in lines] == [
        "DISK_SIZE = [ ID=0", "SNAPSHOT_SIZE = [ ID=0", "SNAPSHOT_SIZE = [ ID=2",
        "SNAPSHOT_SIZE = [ ID=10"]
