"""What onemetal.run keeps of subprocess's behaviour now that it spawns with onemetal.child."""

from __future__ import annotations

import os
import subprocess

import pytest

from onemetal import child
from onemetal.run import CommandTimeout, Runner


def test_large_input_and_output_both_ways_do_not_deadlock():
    # far more than a pipe buffer each way, at the same time: the child writes while we feed it
    data = "".join(f"line {i}\n" for i in range(200_000))
    result = Runner().run(["sh", "-c", "cat; cat /proc/self/status >&2"], input=data, timeout=20)
    assert result.stdout == data and "Pid:" in result.stderr


def test_a_child_that_stops_reading_stdin_is_not_an_error():
    result = Runner().run(["head", "-c", "3"], input="x" * 1_000_000, timeout=10)
    assert (result.returncode, result.stdout) == (0, "xxx")


def test_the_child_gets_sigpipe_back_as_the_default():
    # Python ignores SIGPIPE; a child that inherited that would see EPIPE instead of dying
    ignored = Runner().run(["grep", "SigIgn", "/proc/self/status"]).stdout.split()[1]
    assert int(ignored, 16) & (1 << (13 - 1)) == 0


def test_the_child_runs_in_a_session_of_its_own():
    sid = Runner().run(["sh", "-c", "cut -d' ' -f6 /proc/$$/stat"]).stdout.strip()
    assert int(sid) != os.getsid(0)


def test_environment_and_path_of_the_child(tmp_path):
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\necho \"$GREETING from $0\"\n")
    tool.chmod(0o755)
    runner = Runner(env={"PATH": f"/nonexistent:{tmp_path}:/usr/bin:/bin", "GREETING": "hi"})
    assert runner.run(["mytool"]).stdout == f"hi from {tool}\n"
    assert Runner().run(["sh", "-c", "echo ${GREETING:-unset}"]).stdout == "unset\n"


def test_stdin_is_dev_null_without_input():
    assert Runner().run(["cat"], timeout=5).stdout == ""


def test_a_signal_death_is_a_negative_exit_code_and_bytes_are_decoded_leniently():
    result = Runner().run(["sh", "-c", "printf '\\377ok'; kill -TERM $$"], check=False)
    assert (result.returncode, result.stdout) == (-15, "\ufffdok")


def test_a_timeout_keeps_what_was_read_and_leaves_no_descriptor_open():
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(CommandTimeout) as info:
        Runner().run(["sh", "-c", "echo started; sleep 30"], input="unread", timeout=0.5)
    assert info.value.result.stdout == "started\n" and info.value.result.returncode == -9
    Runner().run(["true"])
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_daemon_holding_the_pipes_after_the_kill_is_bounded_by_the_reap_time(tmp_path):
    # setsid: the daemon leaves the group, so the kill does not reach it and it keeps stdout
    pidfile = tmp_path / "daemon"
    try:
        with pytest.raises(child.Deadline):
            child.run(["sh", "-c", f"setsid sleep 30 & echo $! > {pidfile}; sleep 30"],
                      None, None, 0.3, 0.3)
    finally:
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)

