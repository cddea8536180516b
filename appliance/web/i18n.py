"""The account page's words in English and Indonesian.

The browser's Accept-Language chooses (RFC 9110 §12.5.4, by q-value); the switch on the
page overrides it and is remembered in the ``lang`` cookie. Every key exists in both.
"""

from __future__ import annotations

LANGUAGES = ("en", "id")
DEFAULT = "en"
COOKIE = "lang"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your mail account",
        "language": "Bahasa Indonesia",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "address": "Mail address",
        "password": "Password",
        "signed_in_as": "Signed in as",
        "bad_login": "Wrong address or password.",
        "blocked": "Too many failed sign-ins from your address. Try again later.",
        "expired": "The form expired. Please try again.",
        "second_step": "Two-step sign-in",
        "code_or_recovery": "Code from your authenticator app, or a recovery code",
        "bad_code": "That code is not right.",
        "continue": "Continue",
        "password_title": "Password",
        "old_password": "Current password",
        "new_password": "New password",
        "repeat_password": "New password again",
        "change_password": "Change password",
        "password_changed": "Your password was changed.",
        "wrong_old": "The current password is not right.",
        "no_match": "The two new passwords differ.",
        "too-short": "The new password is too short: use at least 10 characters.",
        "is-address": "The new password must not be your mail address.",
        "common": "The new password is one of the most common passwords, which are guessed first.",
        "app_title": "App passwords",
        "app_intro": "A separate password for each phone or mail program. If a device is lost, revoke its password: the others keep working.",
        "app_required": "Mail programs need an app password here: your main password only opens this page.",
        "device": "Device name (e.g. Rina's phone)",
        "create": "Create",
        "app_created": "The app password for {name}. Type it into the device now: it will not be shown again.",
        "app_none": "No app passwords yet.",
        "created": "Created",
        "last_used": "Last used",
        "from": "From",
        "never": "never",
        "revoke": "Revoke",
        "app_revoked": "The app password was revoked.",
        "totp_title": "Two-step sign-in",
        "totp_off": "Off. With it on, signing in here also asks for a code from an authenticator app.",
        "totp_on": "On. Recovery codes left: {count}.",
        "totp_start": "Turn on",
        "totp_scan": "Scan this with your authenticator app, or type the key, then enter the code it shows.",
        "totp_key": "Key",
        "code": "Code",
        "confirm": "Confirm",
        "totp_enabled": "Two-step sign-in is on. Keep these recovery codes somewhere safe: each works once, and they will not be shown again.",
        "totp_disable": "Turn off",
        "totp_disabled": "Two-step sign-in is off.",
        "usage_title": "Usage",
        "quota": "Used {used} of {quota}",
        "quota_none": "Used {used} (no limit)",
        "folder": "Folder",
        "messages": "Messages",
        "size": "Size",
        "setup_title": "Set up a device",
        "setup_intro": "Thunderbird, Outlook and most phone mail apps find the settings by themselves from your address. If one does not:",
        "setup_thunderbird": "Thunderbird settings",
        "setup_apple": "iPhone, iPad or Mac profile",
        "setup_qr": "On a phone, scan this to open the profile:",
        "server": "Server",
    },
    "id": {
        "title": "Akun surel Anda",
        "language": "English",
        "sign_in": "Masuk",
        "sign_out": "Keluar",
        "address": "Alamat surel",
        "password": "Kata sandi",
        "signed_in_as": "Masuk sebagai",
        "bad_login": "Alamat atau kata sandi salah.",
        "blocked": "Terlalu banyak percobaan masuk yang gagal dari alamat Anda. Coba lagi nanti.",
        "expired": "Formulir sudah kedaluwarsa. Silakan coba lagi.",
        "second_step": "Verifikasi dua langkah",
        "code_or_recovery": "Kode dari aplikasi autentikator, atau kode pemulihan",
        "bad_code": "Kode itu tidak benar.",
        "continue": "Lanjut",
        "password_title": "Kata sandi",
        "old_password": "Kata sandi saat ini",
        "new_password": "Kata sandi baru",
        "repeat_password": "Ulangi kata sandi baru",
        "change_password": "Ganti kata sandi",
        "password_changed": "Kata sandi Anda sudah diganti.",
        "wrong_old": "Kata sandi saat ini tidak benar.",
        "no_match": "Kedua kata sandi baru berbeda.",
        "too-short": "Kata sandi baru terlalu pendek: gunakan paling sedikit 10 karakter.",
        "is-address": "Kata sandi baru tidak boleh sama dengan alamat surel Anda.",
        "common": "Kata sandi baru termasuk kata sandi paling umum, yang paling dulu ditebak orang.",
        "app_title": "Kata sandi aplikasi",
        "app_intro": "Kata sandi tersendiri untuk setiap ponsel atau program surel. Jika perangkat hilang, cabut kata sandinya: yang lain tetap berfungsi.",
        "app_required": "Program surel di sini memerlukan kata sandi aplikasi: kata sandi utama hanya membuka halaman ini.",
        "device": "Nama perangkat (mis. Ponsel Rina)",
        "create": "Buat",
        "app_created": "Kata sandi aplikasi untuk {name}. Ketikkan ke perangkat sekarang: kata sandi ini tidak akan ditampilkan lagi.",
        "app_none": "Belum ada kata sandi aplikasi.",
        "created": "Dibuat",
        "last_used": "Terakhir dipakai",
        "from": "Dari",
        "never": "belum pernah",
        "revoke": "Cabut",
        "app_revoked": "Kata sandi aplikasi sudah dicabut.",
        "totp_title": "Verifikasi dua langkah",
        "totp_off": "Mati. Jika aktif, masuk ke halaman ini juga meminta kode dari aplikasi autentikator.",
        "totp_on": "Aktif. Sisa kode pemulihan: {count}.",
        "totp_start": "Aktifkan",
        "totp_scan": "Pindai ini dengan aplikasi autentikator Anda, atau ketik kuncinya, lalu masukkan kode yang muncul.",
        "totp_key": "Kunci",
        "code": "Kode",
        "confirm": "Konfirmasi",
        "totp_enabled": "Verifikasi dua langkah aktif. Simpan kode pemulihan ini di tempat aman: masing-masing hanya berlaku sekali, dan tidak akan ditampilkan lagi.",
        "totp_disable": "Matikan",
        "totp_disabled": "Verifikasi dua langkah sudah dimatikan.",
        "usage_title": "Pemakaian",
        "quota": "Terpakai {used} dari {quota}",
        "quota_none": "Terpakai {used} (tanpa batas)",
        "folder": "Folder",
        "messages": "Pesan",
        "size": "Ukuran",
        "setup_title": "Siapkan perangkat",
        "setup_intro": "Thunderbird, Outlook dan kebanyakan aplikasi surel di ponsel menemukan pengaturannya sendiri dari alamat Anda. Jika tidak:",
        "setup_thunderbird": "Pengaturan Thunderbird",
        "setup_apple": "Profil iPhone, iPad atau Mac",
        "setup_qr": "Di ponsel, pindai ini untuk membuka profilnya:",
        "server": "Server",
    },
}


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the cookie's if it names one of ours, else the browser's best."""
    if cookie in LANGUAGES:
        return cookie
    ranked = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT
