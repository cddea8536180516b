"""Config loading: defaults, partial files, errors that name the key and line, the sample."""

import tomllib

import pytest

from appliance import config
from appliance.config import Config, ConfigError


def write(tmp_path, text):
    path = tmp_path / "kotakpos.toml"
    path.write_text(text)
    return path


def test_missing_file_means_defaults(tmp_path):
    assert config.load(tmp_path / "absent.toml") == Config()


def test_a_file_holds_only_what_it_changes(tmp_path):
    cfg = config.load(write(tmp_path, '[server]\nport_offset = 10000\n\n[mta.routes]\n"example.net" = "127.0.0.1:2525"\n'))
    assert cfg.server.port_offset == 10000
    assert cfg.mta.routes == {"example.net": "127.0.0.1:2525"}
    assert cfg.ports.imap == 143 and cfg.limits == Config().limits


@pytest.mark.parametrize("text, where", [
    ('[server]\nlisten = ["::1"]\nport_ofset = 1\n', ":3: unknown setting 'server.port_ofset'"),
    ('[auth]\nallow_plaintext = "yes"\n', ":2: 'auth.allow_plaintext' must be true or false"),
    ('[limits]\n\n\nmessage_size = 1.5\n', ":4: 'limits.message_size' must be an integer"),
    ('[server]\nlisten = [1, 2]\n', ":2: 'server.listen' must be a list of strings"),
    ('[nosuch]\nx = 1\n', ":1: unknown setting 'nosuch'"),
    ('[server\n', "kotakpos.toml"),
])
def test_errors_name_the_key_and_the_line(tmp_path, text, where):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, text))
    assert where in str(e.value)


def test_sample_lists_every_setting_and_parses_to_the_defaults(tmp_path):
    text = config.sample_text()
    assert tomllib.loads(text)  # valid TOML
    import dataclasses
    for section in dataclasses.fields(Config):
        assert f"[{section.name}]" in text
        for f in dataclasses.fields(section.default_factory()):
            assert f"# {f.name} =" in text or f"# [{section.name}.{f.name}]" in text
    assert config.load(write(tmp_path, text)) == Config()


def test_an_integer_is_accepted_for_a_float_setting(tmp_path):
    assert config.load(write(tmp_path, "[server]\nshutdown_grace = 3\n")).server.shutdown_grace == 3.0
