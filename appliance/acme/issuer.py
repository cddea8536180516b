"""One ACME order: account, new order, HTTP-01 challenges, finalisation (RFC 8555 §7)."""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path

import josepy
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

USER_AGENT = "kotakpos"


class IssueError(Exception):
    """The CA did not issue; the message says why (fit for the log and ``kotakpos status``)."""


class Challenges:
    """HTTP-01 token -> key authorisation, served at /.well-known/acme-challenge/TOKEN (RFC 8555 §8.3)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}

    def put(self, token: str, authorization: str) -> None:
        with self._lock:
            self._tokens[token] = authorization

    def get(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    def remove(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def account_key(path: Path) -> josepy.JWKRSA:
    """The ACME account key, made on first use and kept (the CA knows the account by it)."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return josepy.JWKRSA(key=serialization.load_pem_private_key(path.read_bytes(), password=None))


def issue(directory_url: str, names: list[str], account_key_path: Path, challenge_store: Challenges,
          email: str = "", ca_file: str = "", timeout: float = 90.0) -> tuple[bytes, bytes]:
    """Order a certificate for ``names``; returns (full chain PEM, private key PEM). Raises IssueError."""
    key = account_key(account_key_path)
    net = client.ClientNetwork(key, user_agent=USER_AGENT, verify_ssl=ca_file or True, timeout=30)
    served: list[str] = []
    try:
        acme = client.ClientV2(client.ClientV2.get_directory(directory_url, net), net=net)
        registration = messages.NewRegistration.from_data(email=email or None, terms_of_service_agreed=True)
        try:
            acme.new_account(registration)
        except errors.ConflictError as e:  # this key has an account already (RFC 8555 §7.3.1)
            acme.query_registration(messages.RegistrationResource(uri=e.location, body=messages.Registration()))
        cert_key = ec.generate_private_key(ec.SECP256R1())
        key_pem = cert_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        order = acme.new_order(crypto_util.make_csr(key_pem, names))
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # the CA still remembers an earlier validation
            challenge = next((c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if challenge is None:
                raise IssueError(f"the CA offers no HTTP-01 challenge for {authorization.body.identifier.value}")
            response, validation = challenge.response_and_validation(key)
            token = challenge.chall.encode("token")
            challenge_store.put(token, validation)
            served.append(token)
            acme.answer_challenge(challenge, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        order = acme.poll_and_finalize(order, deadline)
        return order.fullchain_pem.encode("ascii"), key_pem
    except errors.ValidationError as e:
        problems = "; ".join(str(a.body.challenges[0].error or a.body.status) for a in e.failed_authzrs)
        raise IssueError(f"the CA could not validate: {problems}") from None
    except IssueError:
        raise
    except Exception as e:  # ACME problems, TLS and connection errors: the caller falls back, never crashes
        raise IssueError(f"{e.__class__.__name__}: {e}") from None
    finally:
        for token in served:
            challenge_store.remove(token)


def install(cert_path: Path, key_path: Path, fullchain: bytes, key_pem: bytes) -> None:
    """Put a new certificate and key in place (key first: it is what a restart checks for)."""
    _write_private(key_path, key_pem)
    tmp = cert_path.with_name(cert_path.name + ".tmp")
    tmp.write_bytes(fullchain)
    tmp.replace(cert_path)
