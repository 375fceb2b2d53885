"""A test double of how oned's MADs run remote scripts (oned cannot be installed here).

It follows src/mad/ruby/ssh_stream.rb: one `ssh <host> bash -s` per VM action;
before each step `[ -x script ]` (exit 42 when missing); each step written as
`(cat << 'EOT' | <script> <quoted args>); echo "ExitCode: $? EOF_ERR" 1>&2; echo "EOF_OUT"`
followed by the stdin text and the line EOT, so the script's stdin ends with an
extra newline. Also how each version of the MAD turns stderr into the VM's ERROR.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from onemetal.opennebula.protocol import ERROR_BEGIN, ERROR_END
from onemetal.run import SshRunner

MAGIC_RC = 42
_RC = re.compile(r"^ExitCode: (\d*) EOF_ERR$", re.M)
_LEVEL = re.compile(r"^(ERROR|INFO|WARN|DEBUG):\s+(\d+)?\s*(.*)$")


@dataclass(frozen=True)
class Step:
    script: str                     # relative to the remote dir, e.g. "vnm/ovswitch_vxlan_unicast/pre"
    args: tuple[str, ...] = ()
    stdin: str | None = None


@dataclass(frozen=True)
class StepResult:
    code: int
    stdout: str
    stderr: str
    logs: tuple[tuple[str, str], ...] = field(default=())


EOF_CMD = 'echo "ExitCode: $? EOF_ERR" 1>&2; echo "EOF_OUT"'


_UNSAFE_IN_QUOTES = re.compile(r'[$`"\\\n]')


def check_command(script: str) -> str:
    """What SshStreamCommand runs before a step: exit 42 (MAGIC_RC) when the script is missing.
    The MAD puts the path in double quotes unescaped; a path they would not hold is refused."""
    if _UNSAFE_IN_QUOTES.search(script):
        raise ValueError(f"{script!r}: the MAD's double quotes would not hold this path")
    return f'if [ ! -x "{script}" ]; then exit {MAGIC_RC} 1>&2; fi'


def heredoc(command: str, stdin: str | None) -> tuple[str, str]:
    """The command line and what follows it on the stream, as OpenNebulaDriver.do_action makes
    them: stdin through `cat << 'EOT'`, ended by an extra newline and the line EOT."""
    if stdin is None:
        return command, ""
    if "\nEOT\n" in f"\n{stdin}\n":
        raise ValueError("stdin must not contain a line EOT (the MAD's heredoc would end there)")
    return f"cat << 'EOT' | {command}", f"{stdin}\nEOT\n"


def _command(step: Step, remote_dir: str) -> str:
    script = f"{remote_dir}/{step.script}"
    body, tail = heredoc(shlex.join([script, *step.args]), step.stdin)
    # The MAD sends no further step after a failure; the rc test stands in for that.
    return (check_command(script) + f"\n({body}); "
            + 'rc=$?; echo "ExitCode: $rc EOF_ERR" 1>&2; echo "EOF_OUT"\n' + tail
            + "[ $rc -eq 0 ] || exit 0\n")


def ssh_stream(ssh: SshRunner, steps: list[Step], remote_dir: str = "/var/tmp/one",
               timeout: float = 120.0) -> list[StepResult]:
    """Run `steps` in one bash session on the host; stops at the first failing step, like the MAD."""
    script = "".join(_command(s, remote_dir) for s in steps)
    result = ssh.run(["bash", "-s"], input=script + "exit\n", timeout=timeout, check=False)
    outs = result.stdout.split("EOF_OUT\n")
    errs = _RC.split(result.stderr)
    results = []
    # errs alternates: text before a marker, its exit code, text before the next, ...
    for index in range(len(steps)):
        if 2 * index + 1 >= len(errs):
            code = MAGIC_RC if result.returncode == MAGIC_RC else result.returncode or -1
            results.append(StepResult(code, outs[index] if index < len(outs) else "",
                                      errs[2 * index] if 2 * index < len(errs) else ""))
            break
        err = errs[2 * index].lstrip("\n")
        results.append(StepResult(int(errs[2 * index + 1] or -1), outs[index], err,
                                  logs=tuple(_logs(err))))
        if results[-1].code != 0:
            break
    return results


def _logs(stderr: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(3)) for m in map(_LEVEL.match, stderr.splitlines()) if m]


def error_message_7x(stderr: str) -> str:
    """OpenNebula 7.x: the stderr lines that are not LEVEL: log lines, stripped, joined without separator."""
    return "".join(line.strip() for line in stderr.splitlines()
                   if line.strip() and not _LEVEL.match(line))


def error_message_6_0(stderr: str) -> str:
    """OpenNebula up to 6.0: only the text between the ERROR MESSAGE marker lines."""
    match = re.search(re.escape(ERROR_BEGIN) + r"\n(.*?)" + re.escape(ERROR_END), stderr, re.S)
    return match.group(1).strip() if match else ""


def error_message_6_10(stderr: str) -> str:
    """OpenNebula 6.2-6.10: the whole stderr, newlines turned into spaces."""
    return " ".join(stderr.split("\n")).strip()
