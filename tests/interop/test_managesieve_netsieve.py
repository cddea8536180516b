"""PEAR's Net_Sieve (Debian's php-net-sieve), the library Roundcube's managesieve plugin talks
through, against a live server: STARTTLS verifying our certificate against the test's CA,
AUTHENTICATE PLAIN, the calls the plugin makes, an invalid script refused with its line, and the
activated script then filing mail that arrives over SMTP, as an IMAP client sees it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import HOSTNAME, PASSWORD
from tests.mda_helpers import imap_folders, plain, send


def net_sieve_missing() -> str | None:
    if shutil.which("php") is None:
        return "php is not installed (.ci/run installs php-cli)"
    found = subprocess.run(["php", "-r", 'exit(stream_resolve_include_path("Net/Sieve.php") === false ? 1 : 0);'],
                           capture_output=True, timeout=30)
    return None if found.returncode == 0 else "Net_Sieve is not installed (.ci/run installs php-net-sieve)"


MISSING = net_sieve_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

ALICE = "alice@example.org"
SCRIPT = ('require ["fileinto", "mailbox"];\r\n'
          'if header :contains "subject" "invoice" {\r\n'
          '  fileinto :create "Bills";\r\n'
          '}\r\n')
INVALID = 'require "fileinto";\r\nfileinto "Bills"\r\nkeep;\r\n'

# The calls Roundcube's rcube_sieve makes, in its order; each answer is {"ok": …} or {"error": …}.
# Roundcube hands its managesieve_conn_options to connect() as stream context options, which is
# how a private CA and the expected certificate name reach PHP's TLS.
DRIVER = r"""<?php
require_once 'Net/Sieve.php';

$in = json_decode(stream_get_contents(STDIN), true);
$out = array();

function answer($result) {
    return is_a($result, 'PEAR_Error') ? array('error' => $result->getMessage()) : array('ok' => $result);
}

$trusted = array('ssl' => array('verify_peer' => true, 'peer_name' => $in['hostname'], 'cafile' => $in['cafile']));
$sieve = new Net_Sieve();
$out['connect'] = answer($sieve->connect($in['host'], $in['port'], $trusted, true));
$out['login'] = answer($sieve->login($in['user'], $in['password'], 'PLAIN'));
$out['extensions'] = answer($sieve->getExtensions());
$out['havespace'] = answer($sieve->haveSpace('office', strlen($in['script'])));
$out['install'] = answer($sieve->installScript('office', $in['script'], true));
$out['spare'] = answer($sieve->installScript('spare', "keep;\r\n"));
$out['list'] = answer($sieve->listScripts());
$out['active'] = answer($sieve->getActive());
$out['get'] = answer($sieve->getScript('office'));
$out['remove'] = answer($sieve->removeScript('spare'));
$out['invalid'] = answer($sieve->installScript('bad', $in['invalid']));
$out['after'] = answer($sieve->listScripts());
$out['logout'] = answer($sieve->disconnect());

// Without the test's CA the certificate cannot be verified, and the connection must stop there.
$untrusted = new Net_Sieve();
$plain_ssl = array('ssl' => array('verify_peer' => true, 'peer_name' => $in['hostname']));
$out['untrusted'] = answer($untrusted->connect($in['host'], $in['port'], $plain_ssl, true));

$wrong = new Net_Sieve();
$wrong->connect($in['host'], $in['port'], $trusted, true);
$out['wrong_password'] = answer($wrong->login($in['user'], 'wrong', 'PLAIN'));

echo json_encode($out), "\n";
"""


def run_driver(server, tmp_path) -> dict:
    driver = tmp_path / "roundcube_like.php"
    driver.write_text(DRIVER)
    given = {"host": "127.0.0.1", "port": server.port("managesieve"), "hostname": HOSTNAME,
             "cafile": server.cafile, "user": ALICE, "password": PASSWORD,
             "script": SCRIPT, "invalid": INVALID}
    # PHP's warnings (the failed handshake) go to stderr so stdout stays one JSON line.
    done = subprocess.run(["php", "-d", "display_errors=stderr", str(driver)], input=json.dumps(given),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_roundcube_calls_then_the_active_script_files_mail(server, tmp_path):
    server.add_user(ALICE)
    seen = run_driver(server, tmp_path)
    assert seen["connect"] == {"ok": True} and seen["login"] == {"ok": True}, seen
    # Net_Sieve upper-cases the SIEVE capability; Roundcube lower-cases it again before use.
    assert {"fileinto", "vacation", "imap4flags"} <= {e.lower() for e in seen["extensions"]["ok"]}
    assert seen["havespace"] == {"ok": True}
    assert seen["install"] == {"ok": True} and seen["spare"] == {"ok": True}
    assert sorted(seen["list"]["ok"]) == ["office", "spare"]
    assert seen["active"] == {"ok": "office"}
    # Net_Sieve reads a literal together with the CRLF that ends the response line after it
    # (RFC 5804 §4) and hands both back: the script's bytes, then that one CRLF.
    assert seen["get"] == {"ok": SCRIPT + "\r\n"}
    assert seen["remove"] == {"ok": True}
    # Net_Sieve hands on the server's reason, quoted string and all, as the error Roundcube gets.
    assert seen["invalid"]["error"].startswith('"line 3: '), seen
    assert seen["after"] == {"ok": ["office"]}
    assert seen["logout"] == {"ok": True}
    assert seen["untrusted"] == {"error": "Failed to establish TLS connection"}
    assert seen["wrong_password"] == {"error": '"Authentication failed"'}

    send(server, plain(subject="Invoice 42"))
    send(server, plain(subject="lunch?"))
    folders = imap_folders(server, ALICE)
    assert folders["Bills"] == [b"Subject: Invoice 42"] and folders["INBOX"] == [b"Subject: lunch?"]
