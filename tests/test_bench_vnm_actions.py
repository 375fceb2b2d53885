"""bench/vnm_actions.py: one cycle of ours and of the stock driver on a lab host, state checked."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from conftest import installed_lab

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))

import stock_lab  # noqa: E402
import stock_tree  # noqa: E402
import vnm_actions  # noqa: E402
from vnm_actions_drivers import ACTIONS, HOSTS, Ours, Stock  # noqa: E402

MIRROR = "/work/.mirror/OpenNebula+one/repo"


@pytest.mark.skipif(not os.path.isdir(MIRROR) or not shutil.which("ruby"),
                    reason="needs OpenNebula's source (git mirror) and ruby")
def test_one_cycle_of_both_drivers_leaves_each_one_its_state_and_times_every_action(tmp_path):
    tree = str(tmp_path / "stock")
    stock_tree.main(["--git", MIRROR, "--ref", "HEAD", tree])
    assert vnm_actions.stock_missing(tree) is None
    drivers = [Ours(""), Stock("")]
    base: dict[str, list[float]] = {k: [] for k in (vnm_actions.PYTHON, vnm_actions.RUBY,
                                                    vnm_actions.WALL, vnm_actions.INNER)}
    with installed_lab(len(HOSTS), mesh=HOSTS) as lab:
        stock_lab.install(lab, os.path.join(lab.workdir, "frontend", "var", "lib", "one",
                                            "remotes"), tree)
        times = vnm_actions.measure(lab, drivers, 1, base)  # raises on a wrong state
    for driver in drivers:
        for action in ACTIONS:
            [timed] = times[driver.name][action]
            assert 0 < timed.inner < timed.wall, (driver.name, action, timed)
    assert all(len(v) == 1 and v[0] > 0 for v in base.values())
    assert drivers[0].noop_logs == [0] and drivers[1].noop_logs[0] > 0  # stock logs every command


def test_a_missing_stock_side_is_named(tmp_path):
    assert "no --stock DIR" in (vnm_actions.stock_missing(None) or "")
    wanted = "not a stock remotes tree" if shutil.which("ruby") else "ruby not found"
    assert wanted in (vnm_actions.stock_missing(str(tmp_path)) or "")
