import os
import time

import pytest

from onemetal.errors import MissingDependency
from onemetal.run import CommandError, CommandTimeout, Runner, SshRunner, SshTarget


def test_output_is_captured_and_input_passed():
    result = Runner().run(["cat"], input="hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello", "")


def test_failure_names_command_exit_code_and_stderr():
    with pytest.raises(CommandError) as info:
        Runner().run(["sh", "-c", "echo nope >&2; exit 3"])
    message = str(info.value)
    assert "sh -c" in message and "exit code 3" in message and "nope" in message


def test_unchecked_failure_returns_the_result():
    assert Runner().run(["false"], check=False).returncode == 1


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild"
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish within 0.5 s"):
        Runner().run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert time.monotonic() - start < 5
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{grandchild}"):
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{grandchild}"), "the sleeping grandchild survived the timeout"


def test_missing_tool_names_the_package():
    runner = Runner(env={"PATH": "/nonexistent"})
    with pytest.raises(MissingDependency, match="^ovs-vsctl: command not found: install the Debian package openvswitch-switch"):
        runner.run(["ovs-vsctl", "show"])


def test_shell_strings_are_refused():
    with pytest.raises(TypeError):
        Runner().run("echo hi")  # type: ignore[arg-type]


def test_ssh_quotes_every_word_and_sets_batch_options():
    ssh = SshRunner(SshTarget(host="one-1", user="oneadmin", port=2222, key="/k",
                              known_hosts="/kh", connect_timeout=4))
    argv = ssh.ssh_argv(["echo", "a b; rm -rf /"])
    assert argv[-2:] == ["one-1", "echo 'a b; rm -rf /'"]
    joined = " ".join(argv)
    for option in ("BatchMode=yes", "ConnectTimeout=4", "StrictHostKeyChecking=yes",
                   "-p 2222", "-l oneadmin", "-i /k", "UserKnownHostsFile=/kh"):
        assert option in joined


@pytest.mark.parametrize("kwargs", [{"host": "-oProxyCommand=x"}, {"host": "h", "host_key_policy": "maybe"}])
def test_bad_ssh_targets_are_refused(kwargs):
    with pytest.raises(Exception, match="host"):
        SshTarget(**kwargs)
