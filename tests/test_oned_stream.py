"""oned's interactive SSH stream (lab/oned_stream.py) against a local `bash -s`: no lab needed."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from onemetal.lab.oned import MAGIC_RC, Step
from onemetal.lab.oned_stream import SshStream, oned_message
from onemetal.lab.registry import alive

SCRIPTS = {
    "echo_stdin": "#!/bin/sh\ncat\n",
    "exit_with": ('#!/bin/sh\necho "out $1"\necho "INFO: exiting $1" >&2\n'
                  'echo "reason $1" >&2\nexit "$1"\n'),
    "args": '#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n',
    "sleeper": "#!/bin/sh\necho $$ > \"$1\"\nsleep 30\n",
}


@pytest.fixture()
def remotes(tmp_path) -> str:
    for name, text in SCRIPTS.items():
        path = tmp_path / "vmm" / "t" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    return str(tmp_path)


@pytest.fixture()
def stream(remotes) -> Iterator[SshStream]:
    with SshStream(["bash", "-s"], remote_dir=remotes) as s:
        yield s


@pytest.mark.parametrize("text", ["<VM><ID>1</ID></VM>", "line\n", ""])
def test_the_heredoc_adds_a_newline_to_the_scripts_stdin(stream, text) -> None:
    result = stream.run(Step("vmm/t/echo_stdin", (), text))
    assert (result.code, result.stdout) == (0, text + "\n")


def test_each_step_has_its_own_exit_code_output_and_stderr_in_one_session(stream) -> None:
    results = [stream.run(Step("vmm/t/exit_with", (str(code),))) for code in (0, 3, 0, 7)]
    assert [r.code for r in results] == [0, 3, 0, 7]
    assert [r.stdout for r in results] == ["out 0\n", "out 3\n", "out 0\n", "out 7\n"]
    assert results[1].stderr == "INFO: exiting 3\nreason 3\n"
    assert results[1].logs == (("INFO", "exiting 3"),)
    # what oned 7.x shows: the non-log lines, and the marker's rest that ssh_stream.rb keeps
    assert oned_message(results[3]) == "reason 7ExitCode: 7"
    assert stream.alive


def test_arguments_reach_the_script_as_words(stream) -> None:
    result = stream.run(Step("vmm/t/args", ("a b", "$HOME", "it's")))
    assert result.stdout == "[a b]\n[$HOME]\n[it's]\n"


def test_a_missing_script_gives_42_and_the_session_goes_on(stream) -> None:
    result = stream.run(Step("vmm/t/absent", ("x",), "data"))
    assert result.code == MAGIC_RC
    assert stream.run(Step("vmm/t/exit_with", ("0",))).code == 0


def test_plain_commands_make_a_directory_and_write_a_file_from_stdin(stream, tmp_path) -> None:
    vm_dir = str(tmp_path / "datastores" / "0" / "5")
    assert stream.run_command(["/bin/mkdir", "-p", vm_dir], stdin="").code == 0
    written = stream.run_command(["/bin/cat", "-"], stdin="<VM/>", output=f"{vm_dir}/vm.xml")
    assert written.code == 0
    with open(f"{vm_dir}/vm.xml", encoding="utf-8") as f:
        assert f.read() == "<VM/>\n"
    assert stream.run_command(["/no/such/tool"]).code == MAGIC_RC


def test_a_step_past_its_deadline_fails_within_it_and_the_session_is_gone(stream, tmp_path) -> None:
    pid_file = str(tmp_path / "sleeper.pid")
    begin = time.monotonic()
    result = stream.run(Step("vmm/t/sleeper", (pid_file,)), timeout=1.0)
    took = time.monotonic() - begin
    print(f"\nstep with a 1 s deadline returned after {took:.2f} s")
    assert result.code != 0
    assert result.stderr.endswith("Timeout Error")
    assert took < 10
    assert not stream.alive
    with open(pid_file, encoding="ascii") as f:
        sleeper = int(f.read())
    assert not alive(sleeper)
    assert stream.run(Step("vmm/t/exit_with", ("0",))).code == -1


def test_close_ends_the_session(remotes) -> None:
    stream = SshStream(["bash", "-s"], remote_dir=remotes)
    assert stream.run(Step("vmm/t/exit_with", ("0",))).code == 0
    stream.close()
    assert not stream.alive
    assert stream._proc.returncode == 0


def test_a_session_that_cannot_start_its_shell_fails_the_step(remotes) -> None:
    with SshStream(["sh", "-c", "echo 'ssh: connect to host one-9: No route' >&2; exit 255"],
                   remote_dir=remotes) as stream:
        result = stream.run(Step("vmm/t/exit_with", ("0",)), timeout=5.0)
    assert result.code == 255
    assert "No route" in result.stderr


def test_a_script_path_the_mads_double_quotes_cannot_hold_is_refused(stream, tmp_path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(ValueError, match="double quotes"):
        stream.run(Step(f"vmm/t/$(touch {marker})"))
    assert not marker.exists()
    assert stream.run(Step("vmm/t/exit_with", ("0",))).code == 0


def test_a_session_that_stops_reading_its_stdin_times_out_while_written_to(remotes) -> None:
    stream = SshStream(["sleep", "30"], remote_dir=remotes)
    try:
        begin = time.monotonic()
        result = stream.run(Step("vmm/t/echo_stdin", (), "x" * 1_000_000), timeout=1.0)
        took = time.monotonic() - begin
        print(f"\n1 MB to a session that reads nothing, 1 s deadline: returned after {took:.2f} s")
        assert result.stderr.endswith("Timeout Error") and took < 10
        assert not stream.alive and not alive(stream._proc.pid)
    finally:
        stream.close()
