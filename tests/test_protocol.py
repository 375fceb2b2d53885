import io

from onemetal.errors import InputError
from onemetal.lab.oned import error_message_6_0, error_message_6_10, error_message_7x
from onemetal.opennebula.protocol import ERROR_BEGIN, ERROR_END, run_action


def run(body):
    out, err = io.StringIO(), io.StringIO()
    code = run_action("pre", body, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_success_prints_only_the_result():
    code, out, err = run(lambda: "one-42")
    assert (code, out, err) == (0, "one-42\n", "")


def test_failure_reason_reaches_every_opennebula_version():
    def body():
        raise InputError("'br;0' contains characters not allowed", "NIC[NIC_ID=0]/BRIDGE")

    code, out, err = run(body)
    reason = "NIC[NIC_ID=0]/BRIDGE: 'br;0' contains characters not allowed"
    assert code == 1 and out == ""
    assert err.splitlines() == [f"ERROR: pre: {reason}", ERROR_BEGIN, reason, ERROR_END]
    assert error_message_6_0(err) == reason
    assert reason in error_message_6_10(err)
    assert reason in error_message_7x(err)
    assert "ERROR: pre" not in error_message_7x(err)  # the log line went to the VM log instead


def test_multiline_reason_becomes_one_line():
    def body():
        raise InputError("first\nsecond", "X")

    _, _, err = run(body)
    assert error_message_6_0(err) == "X: first second"


def test_unexpected_exception_still_follows_the_protocol():
    def body():
        raise KeyError("boom")

    code, _, err = run(body)
    assert code == 1 and "internal error: KeyError" in error_message_6_0(err)
