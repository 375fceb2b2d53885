"""`install --apply-oned-conf` names onemetal in oned.conf's TM_MAD/DATASTORE_MAD driver lists."""

import json
import os
import re
import subprocess

import pytest
from click.testing import CliRunner

from onemetal import install
from onemetal.cli.onemetal import main

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
with open(os.path.join(REPO, "tests", "data", "oned_conf_default.conf"), encoding="utf-8") as _f:
    DEFAULT = _f.read()  # OpenNebula's own text: multi-line sections, comments, TM_MAD_CONF entries


def layout(tmp_path) -> install.Layout:
    return install.Layout(prefix=str(tmp_path / "var"), etc=str(tmp_path / "etc"), source=REPO,
                          systemd=str(tmp_path / "systemd"))


def oned(tmp_path, text: str):
    (tmp_path / "etc").mkdir(exist_ok=True)
    path = tmp_path / "etc" / "oned.conf"
    path.write_text(text)
    return path


def run_install(tmp_path, dry_run=False) -> list[str]:
    out: list[str] = []
    install.install(layout(tmp_path), dry_run=dry_run, apply_oned_conf=True, out=out)
    return out


def run_uninstall(tmp_path) -> list[str]:
    out: list[str] = []
    install.uninstall(layout(tmp_path), dry_run=False, out=out)
    return out


def arguments(text: str, section: str) -> list[str]:
    start = re.search(rf"^{section} = \[", text, re.M).end()
    return re.compile(r'^\s*ARGUMENTS\s*=\s*"([^"]*)"', re.M).search(text, start).group(1).split()


def option(text: str, section: str, flag: str) -> list[str]:
    args = arguments(text, section)
    return args[args.index(flag) + 1].split(",")


# The option tables of OpenNebula's src/tm_mad/one_tm.rb and src/datastore_mad/one_datastore.rb,
# and how they turn a list into driver names: what oned's MADs make of the edited ARGUMENTS.
GETOPT = """
require 'getoptlong'
lists = ENV['SECTION'] == 'TM_MAD' ? [['--tm-types', '-d']] :
        [['--ds-types', '-d'], ['--system-ds-types', '-s']]
opts = GetoptLong.new(['--threads', '-t', GetoptLong::OPTIONAL_ARGUMENT],
                      *lists.map { |l, s| [l, s, GetoptLong::OPTIONAL_ARGUMENT] },
                      ['--timeout', '-w', GetoptLong::OPTIONAL_ARGUMENT])
opts.each { |o, arg| puts "#{o} #{arg.split(',').map { |a| a.strip }.join(' ')}" if o.end_with?('types') }
"""


def mad_lists(text: str, section: str) -> dict[str, list[str]]:
    proc = subprocess.run(["ruby", "-e", GETOPT, "--", *arguments(text, section)], capture_output=True,
                          text=True, timeout=30, env={"SECTION": section, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()}


def test_install_appends_onemetal_to_each_list_and_nothing_else(tmp_path):
    path = oned(tmp_path, DEFAULT)
    out = run_install(tmp_path)
    text = path.read_text()
    for section, flag in (("TM_MAD", "-d"), ("DATASTORE_MAD", "-d"), ("DATASTORE_MAD", "-s")):
        assert option(text, section, flag) == option(DEFAULT, section, flag) + ["onemetal"]
        assert f"~ oned.conf {section} {flag}: add onemetal" in out
    before_block = text[:text.index(install.BEGIN)].rstrip("\n") + "\n"
    changed = [(a, b) for a, b in zip(DEFAULT.splitlines(), before_block.splitlines()) if a != b]
    assert len(DEFAULT.splitlines()) == len(before_block.splitlines())
    assert [b for _, b in changed] == [
        '    ARGUMENTS = "-t 15 -d dummy,lvm,shared,fs_lvm,fs_lvm_ssh,qcow2,ssh,local,ceph,dev,'
        'iscsi_libvirt,netapp,purefa,onemetal"',
        '    ARGUMENTS  = "-t 15 -d dummy,fs,lvm,ceph,dev,iscsi_libvirt,restic,rsync,netapp,purefa,'
        'virtiofs,interactive,onemetal -s dummy,lvm,shared,ssh,local,ceph,fs_lvm,fs_lvm_ssh,qcow2,'
        'netapp,purefa,onemetal"']
    assert 'NAME = "onemetal"' in text[text.index(install.BEGIN):]


def test_install_is_idempotent_and_uninstall_restores_the_file_byte_for_byte(tmp_path):
    path = oned(tmp_path, DEFAULT)
    run_install(tmp_path)
    once = path.read_bytes()
    out = run_install(tmp_path)
    assert path.read_bytes() == once
    assert not [line for line in out if ": add onemetal" in line]
    out = run_uninstall(tmp_path)
    assert "~ oned.conf DATASTORE_MAD -s: remove onemetal" in out
    assert path.read_text() == DEFAULT


def test_dry_run_shows_the_list_edits_and_writes_nothing(tmp_path):
    path = oned(tmp_path, DEFAULT)
    out = run_install(tmp_path, dry_run=True)
    assert [line for line in out if ": add onemetal" in line] == [
        "~ oned.conf TM_MAD -d: add onemetal", "~ oned.conf DATASTORE_MAD -d: add onemetal",
        "~ oned.conf DATASTORE_MAD -s: add onemetal"]
    assert path.read_text() == DEFAULT
    assert not (tmp_path / "var").exists()


def test_a_name_the_operator_listed_is_kept_by_uninstall(tmp_path):
    mine = DEFAULT.replace("-d dummy,lvm,shared,", "-d dummy,onemetal,lvm,shared,")
    assert mine != DEFAULT
    path = oned(tmp_path, mine)
    out = run_install(tmp_path)
    assert "~ oned.conf TM_MAD -d: add onemetal" not in out
    assert option(path.read_text(), "TM_MAD", "-d").count("onemetal") == 1
    manifest = json.loads((tmp_path / "var" / install.MANIFEST).read_text())
    assert manifest["oned_lists"] == ["DATASTORE_MAD -d", "DATASTORE_MAD -s"]
    run_install(tmp_path)  # a second install still knows which lists it extended
    run_uninstall(tmp_path)
    assert path.read_text() == mine


def test_uninstall_takes_out_the_name_install_added_after_the_operator_extended_the_list(tmp_path):
    path = oned(tmp_path, DEFAULT)
    run_install(tmp_path)
    path.write_text(path.read_text().replace("purefa,onemetal\"", "purefa,onemetal,mine\""))
    run_uninstall(tmp_path)
    assert option(path.read_text(), "TM_MAD", "-d") == option(DEFAULT, "TM_MAD", "-d") + ["mine"]
    assert "onemetal" not in path.read_text()


MALFORMED = {
    "no TM_MAD": (DEFAULT.replace("\nTM_MAD = [", "\n#TM_MAD = ["), "TM_MAD section not found"),
    "two TM_MAD": (DEFAULT + '\nTM_MAD = [ EXECUTABLE = "one_tm", ARGUMENTS = "-d x" ]\n',
                   "TM_MAD section found 2 times"),
    "no -d": (DEFAULT.replace('"-t 15 -d dummy,lvm,', '"-t 15 dummy,lvm,'),
              "TM_MAD ARGUMENTS has no -d list"),
    "empty -d": (DEFAULT.replace("-d dummy,fs,lvm,ceph,dev,iscsi_libvirt,restic,rsync,netapp,purefa,"
                                 "virtiofs,interactive ", "-d "),
                 "DATASTORE_MAD ARGUMENTS has an empty -d list"),
    "no -s": (DEFAULT.replace(" -s dummy,lvm,shared,", " dummy,lvm,shared,"),
              "DATASTORE_MAD ARGUMENTS has no -s list"),
    "long option": (DEFAULT.replace('"-t 15 -d dummy,lvm,', '"-t 15 --tm-types=dummy,lvm,'),
                    "TM_MAD ARGUMENTS spells -d as '--tm-types="),
    "glued": (DEFAULT.replace(" -s dummy,lvm,", " -sdummy,lvm,"), "DATASTORE_MAD ARGUMENTS spells -s"),
    "unquoted": (re.sub(r'(ARGUMENTS = )"(-t 15 -d dummy,lvm.*)"', r"\1\2", DEFAULT),
                 "TM_MAD section needs exactly one quoted ARGUMENTS"),
    "unclosed": (DEFAULT[:DEFAULT.index("DATASTORE_MAD = [")] + "DATASTORE_MAD = [ ARGUMENTS = \"-d a\"\n",
                 "DATASTORE_MAD section has no closing"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_section_it_cannot_edit_safely_is_refused_with_nothing_written(tmp_path, case):
    text, message = MALFORMED[case]
    assert text != DEFAULT
    path = oned(tmp_path, text)
    with pytest.raises(install.InstallError, match=re.escape(message)):
        run_install(tmp_path)
    assert path.read_text() == text
    assert sorted(os.listdir(tmp_path)) == ["etc"] and os.listdir(tmp_path / "etc") == ["oned.conf"]


def test_the_cli_names_the_section_and_exits_non_zero(tmp_path):
    oned(tmp_path, 'LOG = [ SYSTEM = "file" ]\n')
    result = CliRunner().invoke(main, ["install", "--apply-oned-conf", "--prefix", str(tmp_path / "var"),
                                       "--etc", str(tmp_path / "etc"),
                                       "--systemd-dir", str(tmp_path / "systemd")])
    assert result.exit_code == 1
    assert "oned.conf: TM_MAD section not found" in result.output
    assert not (tmp_path / "var").exists()


def test_a_forged_record_in_the_manifest_is_refused(tmp_path):
    oned(tmp_path, DEFAULT)
    run_install(tmp_path)
    manifest = tmp_path / "var" / install.MANIFEST
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(data, oned_lists=["VM_MAD -d"])))
    with pytest.raises(install.InstallError, match="oned_lists .* refused"):
        run_uninstall(tmp_path)


def test_comments_inside_a_section_are_not_read_as_its_arguments(tmp_path):
    commented = DEFAULT.replace('    EXECUTABLE = "one_tm",\n', '    EXECUTABLE = "one_tm",\n'
                                '    # was: ARGUMENTS = "-t 4 -d dummy" (an odd " and a ] here)\n')
    assert commented != DEFAULT
    path = oned(tmp_path, commented)
    run_install(tmp_path)
    assert option(path.read_text(), "TM_MAD", "-d")[-1] == "onemetal"
    assert '# was: ARGUMENTS = "-t 4 -d dummy" (an odd " and a ] here)\n' in path.read_text()
    run_uninstall(tmp_path)
    assert path.read_text() == commented


def test_uninstall_dry_run_shows_the_removals_and_a_broken_section_stops_it_whole(tmp_path):
    path = oned(tmp_path, DEFAULT)
    run_install(tmp_path)
    out: list[str] = []
    install.uninstall(layout(tmp_path), dry_run=True, out=out)
    assert "~ oned.conf TM_MAD -d: remove onemetal" in out
    broken = path.read_text().replace(" -s dummy,", " --system-ds-types=dummy,")
    path.write_text(broken)
    files = sorted(p for p in (tmp_path / "var").rglob("*"))
    with pytest.raises(install.InstallError, match="DATASTORE_MAD ARGUMENTS spells -s"):
        run_uninstall(tmp_path)
    assert path.read_text() == broken
    assert sorted(p for p in (tmp_path / "var").rglob("*")) == files


def test_uninstall_goes_on_when_oned_conf_was_removed(tmp_path):
    path = oned(tmp_path, DEFAULT)
    run_install(tmp_path)
    path.unlink()
    run_uninstall(tmp_path)
    assert not (tmp_path / "var" / install.MANIFEST).exists() and not path.exists()


def test_oned_s_mads_read_onemetal_in_every_list_and_the_stock_names_unchanged(tmp_path):
    path = oned(tmp_path, DEFAULT)
    run_install(tmp_path)
    for section, lists in (("TM_MAD", ["--tm-types"]),
                           ("DATASTORE_MAD", ["--ds-types", "--system-ds-types"])):
        before, after = mad_lists(DEFAULT, section), mad_lists(path.read_text(), section)
        assert sorted(before) == sorted(after) == sorted(lists)
        assert all(after[name] == before[name] + ["onemetal"] for name in lists)
