"""oned's VMM MAD (src/vmm_mad/exec/one_vmm_exec.rb), for the lab's oned double.

Each action is the MAD's list of steps: one SshStream per host per action, opened from
the frontend as oneadmin; a failing step runs its fail actions and ends the action,
unless it is marked no_fail. For a namespace VM the lab is the hypervisor: a callable
(plug, unplug, move) takes the place of the vmm step and counts as a step of its own.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable, Sequence

from onemetal.lab.frontend_host import REMOTE_DIR, frontend
from onemetal.lab.lab import Lab
from onemetal.lab.oned import Step, StepResult, error_message_7x
from onemetal.lab.oned_stream import SshStream, oned_message
from onemetal.lab.oned_tm import run_tm
from onemetal.lab.samples import VN_MAD, b64

VM_MAD = "onemetal"
TM_MAD = "onemetal"
Hook = Callable[[], None]


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    info: str                           # the reply's info: the deploy id, or the failed step's
    steps: list[tuple[str, StepResult]]
    # the failed step's info on OpenNebula 7.x; oned's ERROR is "<ACTION>: " and this (log_error)
    message: str = ""


@dataclass(frozen=True)
class MadStep:
    name: str
    call: Callable[[], StepResult]
    fail: tuple["MadStep", ...] = ()
    no_fail: bool = False
    local: bool = False                 # a LocalCommand on the frontend, not a stream's step
    driver: str = ""                    # a VNM step's VN_MAD: one_vnm.rb prefixes its info with it


@dataclass
class _Run:
    steps: list[tuple[str, StepResult]] = field(default_factory=list)
    message: str = ""

    def execute(self, steps: Sequence[MadStep]) -> bool:
        """execute_steps: a failure runs the step's fail actions, then stops unless no_fail."""
        for step in steps:
            result = step.call()
            self.steps.append((step.name, result))
            if result.code != 0:
                self.execute(step.fail)
                # the stream's stderr ends with the rest of its marker; a local command's does not
                info = error_message_7x(result.stderr) if step.local else oned_message(result)
                self.message = f"{step.driver}: {info}" if step.driver else info
                if not step.no_fail:
                    return False
        return True

    def result(self, ok: bool, main: str) -> ActionResult:
        """On success the reply's info is the `main` step's stdout, trimmed (VmmAction.run)."""
        if ok:
            info = next(r.stdout.strip() for name, r in self.steps if name == main)
            return ActionResult(True, info or "-", self.steps)
        return ActionResult(False, self.message or "-", self.steps, self.message)


def hook(call: Hook, info: str = "") -> StepResult:
    """A callable in place of a script: an exception is that step's failure."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the lab's failure becomes the step's, as a script's
        return StepResult(1, "", f"{type(exc).__name__}: {exc}\n")
    return StepResult(0, info + "\n" if info else "", "")


class VmmMad:
    def __init__(self, lab: Lab, *, vm_mad: str = VM_MAD, vn_mad: str = VN_MAD,
                 tm_mad: str = TM_MAD, timeout: float = 60.0) -> None:
        self.lab = lab
        self.vm_mad, self.vn_mad, self.tm_mad = vm_mad, vn_mad, tm_mad
        self.timeout = timeout

    def stream(self, host: str) -> SshStream:
        argv = frontend(self.lab).oneadmin.argv(["ssh", "-o", "BatchMode=yes", host, "bash", "-s"])
        return SshStream(argv, remote_dir=REMOTE_DIR)

    def vmm(self, s: SshStream, action: str, args: Sequence[str], vm_id: int, host: str,
            stdin: str) -> StepResult:
        """do_action: `<vmid> <host>` appended; stdin the deployment or the action data."""
        step = Step(f"vmm/{self.vm_mad}/{action}", (*args, str(vm_id), host), stdin)
        return s.run(step, self.timeout)

    def vnm(self, s: SshStream, action: str, args: Sequence[str], payload: str) -> StepResult:
        """VirtualNetworkDriver.do_action: the VNM document in one-line base64 on stdin."""
        return s.run(Step(f"vnm/{self.vn_mad}/{action}", tuple(args), b64(payload)), self.timeout)

    def vnm_step(self, s: SshStream, payload: str, action: str,
                 args: Callable[[], Sequence[str]] = tuple, *, fail: tuple[MadStep, ...] = (),
                 no_fail: bool = False) -> MadStep:
        """A VNM step; `args` is called when it runs (post's deploy id comes from deploy)."""
        return MadStep(f"vnm {action}", lambda: self.vnm(s, action, args(), payload), fail,
                       no_fail, driver=self.vn_mad)

    def tm(self, words: Sequence[str], stdin: str | None = None) -> Callable[[], StepResult]:
        """A TM step of the MAD (do_transfer_action), on the frontend: `<ACTION> <tm_mad> ...`."""
        def call() -> StepResult:
            result = run_tm(self.lab, words[0], words[1:], stdin)
            return StepResult(result.returncode, result.stdout, result.stderr)
        return call

    def deploy(self, vm_id: int, host: str, *, vnm_payload: str, vm_xml: str, ds_xml: str,
               vm_dir: str, deployment: str | None = None, plug: Hook | None = None,
               unplug: Hook | None = None, action_data: str = "",
               tm_command: str | None = None) -> ActionResult:
        """`tm_command`: the action's TM_COMMAND (`CONTEXT <tm_mad> ...`), run first."""
        run = _Run()
        deploy_id = f"one-{vm_id}"
        main = "vmm deploy" if deployment is not None else "plug"
        with self.stream(host) as s:
            def boot() -> StepResult:
                nonlocal deploy_id
                if deployment is None:
                    return hook(plug or (lambda: None), deploy_id)
                result = self.vmm(s, "deploy", [f"{vm_dir}/deployment.0", host], vm_id, host,
                                  deployment)
                deploy_id = result.stdout.strip()
                return result

            def cancel() -> StepResult:
                if deployment is None:
                    return hook(unplug or (lambda: None))
                return self.vmm(s, "cancel", [deploy_id, host], vm_id, host, action_data)

            clean = self.vnm_step(s, vnm_payload, "clean", lambda: [host])
            context = ([MadStep("tm context", self.tm(tm_command.split()), local=True)]
                       if tm_command else [])
            ok = run.execute([
                *context,
                self.vnm_step(s, vnm_payload, "pre"),
                MadStep("mkdir", lambda: s.run_command(["/bin/mkdir", "-p", vm_dir], stdin="")),
                MadStep("vm.xml", lambda: s.run_command(["/bin/cat", "-"], stdin=vm_xml,
                                                        output=f"{vm_dir}/vm.xml")),
                MadStep("ds.xml", lambda: s.run_command(["/bin/cat", "-"], stdin=ds_xml,
                                                        output=f"{vm_dir}/ds.xml")),
                MadStep(main, boot, (clean,)),
                self.vnm_step(s, vnm_payload, "post", lambda: [deploy_id, host], fail=(
                    MadStep("vmm cancel" if deployment is not None else "unplug", cancel), clean)),
            ])
        return run.result(ok, main)

    def shutdown(self, vm_id: int, host: str, deploy_id: str, *, vnm_payload: str,
                 action_data: str, unplug: Hook | None = None) -> ActionResult:
        return self._destroy("shutdown", vm_id, host, deploy_id, vnm_payload, action_data, unplug)

    def cancel(self, vm_id: int, host: str, deploy_id: str, *, vnm_payload: str,
               action_data: str, unplug: Hook | None = None) -> ActionResult:
        return self._destroy("cancel", vm_id, host, deploy_id, vnm_payload, action_data, unplug)

    def _destroy(self, action: str, vm_id: int, host: str, deploy_id: str, vnm_payload: str,
                 action_data: str, unplug: Hook | None) -> ActionResult:
        run = _Run()
        main = "unplug" if unplug else f"vmm {action}"
        with self.stream(host) as s:
            def stop() -> StepResult:
                if unplug is not None:
                    return hook(unplug)
                return self.vmm(s, action, [deploy_id, host], vm_id, host, action_data)

            ok = run.execute([
                MadStep(main, stop),
                self.vnm_step(s, vnm_payload, "clean", lambda: [host]),
            ])
        return run.result(ok, main)

    def migrate(self, vm_id: int, src: str, dst: str, deploy_id: str, *, vnm_payload: str,
                vm_xml: str, system_dir: str, ds_id: int, action_data: str,
                move: Hook | None = None) -> ActionResult:
        """Live migration: the TM's pre/post/failmigrate on the frontend with the VM in base64,
        networking prepared on the destination, the VM moved by the source host."""
        run = _Run()
        words = [self.tm_mad, src, dst, system_dir, str(vm_id), str(ds_id)]

        def tm(action: str) -> Callable[[], StepResult]:
            return self.tm([action, *words], b64(vm_xml))

        failmigrate = MadStep("tm failmigrate", tm("failmigrate"), no_fail=True, local=True)
        with ExitStack() as stack:
            source = stack.enter_context(self.stream(src))
            target = stack.enter_context(self.stream(dst)) if dst != src else source

            def relocate() -> StepResult:
                if move is not None:
                    return hook(move)
                return self.vmm(source, "migrate", [deploy_id, dst, src], vm_id, src, action_data)

            steps = [MadStep("tm premigrate", tm("premigrate"), (failmigrate,), local=True)]
            if dst != src:
                steps.append(self.vnm_step(target, vnm_payload, "pre"))
            main = "move" if move else "vmm migrate"
            steps.append(MadStep(main, relocate, (failmigrate,)))
            if dst != src:
                steps += [
                    self.vnm_step(source, vnm_payload, "clean", lambda: [src], no_fail=True),
                    # the destination's post is given the SOURCE host, as the MAD passes :host
                    self.vnm_step(target, vnm_payload, "post", lambda: [deploy_id, src],
                                  no_fail=True)]
            steps.append(MadStep("tm postmigrate", tm("postmigrate"), no_fail=True, local=True))
            ok = run.execute(steps)
        return run.result(ok, main)


__all__ = ["ActionResult", "MadStep", "VmmMad"]
