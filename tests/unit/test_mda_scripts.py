"""The checks a user's Sieve script passes before ManageSieve or the account page stores it."""

import pytest

from appliance.mda import scripts


@pytest.mark.parametrize("raw", [b"", "", b"\xff\xfe", "tab\there", "line\r\nbreak", "para\u2029graph",
                                 "n" * (scripts.MAX_NAME_LENGTH + 1)])
def test_names_rfc_5804_does_not_allow_are_refused(raw):
    with pytest.raises(scripts.BadName):
        scripts.checked_name(raw)


@pytest.mark.parametrize("raw, name", [(b"office", "office"), ("Libur Lebaran \u262a", "Libur Lebaran \u262a"),
                                       (" spaced ", " spaced "), ("n" * scripts.MAX_NAME_LENGTH, "n" * 256)])
def test_names_are_kept_as_given(raw, name):
    assert scripts.checked_name(raw) == name


def test_the_size_limit_counts_utf8_octets_and_is_inclusive():
    script = "# \u00e9\r\nkeep;"        # 11 octets, 10 characters
    text, commands = scripts.checked_script(script, max_size=11)
    assert text == script and [c.name for c in commands] == ["keep"]
    with pytest.raises(scripts.TooBig) as e:
        scripts.checked_script(script.encode(), max_size=10)
    assert (e.value.size, e.value.limit) == (11, 10)


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(scripts.NotUtf8):
        scripts.checked_script(b"# \xff\r\nkeep;", max_size=100)


def test_a_script_that_does_not_parse_is_refused_with_its_line_and_reason():
    with pytest.raises(scripts.Invalid) as e:
        scripts.checked_script('require "fileinto";\nif true {\n  fileinto "A"\n}\n', max_size=1000)
    assert e.value.line == 4 and e.value.reason == "expected ';', found '}'"
