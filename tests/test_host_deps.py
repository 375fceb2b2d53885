"""Host dependencies: every third-party import a host can reach is declared in onemetal.deps.

The walk reads source files (ast), so it does not depend on what happens to be
installed on this machine: a module a host imports but the table lacks fails
here, not on a customer's host.
"""

from __future__ import annotations

import ast
import io
import os
import re
import sys

from onemetal import deps, hostcall

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CORE = os.path.join(REPO, "drivers")


def _module_file(root: str, module: str) -> str | None:
    base = os.path.join(root, *module.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(tree: ast.AST) -> list[str]:
    """Every module an import statement names, anywhere in the file (function bodies too),
    except under `if TYPE_CHECKING:`, which never runs."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def walked_modules(root: str, package: str, starts: list[str]) -> set[str]:
    """The modules of `package` the walk from `starts` reaches."""
    seen: set[str] = set()
    third_party_imports(root, package, starts, seen=seen)
    return seen


def third_party_imports(root: str, package: str, starts: list[str],
                        scripts: list[str] = (), seen: set[str] | None = None) -> dict[str, set[str]]:
    """Third-party top-level module -> the modules of `package` (under `root`) importing it,
    following `package`'s own imports from `starts` and from the Python `scripts`."""
    seen = set() if seen is None else seen
    found: dict[str, set[str]] = {}
    queue: list[tuple[str, str]] = []   # (importing module, source file)
    for path in scripts:
        queue.append((os.path.relpath(path, REPO), path))

    def want(name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            module = ".".join(parts[:i])
            path = _module_file(root, module)
            if path and module not in seen:
                seen.add(module)
                queue.append((module, path))

    for start in starts:
        want(start)
    while queue:
        module, path = queue.pop()
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for name in _imports(tree):
            top = name.partition(".")[0]
            if top == package:
                want(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(module)
    return found


def _python_scripts(top: str) -> list[str]:
    scripts = []
    for base, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != "lib"]  # the core itself is walked by module
        for name in files:
            path = os.path.join(base, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                if re.match(rb"#!\S*python3", f.readline()):
                    scripts.append(path)
    return sorted(scripts)


def host_entry_points() -> tuple[list[str], list[str]]:
    """Modules of every hostcall entry, and every Python script of remotes/ (what oned runs on hosts).
    hooks/ run on the frontend, under the interpreter onemetal is installed in."""
    modules = ["onemetal.hostcall"] + [target.partition(":")[0] for target in hostcall.ENTRIES.values()]
    return modules, _python_scripts(os.path.join(REPO, "remotes"))


def test_every_host_import_is_a_declared_debian_package():
    modules, scripts = host_entry_points()
    assert scripts, "no Python script found under remotes/"
    found = third_party_imports(CORE, "onemetal", modules, scripts)
    undeclared = {m: sorted(users) for m, users in found.items() if m not in deps.HOST_MODULES}
    assert not undeclared, f"host modules import packages onemetal.deps does not declare: {undeclared}"
    assert "onemetal.nat.apply" in walked_modules(CORE, "onemetal", modules)  # the walk reaches the NAT
    # hosts parse payloads with expat (opennebula/payload.py); lxml only reads and rewrites the
    # KVM driver's domain XML
    assert "onemetal.vmm.domain_xml" in found.get("lxml", ())
    assert all(m.startswith("onemetal.vmm.") for m in found["lxml"]), sorted(found["lxml"])


def test_the_walk_catches_an_undeclared_import(tmp_path):
    pkg = tmp_path / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "entry.py").write_text("from fakepkg.sub import helper\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "helper.py").write_text(
        "import json\nTYPE_CHECKING = False\nif TYPE_CHECKING:\n    import typing_only_pkg\n"
        "def later():\n    import yaml.constructor\n")
    found = third_party_imports(str(tmp_path), "fakepkg", ["fakepkg.entry"])
    assert found == {"yaml": {"fakepkg.sub.helper"}}
    assert "yaml" not in deps.HOST_MODULES  # so the check above would name it


def test_a_missing_module_on_a_host_is_one_line_naming_the_package(monkeypatch, tmp_path):
    # An entry whose module imports a declared package this host lacks (as nat-apply did netaddr).
    (tmp_path / "om_fake_entry.py").write_text("import fakedep\n\ndef entry(args, stdin):\n    return ''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(hostcall.ENTRIES, "fake-apply", "om_fake_entry:entry")
    monkeypatch.setitem(deps.HOST_MODULES, "fakedep", "python3-fakedep")
    monkeypatch.setitem(sys.modules, "fakedep", None)  # import fakedep now raises ModuleNotFoundError
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    code = hostcall.main(["fake-apply"], io.StringIO("{}"))
    assert code == 1
    assert err.getvalue().splitlines()[0] == (
        "ERROR: fake-apply: python module fakedep missing: install the Debian package python3-fakedep")
    assert "ModuleNotFoundError" not in err.getvalue()


def test_readme_lists_exactly_the_declared_host_packages():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    line = next((l for l in readme.splitlines() if l.startswith("Host packages:")), None)
    assert line, "README.md has no 'Host packages:' line"
    assert sorted(re.findall(r"`([a-z0-9.+-]+)`", line)) == deps.host_packages()


def test_ci_install_takes_its_packages_from_the_table():
    with open(os.path.join(REPO, ".ci", "install"), encoding="utf-8") as f:
        script = f.read()
    assert "deps.py apt host lab build" in script
    for package in deps.host_packages():
        assert not re.search(rf"^\s*{re.escape(package)}\b", script, re.M), \
            f"{package} is listed by hand in .ci/install"
