"""onemetal.conf's TOML subset reads as tomllib reads it, and everything else is left to tomllib."""

from __future__ import annotations

import os
import random
import tomllib

import pytest

from onemetal import config, conftoml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def test_the_shipped_onemetal_conf_is_in_the_subset_and_reads_as_tomllib_reads_it():
    with open(os.path.join(REPO, "etc", "onemetal.conf"), encoding="utf-8") as f:
        text = f.read()
    assert conftoml.loads(text) is not None
    assert conftoml.loads(text) == tomllib.loads(text)


@pytest.mark.parametrize("text", [
    "", "# only a comment\n\n", "[core]\r\nlock_timeout = 5.5\r\n", "[ net ]\nbfd=false # off\n",
    'k = "a b é"\n', "n = -0\nm = +7\nf = -0.25\n", 'a = [ "x", 1, true, ]\nb = []\nc = [ ]\n',
    '[nat]\neip_groups = ["1", "ops,dev", "a]b"]\n', "x = 1 #\n", 'k = "a#b" # c\n', "t = true#c\n",
])
def test_the_subset_gives_what_tomllib_gives(text):
    assert conftoml.loads(text) == tomllib.loads(text)


@pytest.mark.parametrize("text", [
    "k = 'literal'", 'k = "esc\\"q"', 'k = """m"""', "k = 01", "k = 1e3", "k = 1_000",
    "k = 1.", "k = inf", "a.b = 1", "[a.b]", "[[a]]", "k = {x = 1}", "k = [1,\n2]", "k = [,]",
    "[a]\n[a]", "k = 1\nk = 2", "k =", "= 1", "k = 1 2", "k = 1979-05-27", "k = \"a\x01\"", "k = 1 # \x01",
    "k = \"x\"\rj = 1",
])
def test_anything_else_is_left_to_tomllib(text):
    assert conftoml.loads(text) is None


def test_random_lines_of_both_kinds_never_disagree_with_tomllib():
    atoms = ["[core]", "[ssh]", "[a-b]", "[a.b]", "k = 1", "k2 = -3", "f = 2.50", "b = true",
             's = "v"', 's2 = "a#b"', 'arr = ["x", 2]', "arr2 = [1,", "# c", "", "  ", "x = 0x1f",
             "y = 'lit'", "z = 007", "w = [ ]", "k = 1 # note", "[core]  # again", 'q = "a\\"b"',
             "n = -0", "p = +1.5", "a3 = [ 1 , 2 ]", "a4 = [1 2]", "e=1", "[ nat ]", "m = 1 2",
             's3 = "x" y', 'a5 = ["a",]', "z2 = 00", "f2 = 1.", "f3 = .5", "t = tru", "t2 = true false",
             "\tk3 = 1", "k4 = 1\t# tab", 's4 = "\x7f"', "k5 = 1 # \x7f", "k6 = 1\r", "[x]]", "k7 = [[1]]"]
    rng = random.Random(11)
    agreed = 0
    for _ in range(3000):
        text = "\n".join(rng.choice(atoms) for _ in range(rng.randint(0, 6)))
        fast = conftoml.loads(text)
        try:
            slow = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            slow = None
        assert fast is None or fast == slow, text
        agreed += fast is not None and fast == slow
    assert agreed > 300  # the subset does read files, not only leave them to tomllib


def test_config_errors_outside_the_subset_still_come_from_tomllib():
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.parse("[core]\n[core]\n")
    assert config.parse("[net]\nbridge = 'br-x'\n").net.bridge == "br-x"  # literal string: tomllib
    assert config.parse('[net]\nbridge = "br-y"\n').net.bridge == "br-y"
