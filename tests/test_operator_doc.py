"""docs/operator.md stays true to the code: every `onemetal`/`onenat` command it writes exists with
the options it gives, every onemetal.conf key it names is in etc/onemetal.conf, every oned.conf
fragment and hook template it names is shipped, and the README links to it."""

from __future__ import annotations

import os
import re
import tomllib

import click
import pytest

from onemetal.cli import onemetal as onemetal_cli, onenat as onenat_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ("core", "ssh", "net", "nat", "storage", "vmm")
TOOLS = {"onemetal": onemetal_cli.main, "onenat": onenat_cli.main}
# A command as the guide writes it: the tool, then words and options up to the end of a code
# span, a table cell, a comment or the line.
COMMAND = re.compile(r"(?:^|[`(]|\$ )(onemetal|onenat)((?: +[^ `|#()\n]+)+)", re.M)


def _read(*parts: str) -> str:
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


def _commands(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for match in COMMAND.finditer(text):
        words = match.group(2).split()
        if words and re.fullmatch(r"[a-z][a-z-]*", words[0]):
            out.append((match.group(1), words))
    return out


def _resolve(tool: str, words: list[str]) -> tuple[click.Command, list[str]]:
    """The deepest command `words` name, and the words after it."""
    command: click.Command = TOOLS[tool]
    while words and isinstance(command, click.Group) and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def _option_names(command: click.Command) -> set[str]:
    ctx = click.Context(command)
    return {name for param in command.get_params(ctx) for name in param.opts + param.secondary_opts}


def test_guide_commands_exist_with_their_options() -> None:
    found = _commands(_read("docs", "operator.md"))
    assert len(found) > 20, "the guide's commands were not found: the pattern is broken"
    for tool, words in found:
        command, rest = _resolve(tool, words)
        where = f"{tool} {' '.join(words)}"
        if command is TOOLS[tool]:
            continue  # prose ("onemetal adds drivers ..."), not a command
        assert not isinstance(command, click.Group) or command.invoke_without_command, \
            f"{where}: names a group, not a command"
        for word in rest:
            if word.startswith("-"):
                assert word.split("=")[0] in _option_names(command), f"{where}: no option {word}"


def test_guide_config_keys_exist() -> None:
    conf = tomllib.loads(_read("etc", "onemetal.conf"))
    text = _read("docs", "operator.md")
    dotted = set(re.findall(rf"`((?:{'|'.join(SECTIONS)})\.[a-z_]+)", text))
    assert dotted, "no section.key found in the guide"
    for key in dotted:
        section, name = key.split(".")
        assert name in conf[section], f"{key} is not in etc/onemetal.conf"
    # `key = value` in the paragraph after "`[section]`", and the keys of a toml block after one
    prose = re.findall(r"`\[(\w+)\]`((?:.+\n)+)", text)
    blocks = re.findall(r"`\[(\w+)\]`[^\n]*\n+```toml\n(.*?)```", text, re.S)
    assert prose and blocks, "no [section] settings found in the guide"
    for section, body in prose:
        for name in re.findall(r"`([a-z_]+) = ", body):
            assert name in conf[section], f"[{section}] {name} is not in etc/onemetal.conf"
    for section, body in blocks:
        for name in tomllib.loads(body):
            assert name in conf[section], f"[{section}] {name} is not in etc/onemetal.conf"


def _shipped_paths(text: str) -> set[str]:
    """The checkout's paths the guide names: etc/... (not /etc/...) and the fragments "(vnm.conf)"."""
    paths = {p.rstrip("/.") for p in re.findall(r"(?<![/\w])etc/[\w./*-]+", text)}
    paths |= {f"etc/oned.d/{name}" for name in re.findall(r"\((\w+\.conf)\)", text)}
    return {p for p in paths if "*" not in p}


def test_guide_names_shipped_files() -> None:
    paths = _shipped_paths(_read("docs", "operator.md"))
    assert {"etc/sudoers.d/onemetal", "etc/oned.d/vnm.conf"} <= paths
    for path in paths:
        assert os.path.exists(os.path.join(REPO, path)), f"the guide names {path}, not shipped"


def test_guide_hook_loop_registers_every_template() -> None:
    text = _read("docs", "operator.md")
    loop = re.search(r"for hook in ([^;]+); do onehook create \$hook\.hook", text)
    assert loop, "the guide's onehook loop is gone"
    named = set(loop.group(1).replace("\\", " ").split())
    shipped = {name[:-len(".hook")] for name in os.listdir(os.path.join(REPO, "etc", "hooks"))}
    assert named == shipped


def test_readme_links_the_guide() -> None:
    assert "(docs/operator.md)" in _read("README.md")
