"""The one way onemetal runs an external command.

argv lists only (never a shell string), a timeout on every call, the whole
process group killed at the deadline, output captured, and an error that names
the command, its exit code and its stderr. `SshRunner` has the same interface
and runs the command on another host, the way oned reaches its hosts.

>>> Runner().run(["echo", "hi"]).stdout
'hi\\n'
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Mapping, Sequence

from onemetal import child, lazylog
from onemetal.deps import package_of_tool
from onemetal.errors import MissingDependency, OneMetalError
from onemetal.record import value

log = lazylog.getLogger(__name__)

# Benchmark only (bench/cold_start.py): with this set to 1, a command is not run; the
# process exits with BENCH_STOP_CODE instead, so the start-up of an entry point can be
# timed up to its first external command on a machine that is not a host.
BENCH_STOP = "ONEMETAL_BENCH_STOP_BEFORE_RUN"
BENCH_STOP_CODE = 97

DEFAULT_TIMEOUT = 30.0
# After the group is killed, how long to wait for the pipes to drain.
_REAP_TIMEOUT = 5.0

# As oneadmin, root's commands go through sudo without ever prompting for a password.
SUDO = ("sudo", "-n")


def quoted(argv: Sequence[str]) -> str:
    """argv as a shell would read it, for messages (shlex imports re: loaded only here)."""
    import shlex

    return shlex.join(argv)


def missing_tool(tool: str) -> MissingDependency:
    package = package_of_tool(tool)
    hint = f": install the Debian package {package}" if package else ""
    return MissingDependency(f"command not found{hint}", field=tool)


class SudoRefused(OneMetalError):
    """sudo would not run a command: the host's sudoers do not grant it without a password."""


@value
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class CommandError(OneMetalError):
    """A command exited non-zero (or could not be run at all)."""

    def __init__(self, result: Result, where: str = "") -> None:
        self.result = result
        # OpenNebula's error markers frame the reason: skip them to reach it.
        detail = [line for line in result.stderr.strip().splitlines()
                  if not line.startswith("ERROR MESSAGE ")]
        reason = detail[-1] if detail else "no output on stderr"
        place = f" on {where}" if where else ""
        super().__init__(
            f"{quoted(result.argv)}{place} failed with exit code "
            f"{result.returncode}: {reason}")


class CommandTimeout(CommandError):
    def __init__(self, result: Result, timeout: float, where: str = "") -> None:
        self.timeout = timeout
        OneMetalError.__init__(
            self, f"{quoted(result.argv)}{' on ' + where if where else ''} "
                  f"did not finish within {timeout:g} s and was killed")
        self.result = result


class CommandRunner:
    """What every runner has (Runner, SshRunner, the lab's): a structural type for annotations."""

    def run(self, argv: Sequence[str], *, input: str | None = None,
            timeout: float | None = None, check: bool = True) -> Result: ...


def _check_sudo(result: Result, argv: list[str]) -> None:
    first = result.stderr.strip().splitlines()[:1]
    line = first[0] if first else ""
    if line.startswith("sudo: ") and line.endswith(": command not found"):
        raise missing_tool(os.path.basename(argv[0]))
    if line in ("sudo: a password is required", "sudo: a terminal is required to read the password; "
                "either use the -S option to read from standard input or configure an askpass helper"):
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
        raise SudoRefused(
            f"sudo refused `{quoted(argv)}` to {user}: this host's sudoers do not allow it "
            f"without a password; install OpenNebula's node sudoers and onemetal's fragment "
            f"as /etc/sudoers.d/onemetal (see docs/design.md)")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _bench_stop(argv: list[str]) -> None:
    os.write(2, f"bench: stopped before {' '.join(argv)}\n".encode())
    os._exit(BENCH_STOP_CODE)  # no cleanup to time: the entry ends where its first command would start


def privileged(timeout: float = DEFAULT_TIMEOUT) -> "Runner":
    """Runs commands as root: directly when we are root, else through `sudo -n`."""
    return Runner(prefix=SUDO if os.geteuid() != 0 else (), timeout=timeout)


@value
class Runner:
    """Runs commands on this machine, optionally behind a prefix such as
    `nsenter -t PID -n -m --` that places them in another namespace."""

    prefix: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    timeout: float = DEFAULT_TIMEOUT
    where: str = ""

    def argv(self, argv: Sequence[str]) -> list[str]:
        if isinstance(argv, str):
            raise TypeError("argv must be a list of words, not a shell string")
        return [*self.prefix, *argv]

    def _environ(self) -> dict[str, str] | None:
        return None if self.env is None else {**os.environ, **self.env}

    def run(self, argv: Sequence[str], *, input: str | None = None,
            timeout: float | None = None, check: bool = True) -> Result:
        full = self.argv(argv)
        limit = self.timeout if timeout is None else timeout
        if os.environ.get(BENCH_STOP) == "1":
            _bench_stop(full)
        start = time.monotonic()
        data = None if input is None else input.encode()
        try:
            code, out, err = child.run(full, data, self._environ(), limit, _REAP_TIMEOUT)
        except FileNotFoundError as exc:
            raise missing_tool(os.path.basename(str(exc.filename or full[0]))) from None
        except child.Deadline as late:
            result = Result(tuple(full), -9, _text(late.out), _text(late.err),
                            time.monotonic() - start)
            raise CommandTimeout(result, limit, self.where) from None
        result = Result(tuple(full), code, _text(out), _text(err), time.monotonic() - start)
        log.debug("ran %s -> %d in %.3fs", full, code, result.seconds)
        if code != 0 and self.prefix[:len(SUDO)] == SUDO:
            _check_sudo(result, list(argv))  # sudo's own refusal is never the command's answer
        if check and code != 0:
            raise CommandError(result, self.where)
        return result

    def spawn(self, argv: Sequence[str], log_path: str) -> subprocess.Popen[bytes]:
        """Start a long-running daemon in its own session, output to `log_path`.

        The caller owns the returned process and must end it."""
        import subprocess  # the frontend's and the lab's daemons only, not a host action's

        with open(log_path, "ab") as out:
            return subprocess.Popen(self.argv(argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=self._environ(),
                                    start_new_session=True)


@value
class SshTarget:
    """How to reach one host: the options oned's own ssh calls rely on, made explicit."""

    host: str
    user: str = "oneadmin"
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None
    # yes: refuse unknown host keys; accept-new: trust on first use; no: lab only.
    host_key_policy: str = "yes"
    connect_timeout: int = 10
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.host_key_policy not in ("yes", "accept-new", "no"):
            raise OneMetalError("must be yes, accept-new or no", field="host_key_policy")
        if not self.host or self.host.startswith("-"):
            raise OneMetalError(f"invalid host name {self.host!r}", field="host")


@value
class SshRunner:
    """Runs a command on a host over SSH with the interface of `Runner`.

    `local` is the runner ssh itself is started with (a namespace, in the lab)."""

    target: SshTarget
    local: Runner = Runner()
    remote_dir: str = "/var/tmp/one"
    python: str = "/usr/bin/python3"

    def ssh_options(self) -> list[str]:
        """ssh and its options, without host or command (also the transport for rsync -e)."""
        t = self.target
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={t.connect_timeout}",
                "-o", f"StrictHostKeyChecking={t.host_key_policy}", "-p", str(t.port),
                "-l", t.user]
        if t.key:
            opts += ["-i", t.key, "-o", "IdentitiesOnly=yes"]
        if t.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={t.known_hosts}"]
        for opt in t.options:
            opts += ["-o", opt]
        return ["ssh", *opts]

    def ssh_argv(self, argv: Sequence[str]) -> list[str]:
        if isinstance(argv, str):
            raise TypeError("argv must be a list of words, not a shell string")
        # ssh joins its words with spaces for the remote shell: quote each one.
        return [*self.ssh_options(), "--", self.target.host, quoted(argv)]

    def run(self, argv: Sequence[str], *, input: str | None = None,
            timeout: float | None = None, check: bool = True) -> Result:
        result = self.local.run(self.ssh_argv(argv), input=input, timeout=timeout, check=False)
        if result.returncode == 255 and check:
            raise CommandError(result, f"{self.target.host} (ssh could not connect)")
        if check and result.returncode != 0:
            raise CommandError(result, self.target.host)
        return result

    def run_entry(self, entry: str, args: Sequence[str] = (), *, input: str | None = None,
                  timeout: float | None = None, check: bool = True) -> Result:
        """Run a core entry point (see onemetal.hostcall) on the host, with the
        core copy the remotes tree carries and the host's own interpreter."""
        call = f"{self.remote_dir}/onemetal/call"
        return self.run([self.python, call, entry, *args], input=input,
                        timeout=timeout, check=check)
