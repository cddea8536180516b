"""Config loading: defaults, partial files, errors that name the key and line, the sample."""

import dataclasses
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
    # a number outside its range
    ("[managesieve]\nmax_script_size = 0\n", ":2: 'managesieve.max_script_size' must be from 1 to 16777216, not 0"),
    ("[managesieve]\n\nmax_script_size = 16777217\n", ":3: 'managesieve.max_script_size' must be from 1 to 16777216"),
    ("[managesieve]\nmax_scripts = -1\n", ":2: 'managesieve.max_scripts' must be from 1 to 10000, not -1"),
    ('[managesieve]\nmax_scripts = "50"\n', ":2: 'managesieve.max_scripts' must be an integer"),
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


def uncommented(text: str, *prefixes: str) -> str:
    """The sample as an admin edits it: the lines that start with one of ``prefixes`` uncommented."""
    return "\n".join(line[2:] if line.startswith(tuple(f"# {p}" for p in prefixes)) else line
                     for line in text.splitlines())


def test_uncommenting_any_line_of_the_sample_keeps_it_in_its_table(tmp_path):
    # Every default line at once, the route example too: each must land where it is listed.
    text = uncommented(config.sample_text(), *(f"{f.name} =" for s in dataclasses.fields(Config)
                                              for f in dataclasses.fields(s.default_factory())),
                       "[mta.routes]", '"example.org"')
    text = text.replace('smarthost = ""', 'smarthost = "smtp.isp.example:587"')
    cfg = config.load(write(tmp_path, text))
    assert cfg.mta.smarthost == "smtp.isp.example:587"
    assert cfg.mta.routes == {"example.org": "mx.example.org:25"}
    assert dataclasses.replace(cfg, mta=Config().mta) == Config()


def test_the_smarthost_is_the_smarthost_even_with_a_route_uncommented(tmp_path):
    text = uncommented(config.sample_text(), "[mta.routes]", '"example.org"', "smarthost =")
    cfg = config.load(write(tmp_path, text.replace('smarthost = ""', 'smarthost = "smtp.isp.example:587"')))
    assert cfg.mta.smarthost == "smtp.isp.example:587" and list(cfg.mta.routes) == ["example.org"]


@pytest.mark.parametrize("route", ["mx.example.org", "mx.example.org:", "mx.example.org:smtp", ":25",
                                   "mx.example.org:70000", "::1", "[::1]"])
def test_a_route_without_host_and_port_is_refused_with_key_and_line(tmp_path, route):
    text = f'[mta]\nsmarthost = ""\n\n[mta.routes]\n"good.example" = "10.0.0.1:25"\n"example.org" = "{route}"\n'
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, text))
    assert ":6: 'mta.routes' entry 'example.org' must be \"host:port\"" in str(e.value)


@pytest.mark.parametrize("route", ["mx.example.org:25", "10.0.0.1:2525", "[2001:db8::1]:25"])
def test_a_route_with_host_and_port_is_taken(tmp_path, route):
    cfg = config.load(write(tmp_path, f'[mta.routes]\n"example.org" = "{route}"\n'))
    assert cfg.mta.routes == {"example.org": route}


def test_a_route_line_left_without_its_table_header_is_refused(tmp_path):
    text = uncommented(config.sample_text(), '"example.org"')
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, text))
    line = text.splitlines().index('"example.org" = "mx.example.org:25"') + 1
    assert f":{line}: unknown setting 'mta.example.org'" in str(e.value)


@pytest.mark.parametrize("text, message", [
    ('[server]\nlog_level = "verbose"\n',
     ":2: 'server.log_level' cannot be 'verbose'; allowed: 'debug', 'info', 'warning', 'error'"),
    ('[smtp]\n\nbare_newline = "fix"\n', ":3: 'smtp.bare_newline' cannot be 'fix'; allowed: 'reject', 'normalize'"),
    ('[smtp]\nquota_reply = "soft"\n', "'smtp.quota_reply' cannot be 'soft'"),
    ('[mta]\nsmarthost_tls = "ssl"\n', "'mta.smarthost_tls' cannot be 'ssl'; allowed: 'starttls', 'implicit'"),
    ('[mda]\nvirus_action = "drop"\n', "'mda.virus_action' cannot be 'drop'"),
    ('[mda]\nread_receipts = "always"\n', "'mda.read_receipts' cannot be 'always'"),
    ('[mda]\nfilters = ["virus", "spamassassin"]\n', ":2: 'mda.filters' cannot be 'spamassassin'"),
    ('[web]\nmta_sts_mode = "on"\n', "'web.mta_sts_mode' cannot be 'on'; allowed: 'testing', 'enforce', 'none'"),
])
def test_an_enumerated_setting_outside_its_values_is_refused(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, text))
    assert message in str(e.value)


def test_enumerated_settings_take_each_allowed_value(tmp_path):
    for level in ("debug", "info", "warning", "error"):
        assert config.load(write(tmp_path, f'[server]\nlog_level = "{level}"\n')).server.log_level == level
    assert config.load(write(tmp_path, '[mda]\nfilters = ["greylist", "virus"]\n')).mda.filters == ["greylist", "virus"]


def test_the_managesieve_limits_are_in_the_sample_with_their_range(tmp_path):
    text = config.sample_text()
    section = text[text.index("[managesieve]"):]
    assert "# max_script_size = 1048576" in section and "# max_scripts = 50" in section
    assert "Allowed: from 1 to 16777216." in section
    edited = uncommented(text, "max_script_size", "max_scripts").replace("max_scripts = 50", "max_scripts = 3")
    loaded = config.load(write(tmp_path, edited))
    assert loaded.managesieve.max_scripts == 3 and loaded.managesieve.max_script_size == 1048576
