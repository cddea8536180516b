"""What the account page relies on: TOTP codes, the password policy, app passwords in the
shared login, the page's sessions and its choice of language."""

import pytest

from appliance.auth import Authenticator, totp
from appliance.auth.app_passwords import digest, new_app_password
from appliance.auth.passwords import common_passwords, weakness
from appliance.config.schema import AuthSection
from appliance.store import Store
from appliance.web import i18n
from appliance.web.sessions import IDLE, Sessions
from tests.unit.test_auth import FakeConn

# RFC 6238 Appendix B: the SHA-1 key "12345678901234567890", 8-digit codes; ours are the
# last 6 digits of the same truncation (RFC 4226 §5.3 takes the value modulo 10^Digits).
RFC_KEY = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
RFC_VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"), (1234567890, "89005924"),
               (2000000000, "69279037"), (20000000000, "65353130")]


@pytest.mark.parametrize("when,eight_digits", RFC_VECTORS)
def test_totp_matches_rfc_6238_test_vectors(when, eight_digits):
    assert totp.code_at(RFC_KEY, totp.current_step(when)) == eight_digits[-6:]


def test_a_totp_code_counts_one_step_either_side_and_no_further():
    secret = totp.new_secret()
    now = 1_700_000_000.0
    step = totp.current_step(now)
    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, totp.code_at(secret, step + offset), now) == step + offset
    assert totp.matching_step(secret, totp.code_at(secret, step + 2), now) is None
    assert totp.matching_step(secret, "12345", now) is None and totp.matching_step(secret, "abcdef", now) is None


def test_the_provisioning_uri_names_the_account_and_issuer():
    uri = totp.provisioning_uri("ABC", "alice@example.org", "mail.example.org")
    assert uri == "otpauth://totp/mail.example.org:alice@example.org?secret=ABC&issuer=mail.example.org"


@pytest.mark.parametrize("password,reason", [
    ("short", "too-short"), ("alice@example.org", "is-address"), ("ALICE@EXAMPLE.ORG", "is-address"),
    ("alicealice", None), ("Password123", "common"), ("1q2w3e4r5t", "common"), ("kopi tubruk pagi", None),
])
def test_weak_passwords_are_refused_with_the_reason(password, reason):
    assert weakness("alice@example.org", password) == reason


def test_the_shipped_list_holds_ten_thousand_common_passwords():
    common = common_passwords()
    assert len(common) == 10_000 and {"123456", "password", "qwerty"} <= common


@pytest.fixture
def store(tmp_path):
    s = Store.in_folder(tmp_path)
    s.add_domain("example.org")
    s.add_user("alice@example.org", "right")
    yield s
    s.close()


def test_an_app_password_logs_a_mail_client_in_and_notes_the_use(store):
    auth = Authenticator(store, AuthSection(), sleep=lambda _: None)
    user = store.get_user("alice@example.org")
    secret = new_app_password()
    store.add_app_password(user.id, "Rina's phone", digest(secret))
    assert auth.login("alice@example.org", secret, FakeConn()).id == user.id
    used = store.app_passwords(user.id)[0]
    assert used.last_ip == "203.0.113.9" and used.last_used is not None
    # The account page takes only the main password.
    assert auth.login_account_page("alice@example.org", secret, "203.0.113.9") is None
    assert auth.login_account_page("alice@example.org", "right", "203.0.113.9").id == user.id
    assert store.revoke_app_password(user.id, used.id)
    assert auth.login("alice@example.org", secret, FakeConn()) is None


def test_require_app_passwords_refuses_the_main_password_to_mail_clients(store):
    auth = Authenticator(store, AuthSection(require_app_passwords=True), sleep=lambda _: None)
    user = store.get_user("alice@example.org")
    secret = new_app_password()
    store.add_app_password(user.id, "laptop", digest(secret))
    assert auth.login("alice@example.org", "right", FakeConn()) is None
    assert auth.login("alice@example.org", secret, FakeConn()).id == user.id
    assert auth.login_account_page("alice@example.org", "right", "203.0.113.9").id == user.id


def test_recovery_codes_work_once_and_deleting_the_user_forgets_every_credential(store):
    user = store.get_user("alice@example.org")
    store.enable_totp(user.id, totp.new_secret(), [digest("1234567890"), digest("0987654321")])
    assert store.use_recovery_code(user.id, digest("1234567890"))
    assert not store.use_recovery_code(user.id, digest("1234567890"))
    assert store.recovery_codes_left(user.id) == 1
    store.add_app_password(user.id, "phone", digest(new_app_password()))
    store.delete_user("alice@example.org")
    again = store.add_user("alice@example.org", "right")
    assert store.totp_secret(again.id) is None and store.app_passwords(again.id) == []
    assert store.recovery_codes_left(again.id) == 0


def test_sessions_end_at_sign_out_when_idle_and_renew_their_tokens():
    now = [1000.0]
    sessions = Sessions(clock=lambda: now[0])
    session = sessions.new()
    old_token, old_csrf = session.token, session.csrf
    sessions.renew(session)
    assert sessions.get(old_token) is None and sessions.get(session.token) is session
    assert session.csrf != old_csrf
    now[0] += IDLE + 1
    assert sessions.get(session.token) is None
    other = sessions.new()
    sessions.end(other)
    assert sessions.get(other.token) is None


@pytest.mark.parametrize("cookie,accept,expected", [
    (None, "id-ID,id;q=0.9,en;q=0.8", "id"), (None, "en-GB,en;q=0.9,id;q=0.8", "en"), (None, "fr, id;q=0.5", "id"),
    (None, "fr", "en"), (None, None, "en"), ("id", "en", "id"), ("xx", "id", "id"), (None, "en;q=0.2, id;q=0.7", "id"),
])
def test_the_language_comes_from_the_cookie_then_the_browser(cookie, accept, expected):
    assert i18n.choose(cookie, accept) == expected


def test_both_languages_have_every_text():
    assert i18n.TEXTS["en"].keys() == i18n.TEXTS["id"].keys()


def test_a_flood_of_visitors_never_pushes_out_a_signed_in_session(monkeypatch):
    from appliance.web import sessions as sessions_module
    monkeypatch.setattr(sessions_module, "MAX_SESSIONS", 5)
    sessions = Sessions()
    signed_in = sessions.new()
    signed_in.user_id = 1
    for _ in range(50):
        sessions.new()
    assert sessions.get(signed_in.token) is signed_in
