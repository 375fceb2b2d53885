import os

import pytest

from onemetal import config
from onemetal.errors import ConfigError

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "etc", "onemetal.conf")


def test_shipped_file_documents_exactly_the_defaults():
    with open(SHIPPED, encoding="utf-8") as f:
        assert config.parse(f.read()) == config.Config()


def test_missing_file_means_defaults(tmp_path):
    assert config.load(str(tmp_path / "absent.conf")) == config.Config()


def test_values_are_read():
    cfg = config.parse('[ssh]\nuser = "root"\nport = 2222\n[core]\nlock_timeout = 5\n')
    assert (cfg.ssh.user, cfg.ssh.port, cfg.core.lock_timeout) == ("root", 2222, 5.0)


@pytest.mark.parametrize("text,field", [
    ('[ssh]\nusr = "root"\n', "ssh.usr"),
    ('[ssh]\nport = "22"\n', "ssh.port"),
    ('[sshh]\n', "[sshh]"),
    ('[ssh\n', "onemetal.conf"),
])
def test_bad_files_name_the_key(text, field):
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    assert field in str(info.value)
