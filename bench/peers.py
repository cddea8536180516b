"""Postfix and Dovecot from Debian as private benchmark peers on loopback high ports.

Each instance lives entirely in its own temporary folder (configuration, queue, data, mail,
sockets, logs), listens only on 127.0.0.1, and never touches the system's /etc/postfix or
/etc/dovecot instance. Both are started by us and stopped by us:

    with Dovecot(users=[("alice@bench.test", "pw")]) as d:
        with Postfix(lmtp=("127.0.0.1", d.lmtp_port), users=d.addresses) as p:
            ...  # SMTP on p.smtp_port, IMAP on d.imap_port, POP3 on d.pop3_port

Postfix has two modes: deliver local mail over LMTP to Dovecot (end-to-end), or relay every
listed domain to a given host:port (the relay benchmark). Dovecot keeps its default fsync
behaviour; Postfix keeps its default of fsyncing each queue file before it answers 250.

Run `python -m bench.peers install` once (or let run_all do it) to apt-get the packages.
"""

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("postfix", "dovecot-imapd", "dovecot-pop3d", "dovecot-lmtpd")
MAIL_USER = "nobody"  # Dovecot refuses uid 0 for mail; nobody owns the benchmark Maildirs.


def install() -> None:
    """apt-get the peers if any is missing (idempotent; no system instance gets configured)."""
    missing = [p for p in PACKAGES if not _dpkg_installed(p)]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # "No configuration" keeps the system Postfix unconfigured: only our private one runs.
    subprocess.run(["debconf-set-selections"], input=b"postfix postfix/main_mailer_type select No configuration\n",
                   check=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *PACKAGES], check=True, env=env)


def _dpkg_installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


def free_port() -> int:
    """A currently free loopback TCP port (the peers need fixed numbers in their configs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
            time.sleep(0.05)


def _tree_pids(root: int) -> list[int]:
    """root and all its descendants, from /proc (Dovecot and Postfix are process trees)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def memory_kib(root: int) -> dict:
    """Resident memory of a process tree: summed RSS (counts shared pages per process) and PSS."""
    rss = pss = 0
    pids = _tree_pids(root)
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            try:  # smaps_rollup is missing on some kernels (gVisor): fall back to status
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            except OSError:
                pass
    return {"processes": len(pids), "rss_kib": rss, "pss_kib": pss or None}


def cpu_seconds(roots) -> float:
    """CPU time (user + system) the process trees under `roots` have used so far.

    Each process's own time plus its reaped children's, so a worker that exits between two
    readings still counts once: the difference of two readings is the work done between them.
    """
    return sum(cpu_by_process(roots).values())


def cpu_by_process(roots) -> dict[str, float]:
    """cpu_seconds split by process name, to see where the time goes: Postfix's smtpd,
    cleanup, qmgr; Dovecot's imap, lmtp; Kotakpos's supervisor and workers. A tree's root is
    named by its `comm` ("master", "dovecot", "python") and also holds its reaped children's
    time; the others "ROOT/NAME" (Postfix's lmtp client is "master/lmtp", Dovecot's
    server "dovecot/lmtp"), all processes of one name together."""
    seconds: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    root_name = ""
    for root in roots:
        for pid in _tree_pids(root):  # the root comes first
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            if pid == root:
                root_name = name = comm
            else:
                name = f"{root_name}/{comm}"
            fields = stat.rsplit(")", 1)[1].split()
            seconds[name] = seconds.get(name, 0.0) + sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    return seconds


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What each process name of cpu_by_process used between two readings. Their sum is the
    trees' work in between; a name whose processes exited meanwhile comes out negative, as the
    time they had used moved to their parent's reaped-children time."""
    return {name: after.get(name, 0.0) - before.get(name, 0.0) for name in {**before, **after}}


class Instance:
    """A server the bench runs: ``with`` starts it, and stops and cleans up on leaving,
    also when the start itself fails half-way."""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        self.clean_up()

    def clean_up(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)


class ModuleServer(Instance):
    """A bench server run as ``python -m <module> --port P ...`` in its own process, so that its
    CPU time is its own. Subclasses give ``module`` and ``arguments()``."""

    module = ""

    def __init__(self, prefix: str, workdir: str | None = None):
        self._own_dir = workdir is None
        self.root = Path(workdir or tempfile.mkdtemp(prefix=prefix))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def arguments(self) -> list[str]:
        return []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", self.module, "--port", str(self.port), *self.arguments()])
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


class Dovecot(Instance):
    """A private Dovecot with IMAP, POP3 and LMTP on loopback, plaintext auth, Maildir storage."""

    def __init__(self, users: list[tuple[str, str]], workdir: str | None = None,
                 max_connections: int = 1200):
        self.users = list(users)
        self.addresses = [u for u, _ in self.users]
        self.max_connections = max_connections
        self._own_dir = workdir is None
        self.root = Path(workdir or tempfile.mkdtemp(prefix="bench-dovecot-"))
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.lmtp_port = free_port()
        self.pid: int | None = None

    # -- configuration ------------------------------------------------------------------
    def _write_config(self) -> Path:
        mail = pwd.getpwnam(MAIL_USER)
        (self.root / "run").mkdir(parents=True, exist_ok=True)
        (self.root / "mail").mkdir(exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chown(self.root / "mail", mail.pw_uid, mail.pw_gid)
        lines = [f"{u}:{{PLAIN}}{p}:{mail.pw_uid}:{mail.pw_gid}::{self.home(u)}::" for u, p in self.users]
        (self.root / "passwd").write_text("\n".join(lines) + "\n")
        conf = self.root / "dovecot.conf"
        n = self.max_connections
        conf.write_text(f"""\
# Private benchmark instance written by bench/peers.py.
protocols = imap pop3 lmtp
listen = 127.0.0.1
base_dir = {self.root}/run
instance_name = bench-dovecot-{self.imap_port}
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1
# Many idlers of few users all come from 127.0.0.1.
mail_max_userip_connections = {n}
default_process_limit = {n}
default_client_limit = {n * 2}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service imap {{
  process_limit = {n}
}}
# Each login process can ask auth and anvil; room for all of them at the limits above.
service auth {{
  client_limit = {n * 5}
}}
service anvil {{
  client_limit = {n * 5}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@bench.test
}}
""")
        return conf

    def home(self, address: str) -> Path:
        return self.root / "mail" / address

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Dovecot":
        conf = self._write_config()
        (self.root / "state").mkdir(exist_ok=True)
        subprocess.run(["dovecot", "-c", str(conf)], check=True)
        self.started = True
        for port in (self.imap_port, self.pop3_port, self.lmtp_port):
            wait_for_port(port)
        self.pid = int(_wait_for_file(self.root / "run" / "master.pid").read_text())
        return self

    def stop(self) -> None:
        if not getattr(self, "started", False):
            return
        subprocess.run(["doveadm", "-c", str(self.root / "dovecot.conf"), "stop"], capture_output=True)
        if self.pid is not None:
            _wait_gone(self.pid, 10)
        self.pid = None
        self.started = False

    def memory(self) -> dict:
        return memory_kib(self.pid)

    # -- bulk load ----------------------------------------------------------------------
    def load_maildir(self, address: str, messages) -> int:
        """Write (index, raw) messages straight into the user's Maildir/cur; returns the count.

        This is how a migrated mailbox arrives; Dovecot builds its index on first SELECT, so
        the generators warm each mailbox up once before timing it.
        """
        mail = pwd.getpwnam(MAIL_USER)
        maildir = self.home(address) / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        base = int(time.time()) - 86400
        count = 0
        for index, raw in messages:
            name = f"{base + index}.M{index}P1.bench,S={len(raw)}:2,"
            path = maildir / "cur" / name
            path.write_bytes(raw)
            os.utime(path, (base + index, base + index))  # internal date = mtime
            count += 1
        for dirpath, dirnames, filenames in os.walk(self.home(address)):
            os.chown(dirpath, mail.pw_uid, mail.pw_gid)
            for f in filenames:
                os.chown(os.path.join(dirpath, f), mail.pw_uid, mail.pw_gid)
        os.chown(self.home(address).parent, mail.pw_uid, mail.pw_gid)
        return count


class Postfix(Instance):
    """A private Postfix (smtpd and queue only) on 127.0.0.1:smtp_port.

    lmtp=(host, port): accept mail for `domain` (only the listed `users`) and deliver it over
    LMTP — the Postfix → LMTP → Dovecot path. relay=(host, port): accept mail from loopback for
    any of `relay_domains` and relay it there by SMTP; flush() retries deferred mail at once.
    """

    def __init__(self, domain: str = "bench.test", users: list[str] = (), lmtp: tuple[str, int] | None = None,
                 relay: dict[str, tuple[str, int]] | None = None, workdir: str | None = None):
        if (lmtp is None) == (relay is None):
            raise ValueError("give exactly one of lmtp= or relay=")
        self.domain, self.users, self.lmtp, self.relay = domain, list(users), lmtp, relay
        self._own_dir = workdir is None
        self.root = Path(workdir or tempfile.mkdtemp(prefix="bench-postfix-"))
        self.conf = self.root / "etc"
        self.smtp_port = free_port()
        self.pid: int | None = None

    def _write_config(self) -> None:
        self.conf.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        if self.lmtp:
            host, port = self.lmtp
            rcpts = ", ".join(f"{u}=ok" for u in self.users)
            routing = f"""\
relay_domains = {self.domain}
relay_recipient_maps = inline:{{ {rcpts} }}
transport_maps = inline:{{ {self.domain}=lmtp:inet:{host}:{port} }}
"""
        else:
            routes = ", ".join(f"{d}=smtp:[{h}]:{p}" for d, (h, p) in self.relay.items())
            routing = f"""\
relay_domains = {", ".join(self.relay)}
transport_maps = inline:{{ {routes} }}
smtp_dns_support_level = disabled
"""
        (self.conf / "main.cf").write_text(f"""\
# Private benchmark instance written by bench/peers.py.
compatibility_level = 3.6
queue_directory = {self.root}/queue
data_directory = {self.root}/data
meta_directory = /etc/postfix
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
maillog_file_prefixes = {self.root}
maillog_file = {self.root}/maillog
smtpd_banner = $myhostname ESMTP
biff = no
{routing}""")
        port = self.smtp_port
        # Only what smtpd, the queue and the SMTP/LMTP clients need; no chroot (our queue
        # folder is outside the Debian chroot layout).
        (self.conf / "master.cf").write_text(f"""\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""")

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["postfix", "-c", str(self.conf), *args], capture_output=True, text=True,
                              check=check)

    def start(self) -> "Postfix":
        self._write_config()
        (self.root / "queue").mkdir(exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        os.chown(self.root / "data", pwd.getpwnam("postfix").pw_uid, -1)
        self._postfix("check")  # creates the queue's subfolders with their owners
        self._postfix("start")
        self.started = True
        wait_for_port(self.smtp_port)
        self.pid = int(_wait_for_file(self.root / "queue" / "pid" / "master.pid").read_text())
        return self

    def stop(self) -> None:
        if not getattr(self, "started", False):
            return
        self._postfix("stop", check=False)
        if self.pid is not None:
            _wait_gone(self.pid, 10)
        self.pid = None
        self.started = False

    def flush(self) -> None:
        """Attempt every queued message now, whatever its retry time (postqueue -f)."""
        subprocess.run(["postqueue", "-c", str(self.conf), "-f"], check=True, capture_output=True)

    def queue_size(self, parts=("maildrop", "incoming", "active", "deferred", "hold")) -> int:
        """Messages in the queue (files under the given queue folders)."""
        total = 0
        for sub in parts:
            for _dirpath, _dirs, files in os.walk(self.root / "queue" / sub):
                total += len(files)
        return total

    def deferred(self) -> int:
        """Messages that were tried and wait for their next attempt."""
        return self.queue_size(("deferred",))

    def memory(self) -> dict:
        return memory_kib(self.pid)


def _wait_for_file(path: Path, timeout: float = 10.0) -> Path:
    """A daemon writes its pid file a moment after it starts listening."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)
    return path


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["install", "smoke"],
                    help="install: apt-get the peers; smoke: start both, send one mail, read it")
    args = ap.parse_args(argv)
    install()
    if args.action == "smoke":
        import imaplib
        import smtplib
        user = ("alice@bench.test", "secret")
        with Dovecot([user]) as d, Postfix(users=[user[0]], lmtp=("127.0.0.1", d.lmtp_port)) as p:
            with smtplib.SMTP("127.0.0.1", p.smtp_port) as s:
                s.sendmail("bob@bench.test", [user[0]], b"Subject: smoke\r\n\r\nhello\r\n")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with imaplib.IMAP4("127.0.0.1", d.imap_port) as m:
                    m.login(*user)
                    status = m.status("INBOX", "(MESSAGES)")[1][0]
                if b"MESSAGES 1" in status:
                    print("ok: Postfix -> LMTP -> Dovecot delivered, IMAP sees", status.decode())
                    return
                time.sleep(0.2)
            raise SystemExit("smoke failed: message not visible over IMAP")


if __name__ == "__main__":
    main()
