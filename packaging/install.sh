#!/usr/bin/env bash
# Install or upgrade Kotakpos on a systemd box. Run as root:
#
#   sudo ./install.sh [path/to/kotakpos]
#
# The binary defaults to ./kotakpos beside this script, then ../dist/kotakpos (a checkout).
# First run: creates the user kotakpos and /var/lib/kotakpos, places the binary in
# /usr/local/bin, installs and starts kotakpos.service. Later runs upgrade: stop the
# service, replace the binary, start it again; the new server backs up the store and
# migrates it when it starts.
#
# DESTDIR=/some/root puts every file under that root instead of / (for packagers and
# tests). Account and service commands (getent, useradd, chown, systemctl) are still run
# from PATH, so a test runs this with stand-ins for them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
destdir="${DESTDIR:-}"
user=kotakpos
data_dir=/var/lib/kotakpos
bin_path=/usr/local/bin/kotakpos
unit_path=/etc/systemd/system/kotakpos.service

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    usage
    exit 0
fi
if [[ $# -gt 1 ]]; then
    usage >&2
    exit 2
fi
if [[ $# -eq 1 ]]; then
    binary="$1"
elif [[ -f "$here/kotakpos" ]]; then
    binary="$here/kotakpos"
else
    binary="$here/../dist/kotakpos"
fi
[[ -f "$binary" ]] || die "no kotakpos binary at $binary (build it with build/build.sh or pass its path)"
[[ $EUID -eq 0 || -n "$destdir" ]] || die "run me as root (sudo $0)"

# Refuse a binary that does not run here (wrong architecture, truncated download).
version="$("$binary" --version)" || die "$binary does not run on this machine"

upgrade=no
[[ -e "$destdir$bin_path" ]] && upgrade=yes

if ! getent passwd "$user" >/dev/null; then
    say "creating the system user $user"
    useradd --system --user-group --home-dir "$data_dir" --no-create-home \
        --shell /usr/sbin/nologin --comment "Kotakpos mail server" "$user"
fi

# The data folder holds the store, TLS key and admin socket: the service user only.
mkdir -p "$destdir$data_dir"
chmod 0700 "$destdir$data_dir"
chown "$user:$user" "$destdir$data_dir"

if [[ $upgrade == yes ]] && systemctl is-active --quiet kotakpos; then
    say "stopping kotakpos for the upgrade"
    systemctl stop kotakpos
fi

# Copy beside the target, then rename: a crash never leaves half a binary in place.
mkdir -p "$(dirname "$destdir$bin_path")"
install -m 0755 "$binary" "$destdir$bin_path.new"
mv -f "$destdir$bin_path.new" "$destdir$bin_path"

mkdir -p "$(dirname "$destdir$unit_path")"
install -m 0644 "$here/kotakpos.service" "$destdir$unit_path"
systemctl daemon-reload
systemctl enable kotakpos >/dev/null
systemctl start kotakpos

if [[ $upgrade == yes ]]; then
    say "upgraded Kotakpos to ${version#kotakpos, } and started it (it backs up and migrates the store at start)"
else
    say "installed ${version#kotakpos, } and started it"
fi

admin="sudo -u $user $bin_path --data $data_dir"
say ""
say "Check it:      systemctl status kotakpos; journalctl -u kotakpos"
[[ $upgrade == yes ]] && exit 0

say "Next steps:"
say "  1. Name the server: set [server] hostname in $data_dir/kotakpos.toml,"
say "     then: systemctl restart kotakpos"
say "  2. Add your domain: $admin domain add example.org"
say "  3. Add users:       $admin user add alice@example.org"
if "$destdir$bin_path" dns --help >/dev/null 2>&1; then
    say "  4. Publish the DNS records it prints: $admin dns example.org"
else
    say "  4. Publish DNS records for example.org: an MX record naming this server's hostname,"
    say "     an A/AAAA record for that hostname, and SPF: \"v=spf1 mx -all\""
fi
