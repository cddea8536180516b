"""What a user signs in with besides the main password: app passwords and two-step sign-in.

App passwords are long random strings the server makes (``appliance.auth.app_passwords``),
so a plain SHA-256 digest is enough to keep them (nothing to guess, unlike a password a
person chose) and lets a login find its row at once. The TOTP secret (RFC 6238) is kept as
it is, since a code can only be checked against it; recovery codes are kept as digests,
each usable once.
"""

from __future__ import annotations

import time

from appliance.store.models import AppPassword


def _app_password(row) -> AppPassword:
    return AppPassword(id=row["id"], name=row["name"], created=row["created"], last_used=row["last_used"],
                       last_ip=row["last_ip"])


class CredentialsMixin:
    # -- app passwords -----------------------------------------------------------------

    def add_app_password(self, user_id: int, name: str, digest: str) -> AppPassword:
        """Keep a new app password's digest under the device name the user gave."""
        now = time.time()

        def job(tx):
            cur = tx.execute("INSERT INTO app_passwords(user_id, name, digest, created) VALUES (?,?,?,?)",
                             (user_id, name, digest, now))
            return AppPassword(cur.lastrowid, name, now, None, None)

        return self.db.write(job)

    def app_passwords(self, user_id: int) -> list[AppPassword]:
        """The user's app passwords, oldest first (never their digests)."""
        with self.db.reader() as conn:
            rows = conn.execute("SELECT * FROM app_passwords WHERE user_id = ? ORDER BY id", (user_id,)).fetchall()
        return [_app_password(r) for r in rows]

    def find_app_password(self, user_id: int, digest: str) -> AppPassword | None:
        with self.db.reader() as conn:
            row = conn.execute("SELECT * FROM app_passwords WHERE user_id = ? AND digest = ?",
                               (user_id, digest)).fetchone()
        return _app_password(row) if row else None

    def app_password_used(self, app_password_id: int, ip: str) -> None:
        """Note when and from where an app password last logged in."""
        self.db.write(lambda tx: tx.execute("UPDATE app_passwords SET last_used = ?, last_ip = ? WHERE id = ?",
                                            (time.time(), ip, app_password_id)))

    def revoke_app_password(self, user_id: int, app_password_id: int) -> bool:
        """Delete one of the user's app passwords; False if they have none by that id."""
        return self.db.write(lambda tx: tx.execute("DELETE FROM app_passwords WHERE id = ? AND user_id = ?",
                                                   (app_password_id, user_id)).rowcount > 0)

    # -- two-step sign-in (TOTP) ---------------------------------------------------------

    def totp_secret(self, user_id: int) -> str | None:
        """The user's TOTP secret (base32) when two-step sign-in is on, else None."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT secret FROM totp WHERE user_id = ?", (user_id,)).fetchone()
        return row["secret"] if row else None

    def enable_totp(self, user_id: int, secret: str, recovery_digests: list[str]) -> None:
        """Turn two-step sign-in on with ``secret``; the recovery codes replace any earlier ones."""
        def job(tx):
            tx.execute("INSERT OR REPLACE INTO totp(user_id, secret, enabled) VALUES (?,?,?)",
                       (user_id, secret, time.time()))
            tx.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
            tx.executemany("INSERT INTO recovery_codes(user_id, digest) VALUES (?,?)",
                           [(user_id, d) for d in recovery_digests])

        self.db.write(job)

    def disable_totp(self, user_id: int) -> None:
        def job(tx):
            tx.execute("DELETE FROM totp WHERE user_id = ?", (user_id,))
            tx.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))

        self.db.write(job)

    def use_recovery_code(self, user_id: int, digest: str) -> bool:
        """Spend one recovery code: True once for each code, False for any other."""
        return self.db.write(lambda tx: tx.execute("DELETE FROM recovery_codes WHERE user_id = ? AND digest = ?",
                                                   (user_id, digest)).rowcount > 0)

    def recovery_codes_left(self, user_id: int) -> int:
        with self.db.reader() as conn:
            return conn.execute("SELECT count(*) FROM recovery_codes WHERE user_id = ?", (user_id,)).fetchone()[0]

    def _forget_user_credentials(self, tx, user_id: int) -> None:
        """Inside ``delete_user``: a later user with the same id starts without them."""
        for table in ("app_passwords", "totp", "recovery_codes"):
            tx.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
