"""The Sieve subset: parsing (errors with line and reason) and running against one message."""

import pytest

from appliance.mda import sieve
from tests.mda_helpers import incoming, plain, wire


def env(**headers):
    msg = incoming(wire(plain(subject=headers.pop("subject", "hello"), headers=headers)))
    return sieve.Env(header=msg.header, addresses=msg.addresses, envelope_from="bob@remote.test",
                     envelope_to="alice@example.org", size=len(msg.raw))


def run(script: str, **headers) -> sieve.Actions:
    return sieve.run(sieve.parse(script), env(**headers))


def test_empty_script_keeps():
    a = run("")
    assert a.keep and not a.folders and not a.explicit_keep


def test_fileinto_on_header_contains():
    script = 'require "fileinto";\nif header :contains "subject" "invoice" { fileinto "Bills"; stop; }\nkeep;'
    a = run(script, subject="Your INVOICE for May")
    assert a.folders == ["Bills"] and not a.keep and not a.explicit_keep
    b = run(script, subject="lunch?")
    assert b.explicit_keep and not b.folders


def test_address_parts_and_matches_and_elsif():
    script = '''require ["fileinto", "envelope"];
    if address :domain "from" "remote.test" { fileinto "Remote"; }
    elsif envelope :localpart :is "to" "alice" { fileinto "Mine"; }
    else { discard; }
    if header :matches "subject" "re: *" { addflag "\\\\Answered"; }'''
    with pytest.raises(sieve.SieveError):
        run(script)  # addflag needs imap4flags
    script = script.replace('"envelope"]', '"envelope", "imap4flags"]')
    a = run(script, subject="Re: plans")
    assert a.folders == ["Remote"] and a.flags == {"\\Answered"}


def test_anyof_allof_not_exists_size():
    script = '''if allof (exists "x-custom", not size :over 1M, anyof (false, true)) { discard; }'''
    assert run(script, **{"X-Custom": "1"}).discarded
    assert not run(script).discarded


def test_redirect_and_copy():
    a = run('redirect "Boss@Example.org";')
    assert a.redirects == ["boss@example.org"] and not a.keep
    b = run('require "copy";\nredirect :copy "boss@example.org";')
    assert b.redirects == ["boss@example.org"] and b.keep


def test_reject_and_vacation_need_require():
    assert run('require "reject"; reject "no thanks";').reject == "no thanks"
    a = run('require "vacation"; vacation :days 3 :subject "Away" "I am away.";')
    assert a.vacation == {"reason": "I am away.", "days": 3, "subject": "Away"} and a.keep


def test_multiline_text_string():
    a = run('require "vacation";\nvacation text:\nGone fishing.\n..and back Monday\n.\n;')
    assert a.vacation["reason"] == "Gone fishing.\n.and back Monday\n"


@pytest.mark.parametrize("script, line, reason", [
    ('fileinto "X";', 1, "'fileinto' needs require \"fileinto\""),
    ('keep;\nbogus;', 2, "unknown command 'bogus'"),
    ('require "fileinto";\nif header :is "subject" "x" {\n fileinto "A";\n', 3, "missing '}'"),
    ('keep', 1, "unexpected end of script, expected ';'"),
    ('require "notify";', 1, 'unsupported extension "notify"'),
    ('if header "subject" { keep; }', 1, "'header' takes a header list and a key list"),
    ('keep;\nrequire "fileinto";', 2, "'require' must come before other commands"),
    ('else { keep; }', 1, "'else' without 'if'"),
    ('redirect "nobody";', 1, "'nobody' is not an address"),
    ('keep :bogus;', 1, "'keep' takes no :bogus"),
    ('redirect :copy "a@b.test";', 1, ':copy needs require "copy"'),
    ('if size :over 1K :is { keep; }', 1, "'size' takes no :is"),
    ('keep;\n\n"oops', 3, "unterminated string"),
])
def test_invalid_scripts_name_line_and_reason(script, line, reason):
    with pytest.raises(sieve.SieveError) as e:
        sieve.parse(script)
    assert (e.value.line, e.value.reason) == (line, reason)


def test_mailbox_extension_create_and_mailboxexists():
    with pytest.raises(sieve.SieveError, match=':create needs require "mailbox"'):
        sieve.parse('require "fileinto";\nfileinto :create "A";')
    script = sieve.parse('require ["fileinto", "mailbox"];\n'
                         'if mailboxexists ["Bills", "INBOX"] { fileinto "Bills"; }\n'
                         'else { fileinto :create "New/Bills"; }')
    msg_env = env()
    msg_env.mailbox_exists = lambda name: name in ("INBOX",)
    a = sieve.run(script, msg_env)
    assert a.filings == [sieve.Filing("New/Bills", 3, create=True)]
    msg_env.mailbox_exists = lambda name: name in ("INBOX", "Bills")
    assert sieve.run(script, msg_env).filings == [sieve.Filing("Bills", 2)]
    # the fileinto under "if mailboxexists" of its folder never meets a missing folder
    assert sieve.filings(script) == [sieve.Filing("New/Bills", 3, create=True)]
    script = sieve.parse('require ["fileinto", "mailbox"];\n'
                         'if allof (true, mailboxexists "A") { fileinto "A"; fileinto "B"; }\n'
                         'if not mailboxexists "C" { fileinto "C"; } elsif anyof (mailboxexists "D", true) { fileinto "D"; }')
    assert [(f.folder, f.line) for f in sieve.filings(script)] == [("B", 2), ("C", 3), ("D", 3)]


def test_scripts_run_in_order_as_one():
    account_rules = sieve.parse('require ["vacation", "fileinto"];\nvacation "Away.";\n'
                                'if header :contains "subject" "stop" { fileinto "Stopped"; stop; }')
    active = sieve.parse('require ["vacation", "fileinto"];\nvacation "Other.";\nfileinto "Mine";')
    a = sieve.run_in_order([account_rules, active], env(subject="hello"))
    assert a.vacation["reason"] == "Away." and a.folders == ["Mine"] and not a.keep
    b = sieve.run_in_order([account_rules, active], env(subject="please stop"))
    assert b.folders == ["Stopped"]  # the active script never ran
    c = sieve.run_in_order([sieve.parse("discard;"), sieve.parse("keep;")], env())
    assert c.discarded and c.explicit_keep and not c.keep
