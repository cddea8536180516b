"""appliance.smtp.parse: command lines in, command objects out."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.smtp import replies as R
from appliance.smtp.parse import (
    Auth,
    Bdat,
    Data,
    Ehlo,
    Expn,
    Helo,
    Help,
    InvalidCommand,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    Starttls,
    Unknown,
    Vrfy,
    parse_command,
    parse_mailbox,
    xtext_decode,
)


def invalid(line: bytes) -> InvalidCommand:
    cmd = parse_command(line)
    assert isinstance(cmd, InvalidCommand), cmd
    return cmd


# --- verbs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        (b"EHLO client.example\r\n", Ehlo("client.example")),
        (b"ehlo [192.0.2.1]\r\n", Ehlo("[192.0.2.1]")),
        (b"HELO client\r\n", Helo("client")),
        (b"DATA\r\n", Data()),
        (b"RSET\r\n", Rset()),
        (b"NOOP\r\n", Noop()),
        (b"NOOP anything at all\r\n", Noop()),
        (b"QUIT\r\n", Quit()),
        (b"quit  \r\n", Quit()),
        (b"HELP\r\n", Help("")),
        (b"HELP mail\r\n", Help("mail")),
        (b"VRFY alice\r\n", Vrfy("alice")),
        (b"EXPN staff@example.com\r\n", Expn("staff@example.com")),
        (b"STARTTLS\r\n", Starttls()),
        (b"BDAT 100\r\n", Bdat(100, last=False)),
        (b"BDAT 0 LAST\r\n", Bdat(0, last=True)),
        (b"bdat 7 last\r\n", Bdat(7, last=True)),
        (b"AUTH PLAIN\r\n", Auth("PLAIN", None)),
        (b"AUTH plain AGFsaWNlAHNlY3JldA==\r\n", Auth("PLAIN", "AGFsaWNlAHNlY3JldA==")),
        (b"AUTH LOGIN =\r\n", Auth("LOGIN", "")),
        (b"DATA\n", Data()),  # a bare-LF command line still parses; the session decides
    ],
)
def test_commands(line, expected):
    assert parse_command(line) == expected


def test_unknown_verb_is_not_invalid():
    assert parse_command(b"TURN\r\n") == Unknown("TURN")
    assert parse_command(b"\r\n") == Unknown("")


def test_unknown_verb_with_binary_is_printable():
    cmd = parse_command(b"\xff\xfeX hello\r\n")
    assert isinstance(cmd, Unknown) and cmd.verb.isprintable() and cmd.verb.isascii()


@pytest.mark.parametrize(
    "line, reply",
    [
        (b"EHLO\r\n", R.R501_EHLO_SYNTAX),
        (b"HELO\r\n", R.R501_HELO_SYNTAX),
        (b"EHLO two words\r\n", R.R501_EHLO_SYNTAX),
        (b"DATA now\r\n", R.R501_NO_ARGUMENTS),
        (b"RSET x\r\n", R.R501_NO_ARGUMENTS),
        (b"STARTTLS x\r\n", R.R501_NO_ARGUMENTS),
        (b"VRFY\r\n", R.R501_VRFY_SYNTAX),
        (b"EXPN\r\n", R.R501_EXPN_SYNTAX),
        (b"BDAT\r\n", R.R501_BDAT_SYNTAX),
        (b"BDAT -5\r\n", R.R501_BDAT_SYNTAX),
        (b"BDAT 12x\r\n", R.R501_BDAT_SYNTAX),
        (b"BDAT 10 FIRST\r\n", R.R501_BDAT_SYNTAX),
        (b"BDAT 10 LAST more\r\n", R.R501_BDAT_SYNTAX),
        (b"BDAT 99999999999999999999999\r\n", R.R501_BDAT_SYNTAX),
        (b"AUTH\r\n", R.R501_AUTH_SYNTAX),
        (b"AUTH PLAIN a b\r\n", R.R501_AUTH_SYNTAX),
        (b"MAIL FROM:<a\x00@example.com>\r\n", R.R500_BAD_BYTES),
        (b"MAIL FROM:<a@example.com>\r\r\n", R.R500_BAD_BYTES),
        (b"RCPT TO:<a@example.com>\rDATA\r\n", R.R500_BAD_BYTES),
    ],
)
def test_invalid_arguments(line, reply):
    cmd = invalid(line)
    assert cmd.reply == reply


def test_invalid_keeps_the_verb_for_the_state_gate():
    assert invalid(b"MAIL garbage\r\n").verb == "MAIL"
    assert invalid(b"RCPT TO:bob\r\n").verb == "RCPT"


# --- MAIL / RCPT -----------------------------------------------------------------


def test_mail_plain():
    cmd = parse_command(b"MAIL FROM:<Alice@Example.COM>\r\n")
    assert isinstance(cmd, Mail)
    assert cmd.path.address == "Alice@example.com"  # local part case is kept (RFC 5321 §2.4)
    assert not cmd.has_params


def test_mail_null_reverse_path():
    cmd = parse_command(b"MAIL FROM:<>\r\n")
    assert isinstance(cmd, Mail) and cmd.path is None


def test_mail_tolerates_space_after_colon_and_case():
    cmd = parse_command(b"mail from: <a@example.com>\r\n")
    assert isinstance(cmd, Mail) and cmd.path.address == "a@example.com"


@pytest.mark.parametrize(
    "line, reply",
    [
        (b"MAIL a@example.com\r\n", R.R501_MAIL_SYNTAX),
        (b"MAIL FROM:a@example.com\r\n", R.R501_MAIL_SYNTAX),
        (b"MAIL FROM:<a@example.com\r\n", R.R501_MAIL_SYNTAX),
        (b"MAIL FROM:<a@example.com>SIZE=1\r\n", R.R501_MAIL_SYNTAX),
        (b"MAIL FROM:<a>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<postmaster>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<a@b@example.com>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<.a@example.com>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<a..b@example.com>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<a@-example.com>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<a@exa_mple.com>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<a@example..com>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<a@[300.1.1.1]>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<a@[IPv6:zz::1]>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<\xff\xfe@example.com>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<" + b"a" * 65 + b"@example.com>\r\n", R.R501_BAD_SENDER),
        (b"MAIL FROM:<a@" + b"b" * 300 + b".com>\r\n", R.R501_BAD_SENDER),
        (b"RCPT bob@example.com\r\n", R.R501_RCPT_SYNTAX),
        (b"RCPT TO:<>\r\n", R.R501_BAD_RECIPIENT),
        (b"RCPT TO:<bob>\r\n", R.R501_BAD_RECIPIENT),
        (b"RCPT TO:<@a.example:>\r\n", R.R501_BAD_RECIPIENT),
        (b"RCPT TO:<@a.example,b.example:bob@example.com>\r\n", R.R501_BAD_RECIPIENT),
        (b'RCPT TO:<"unterminated@example.com>\r\n', R.R501_RCPT_SYNTAX),
    ],
)
def test_bad_paths(line, reply):
    assert invalid(line).reply == reply


def test_mail_parameters():
    cmd = parse_command(
        b"MAIL FROM:<a@example.com> SIZE=12345 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1 AUTH=a+40example.com\r\n"
    )
    assert isinstance(cmd, Mail) and cmd.has_params
    p = cmd.params
    assert (p.size, p.body, p.smtputf8, p.ret, p.envid, p.auth) == (12345, "8BITMIME", True, "HDRS", "QQ+1", "a@example.com")


def test_mail_binarymime():
    assert parse_command(b"MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n").params.body == "BINARYMIME"


@pytest.mark.parametrize(
    "params, reply",
    [
        (b"FOO=1", R.R555_UNKNOWN_PARAMETER),
        (b"NOTIFY=NEVER", R.R555_UNKNOWN_PARAMETER),  # an RCPT parameter on MAIL
        (b"SIZE=abc", R.R501_BAD_PARAMETER),
        (b"SIZE", R.R501_BAD_PARAMETER),
        (b"SIZE=", R.R501_BAD_PARAMETER),
        (b"SIZE=1 SIZE=2", R.R501_DUPLICATE_PARAMETER),
        (b"BODY=9BIT", R.R501_BAD_PARAMETER),
        (b"SMTPUTF8=yes", R.R501_BAD_PARAMETER),
        (b"RET=SOME", R.R501_BAD_PARAMETER),
        (b"ENVID=a+zz", R.R501_BAD_PARAMETER),
        (b"ENVID=" + b"x" * 101, R.R501_BAD_PARAMETER),
        (b"-BAD=1", R.R501_BAD_PARAMETER),
    ],
)
def test_bad_mail_parameters(params, reply):
    assert invalid(b"MAIL FROM:<a@example.com> " + params + b"\r\n").reply == reply


def test_rcpt_parameters():
    cmd = parse_command(b"RCPT TO:<bob@example.com> NOTIFY=success,delay ORCPT=rfc822;Bob+40example.org\r\n")
    assert isinstance(cmd, Rcpt)
    assert cmd.params.notify == {"SUCCESS", "DELAY"}
    assert cmd.params.orcpt == ("rfc822", "Bob@example.org")


def test_rcpt_orcpt_utf8():
    cmd = parse_command(b"RCPT TO:<bob@example.com> ORCPT=utf-8;j\\x{00F6}rg@example.org\r\n")
    assert cmd.params.orcpt == ("utf-8", "jörg@example.org")


@pytest.mark.parametrize(
    "params, reply",
    [
        (b"NOTIFY=NEVER,SUCCESS", R.R501_BAD_PARAMETER),
        (b"NOTIFY=SOMETIMES", R.R501_BAD_PARAMETER),
        (b"ORCPT=nosemicolon", R.R501_BAD_PARAMETER),
        (b"SIZE=10", R.R555_UNKNOWN_PARAMETER),
    ],
)
def test_bad_rcpt_parameters(params, reply):
    assert invalid(b"RCPT TO:<bob@example.com> " + params + b"\r\n").reply == reply


def test_utf8_address():
    cmd = parse_command("MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n".encode())
    assert isinstance(cmd, Mail) and cmd.path.is_utf8 and cmd.params.smtputf8
    assert not parse_command(b"MAIL FROM:<jorg@example.com>\r\n").path.is_utf8


def test_quoted_local_part_in_simplest_form_is_unquoted():
    path = parse_mailbox('"bob"@example.com')
    assert (path.address, path.quoted) == ("bob@example.com", False)


def test_quoted_local_part_with_space_stays_quoted():
    path = parse_mailbox('"bob smith"@example.com')
    assert path.quoted and path.address == '"bob smith"@example.com'


def test_quoted_gt_does_not_end_the_path():
    cmd = parse_command(b'RCPT TO:<"a>b"@example.com> NOTIFY=NEVER\r\n')
    assert isinstance(cmd, Rcpt) and cmd.path.local == "a>b" and cmd.params.notify == {"NEVER"}


def test_postmaster_without_domain():
    cmd = parse_command(b"RCPT TO:<Postmaster>\r\n")
    assert isinstance(cmd, Rcpt) and cmd.path.domain == "" and cmd.path.address == "Postmaster"


# --- open-relay tricks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "address, trick",
    [
        ("victim%remote.example@local.example", "percent-hack"),
        ("remote.example!victim@local.example", "bang-path"),
        ('"victim@remote.example"@local.example', "quoted-local-part"),
        ('"victim%remote.example"@local.example', "percent-hack"),  # unquoted to its simplest form
        ("@local.example,@relay.example:victim@remote.example", "source-route"),
        ("@local.example:victim@remote.example", "source-route"),
        ("victim@[192.0.2.7]", "ip-literal"),
        ("victim@[IPv6:2001:db8::1]", "ip-literal"),
        ("victim@local.example.", "trailing-dot"),
    ],
)
def test_relay_tricks_are_named(address, trick):
    cmd = parse_command(f"RCPT TO:<{address}>\r\n".encode())
    assert isinstance(cmd, Rcpt), cmd
    assert trick in cmd.path.relay_tricks


@pytest.mark.parametrize("address", ["bob@local.example", "BOB@LOCAL.EXAMPLE", "b.o+b@local.example", '"bob"@local.example'])
def test_ordinary_addresses_have_no_tricks(address):
    assert parse_command(f"RCPT TO:<{address}>\r\n".encode()).path.relay_tricks == frozenset()


def test_domain_case_is_folded_in_address():
    assert parse_mailbox("bob@LOCAL.Example").address == "bob@local.example"


def test_xtext():
    assert xtext_decode("a+2Bb+3Dc") == "a+b=c"
    for bad in ("a+2b", "a+", "a b", "a=b"):
        with pytest.raises(ValueError):
            xtext_decode(bad)


# --- never raises ---------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_command(data):
    cmd = parse_command(data)
    assert hasattr(cmd, "verb")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"MAIL FROM:", b"RCPT TO:", b"BDAT ", b"AUTH ", b"EHLO "]), st.binary(max_size=120))
def test_any_arguments_give_a_command(prefix, data):
    cmd = parse_command(prefix + data)
    assert cmd.verb in {"MAIL", "RCPT", "BDAT", "AUTH", "EHLO", ""}
