"""Hostile input never breaks the filters: the Sieve parser only ever raises SieveError, and
the built-in virus checks and the spam heuristics take any bytes."""

from hypothesis import given, settings, strategies as st

from appliance.mda import sieve
from appliance.mda.spam import heuristics
from appliance.mda.virus import VirusFilter
from tests.mda_helpers import Counting, incoming

SIEVE_BITS = ['require "fileinto";', "if", "elsif", "else", "{", "}", "(", ")", "[", "]", ",", ";", "header",
              "address", ":is", ":contains", ":matches", ":days", '"x"', "text:\n", "\n.\n", "1K", "not", "allof",
              "anyof", "fileinto", "keep", "discard", "stop", "#c\n", "/*", "*/", " ", "\n", '"', "\\"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SIEVE_BITS), max_size=40).map("".join) | st.text(max_size=200))
def test_sieve_parse_raises_only_sieve_errors(text):
    try:
        commands = sieve.parse(text)
    except sieve.SieveError as e:
        assert e.line >= 1 and e.reason
        return
    env = sieve.Env(header=lambda name: ["x"], addresses=lambda name: ["x@y.test"], envelope_from="a@b.test",
                    envelope_to="c@d.test", size=10)
    sieve.run(commands, env)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_virus_checks_and_heuristics_take_any_bytes(body):
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/zip\r\n" \
          b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"\r\n--b--\r\n"
    f = VirusFilter(Counting())
    for message in (raw, body):
        msg = incoming(message)
        check = f.check(msg)
        check.check_body()
        check.close()
        heuristics(msg)
