"""Real certificates from an ACME CA (RFC 8555: Let's Encrypt, or Pebble in tests).

``issuer`` runs one order with the ``acme`` library (the one certbot is built on),
answering HTTP-01 challenges through the web listener, which serves the key
authorisations ``Challenges`` holds. ``manager`` decides when: at start when the
certificate is self-signed or near its end, then daily; renewal starts 30 days before
expiry. When issuance fails the server keeps serving what it has — the self-signed
certificate, made anew if the current one has expired — and says so loudly in the log
and in ``kotakpos status``.
"""
