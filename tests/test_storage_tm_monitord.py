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
