"""The README's first command: `onemetal demo` builds the reference deployment and checks every step."""

from onemetal.demo import run_demo


def test_the_demo_passes_every_step():
    said: list[str] = []
    assert run_demo(3, 1500, said.append) == 0, "\n".join(said)
    assert said[-1].endswith("all steps ok")
    assert not [line for line in said if line.startswith("FAILED")]
