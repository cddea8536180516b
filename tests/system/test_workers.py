"""``[server] workers = 2``: a supervisor and two worker processes, as a user runs them.

Which worker accepts a connection is the kernel's choice; a test that needs two
connections on different workers opens connections until the admin's list of workers
(``AdminClient.workers()``: each worker's sessions with their peer ports) shows it has them.
"""

from __future__ import annotations

import os
import platform
import poplib
import re
import signal
import smtplib
import socket
import ssl
import time

import pytest

from appliance.admin.client import AdminClient, ServerNotRunning
from appliance.launch import MALLOC_TUNABLES
from appliance.store import Store
from tests.system.process import NO_DNS_CONFIG, ServeProcess, environment, run_cli

PASSWORD = "workers test password"
TWO_WORKERS = NO_DNS_CONFIG + "[server]\nworkers = 2\n[auth]\nallow_plaintext = true\ntrusted_networks = [\"127.0.0.0/8\"]\n"
GREETINGS = {"smtp": b"220 ", "submission": b"220 ", "smtps": b"220 ", "pop3": b"+OK", "pop3s": b"+OK",
             "imap": b"* OK", "imaps": b"* OK"}


def prepare(data_dir, config: str = TWO_WORKERS) -> None:
    data_dir.mkdir()
    (data_dir / "kotakpos.toml").write_text(config)
    store = Store.in_folder(data_dir)
    store.add_domain("example.org")
    store.add_user("alice@example.org", PASSWORD)
    store.close()


@pytest.fixture
def served(tmp_path):
    data = tmp_path / "data"
    prepare(data)
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def admin(proc: ServeProcess) -> AdminClient:
    return AdminClient(proc.data_dir / "admin.sock")


def worker_pids(proc: ServeProcess) -> list[int]:
    """Every worker's pid (0 for one that does not answer)."""
    client = admin(proc)
    try:
        return [w.get("pid", 0) for w in client.workers()]
    finally:
        client.close()


def admin_workers(proc: ServeProcess) -> list[dict] | None:
    """``AdminClient.workers()``, or None while the first worker (the admin's) restarts."""
    try:
        client = admin(proc)
    except (OSError, ServerNotRunning):
        return None
    try:
        return client.workers()
    finally:
        client.close()


def worker_pids_when_up(proc: ServeProcess) -> list[int] | None:
    """``worker_pids``, or None while the first worker (the admin's) restarts."""
    try:
        return worker_pids(proc)
    except (OSError, ServerNotRunning):
        return None


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def serving_worker(proc: ServeProcess, local_port: int) -> int:
    """The pid of the worker that holds the session whose client port is ``local_port``."""
    def find():
        client = admin(proc)
        try:
            for w in client.workers():
                if any(s["peer_port"] == local_port for s in w.get("session_list", [])):
                    return w["pid"]
        finally:
            client.close()
        return None
    return wait_for(find, what=f"the session from port {local_port}")


class Imap:
    """A line-level IMAP client: imaplib has no IDLE."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")
        self.tag = 0

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def command(self, text: str) -> list[bytes]:
        self.tag += 1
        tag = f"a{self.tag}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            line = self.file.readline()
            assert line, "connection closed"
            lines.append(line)
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" OK"), lines
                return lines

    def append(self, mailbox: str, raw: bytes) -> None:
        self.tag += 1
        tag = f"a{self.tag}".encode()
        self.sock.sendall(tag + f" APPEND {mailbox} {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
        while not (line := self.file.readline()).startswith(tag + b" "):
            assert line
        assert line.startswith(tag + b" OK"), line

    def close(self) -> None:
        self.sock.close()


def logged_in_on_two_workers(proc: ServeProcess) -> tuple[Imap, Imap]:
    """Two logged-in IMAP connections that two different workers serve."""
    first = Imap(proc.port("imap"))
    first.command(f'LOGIN alice@example.org "{PASSWORD}"')
    first_pid = serving_worker(proc, first.local_port)
    for _ in range(40):
        other = Imap(proc.port("imap"))
        other.command(f'LOGIN alice@example.org "{PASSWORD}"')
        if serving_worker(proc, other.local_port) != first_pid:
            return first, other
        other.close()
    raise AssertionError("40 connections in a row went to the same worker")


def smtp_on_worker_other_than(proc: ServeProcess, pid: int) -> smtplib.SMTP:
    for _ in range(40):
        smtp = smtplib.SMTP("127.0.0.1", proc.port("smtp"), timeout=10)
        if serving_worker(proc, smtp.sock.getsockname()[1]) != pid:
            return smtp
        smtp.quit()
    raise AssertionError("40 connections in a row went to the same worker")


def pop3_on_worker_other_than(proc: ServeProcess, pid: int) -> poplib.POP3:
    """A logged-in POP3 connection that another worker than ``pid`` serves."""
    for _ in range(40):
        pop = poplib.POP3("127.0.0.1", proc.port("pop3"), timeout=10)
        pop.user("alice@example.org")
        pop.pass_(PASSWORD)
        if serving_worker(proc, pop.sock.getsockname()[1]) != pid:
            return pop
        pop.quit()
    raise AssertionError("40 connections in a row went to the same worker")


def wait_exists(imap: Imap, timeout: float = 5.0) -> None:
    """Until the idling connection hears of a new message."""
    imap.sock.settimeout(timeout)
    while not (line := imap.file.readline()).endswith(b" EXISTS\r\n"):
        assert line, "connection closed while idling"


def test_every_worker_serves_every_port(served):
    ready = next(line for line in served.log_lines if " ready " in line)
    assert "workers=2" in ready
    pids = worker_pids(served)
    assert len(set(pids)) == 2 and served.proc.pid not in pids
    seen_by_port: dict[str, set[int]] = {}
    for name, greeting in GREETINGS.items():
        for _ in range(6):
            sock = socket.create_connection(("127.0.0.1", served.port(name)), timeout=10)
            if name in ("smtps", "pop3s", "imaps"):
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                sock = context.wrap_socket(sock)
            assert sock.recv(100).startswith(greeting), name
            seen_by_port.setdefault(name, set()).add(serving_worker(served, sock.getsockname()[1]))
            sock.close()
    assert all(pids_seen <= set(pids) for pids_seen in seen_by_port.values())
    status = run_cli("status", data_dir=served.data_dir)
    assert status.returncode == 0, status.stderr
    assert f"(pid {served.proc.pid})" in status.stdout  # the supervisor: the process to signal
    for pid in pids:
        assert f"pid {pid}" in status.stdout


def test_idle_on_one_worker_hears_append_and_smtp_on_the_other(served):
    idler, writer = logged_in_on_two_workers(served)
    idler.command("SELECT INBOX")
    idler.sock.sendall(b"i1 IDLE\r\n")
    assert idler.file.readline().startswith(b"+ ")

    # Measured from the moment the command is sent: an upper bound of the delay after the commit.
    sent = time.monotonic()
    writer.append("INBOX", b"Subject: appended elsewhere\r\n\r\nhello\r\n")
    wait_exists(idler)
    after_append = time.monotonic() - sent
    smtp = smtp_on_worker_other_than(served, serving_worker(served, idler.local_port))
    smtp.ehlo()
    smtp.mail("someone@client.test")
    smtp.rcpt("alice@example.org")
    sent = time.monotonic()
    smtp.data("Subject: by smtp\r\n\r\nhi\r\n")
    wait_exists(idler)
    after_smtp = time.monotonic() - sent
    smtp.quit()
    print(f"\nIDLE on the other worker heard an APPEND {after_append * 1000:.1f} ms, an SMTP delivery "
          f"{after_smtp * 1000:.1f} ms after the client sent it")
    # 100 ms is the goal on an idle machine; under the test suite's load allow more.
    assert after_append < 1.0 and after_smtp < 1.0
    idler.sock.sendall(b"DONE\r\n")
    idler.close()
    writer.close()


def test_a_message_expunged_on_one_worker_still_answers_a_session_on_the_other(served):
    # RFC 2180 §4.1: kept until the reader, served by another process, is told
    reader, expunger = logged_in_on_two_workers(served)
    expunger.command("CREATE Kept")
    for n in range(2):
        expunger.append("Kept", f"Subject: kept {n}\r\n\r\nbody {n}\r\n".encode())
    reader.command("SELECT Kept")
    expunger.command("SELECT Kept")
    expunger.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
    expunger.command("EXPUNGE")
    lines = reader.command("FETCH 1 (BODY.PEEK[TEXT])")
    assert lines[0].startswith(b"* 1 FETCH (BODY[TEXT] {8}") and lines[1] == b"body 0\r\n"
    assert b"* 1 EXPUNGE\r\n" in reader.command("NOOP")
    reader.close()
    expunger.close()


def new_sessions_on_each_worker(proc: ServeProcess) -> list[Imap]:
    """Logged-in IMAP connections, opened until every worker serves one of them."""
    sessions: dict[int, Imap] = {}
    for _ in range(40):
        imap = Imap(proc.port("imap"))
        imap.command(f'LOGIN alice@example.org "{PASSWORD}"')
        pid = serving_worker(proc, imap.local_port)
        if pid in sessions:
            imap.close()
        else:
            sessions[pid] = imap
        if len(sessions) == 2:
            return list(sessions.values())
    raise AssertionError("40 connections in a row went to the same worker")


def inbox_as_a_new_session_sees_it(imap: Imap) -> tuple[bytes, bytes]:
    """(EXISTS of SELECT INBOX, MESSAGES of STATUS INBOX): the two must agree."""
    status = next(line for line in imap.command("STATUS INBOX (MESSAGES)") if line.startswith(b"* STATUS"))
    exists = next(line for line in imap.command("SELECT INBOX") if line.endswith(b" EXISTS\r\n"))
    return exists.split()[1], status.rpartition(b"MESSAGES ")[2].rstrip(b")\r\n")


def test_import_and_restore_beside_the_server_reach_every_workers_sessions_at_once(served, tmp_path):
    """What `kotakpos import mbox` and `restore --user` write while the server runs: an idling
    and a selected session (on different workers) hear of it, and a new session on either
    worker finds it in SELECT as in STATUS, as soon as the command has returned."""
    idler, selected = logged_in_on_two_workers(served)
    for imap in (idler, selected):
        imap.command("SELECT INBOX")  # each worker now keeps INBOX's state
    idler.sock.sendall(b"i1 IDLE\r\n")
    assert idler.file.readline().startswith(b"+ ")

    mbox = tmp_path / "old.mbox"
    mbox.write_bytes(b"".join(b"From ann@old.example Tue Nov 14 22:13:20 2023\nFrom: ann@old.example\n"
                              b"Subject: old %d\n\nBody %d\n\n" % (n, n) for n in range(6)))
    done = run_cli("import", "mbox", str(mbox), "--to", "alice@example.org", "--folder", "INBOX",
                   data_dir=served.data_dir)
    assert done.returncode == 0 and "6 copied" in done.stdout, done.stderr
    assert b"* 6 EXISTS\r\n" in selected.command("NOOP")
    for imap in new_sessions_on_each_worker(served):
        assert inbox_as_a_new_session_sees_it(imap) == (b"6", b"6")
        imap.close()
    idler.sock.settimeout(5)
    assert idler.file.readline() == b"* 6 EXISTS\r\n"

    snapshot = tmp_path / "with-six.sqlite"
    assert run_cli("backup", str(snapshot), data_dir=served.data_dir).returncode == 0
    selected.command("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
    selected.command("EXPUNGE")
    done = run_cli("restore", str(snapshot), "--user", "alice@example.org", data_dir=served.data_dir)
    assert done.returncode == 0 and "4 copied" in done.stdout, done.stderr
    assert b"* 6 EXISTS\r\n" in selected.command("NOOP")
    for imap in new_sessions_on_each_worker(served):
        assert inbox_as_a_new_session_sees_it(imap) == (b"6", b"6")
        imap.close()
    idler.sock.sendall(b"DONE\r\n")
    idler.close()
    selected.close()


def test_a_killed_worker_is_restarted_and_the_other_sessions_go_on(served):
    survivor, victim = logged_in_on_two_workers(served)
    survivor.command("SELECT INBOX")
    victim_pid = serving_worker(served, victim.local_port)
    os.kill(victim_pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: (pids := worker_pids_when_up(served)) and victim_pid not in pids and all(pids),
             timeout=5, what="a new worker")
    restarted_after = time.monotonic() - killed
    assert "killed by signal 9 (SIGKILL); starting it again" in served.log
    survivor.command("NOOP")  # the other worker's session never noticed
    survivor.append("INBOX", b"Subject: after the kill\r\n\r\nstill here\r\n")
    assert restarted_after < 2.0, f"the worker came back after {restarted_after:.1f}s"
    for _ in range(6):  # the new worker serves too
        with smtplib.SMTP("127.0.0.1", served.port("smtp"), timeout=10) as smtp:
            assert smtp.noop()[0] == 250
    survivor.close()
    victim.close()


def test_the_admin_sees_each_workers_restarts_and_how_the_last_one_ended(served):
    before = {w["index"]: w for w in admin_workers(served)}
    assert [w["restarts"] for w in before.values()] == [0, 0]
    assert all(w["last_exit"] is None and w["rss"] >= w["pss"] > 0 for w in before.values())
    os.kill(before[1]["pid"], signal.SIGKILL)
    after = wait_for(lambda: (ws := admin_workers(served)) and "pid" in ws[1] and ws[1]["pid"] != before[1]["pid"] and ws,
                     what="worker 1 to be started again")
    assert after[1]["restarts"] == 1 and after[0]["restarts"] == 0
    assert after[1]["last_exit"]["reason"] == "killed by signal 9 (SIGKILL)"
    assert after[1]["last_exit"]["signal"] == "SIGKILL"
    assert after[0]["pid"] == before[0]["pid"] and after[0]["last_exit"] is None

    status = run_cli("status", data_dir=served.data_dir)
    assert status.returncode == 0, status.stderr
    rows = {line.split()[1]: line for line in status.stdout.splitlines() if line.startswith("  worker ")}
    assert f"pid {after[1]['pid']} " in rows["1"] and "restarts 1, last exit: killed by signal 9 (SIGKILL)" in rows["1"]
    assert f"pid {after[0]['pid']} " in rows["0"] and "restarts 0" in rows["0"] and "last exit" not in rows["0"]
    assert "Workers: 2" in status.stdout


def test_the_servers_uptime_outlives_a_restarted_first_worker(served):
    first = admin_workers(served)[0]
    os.kill(first["pid"], signal.SIGKILL)  # the admin's own process
    after = wait_for(lambda: (ws := admin_workers(served)) and ws[0].get("pid") not in (None, first["pid"]) and ws,
                     what="worker 0 to be started again")
    assert after[0]["restarts"] == 1 and after[0]["last_exit"]["signal"] == "SIGKILL"
    client = admin(served)
    try:
        status = client.status()
    finally:
        client.close()
    assert status["pid"] == served.proc.pid
    assert status["uptime"] > time.time() - after[0]["started"]   # the supervisor's, not the new worker's


def test_the_log_view_has_every_processs_lines_each_with_its_pid(served):
    old = admin_workers(served)[1]["pid"]
    os.kill(old, signal.SIGKILL)  # the supervisor says so, and the new worker says it serves
    new = wait_for(lambda: (ws := admin_workers(served)) and ws[1].get("pid") not in (None, old) and ws[1]["pid"],
                   what="worker 1 to be started again")
    first = admin_workers(served)[0]["pid"]
    with smtplib.SMTP("127.0.0.1", served.port("smtp"), timeout=10) as smtp:
        smtp.noop()

    def lines():
        client = admin(served)
        try:
            return client.log_tail(500)
        finally:
            client.close()
    wait_for(lambda: any(l["pid"] == new and "serving" in l["message"] for l in lines()), what="the new worker's line")
    tail = lines()
    supervisor = served.proc.pid
    assert any(l["pid"] == supervisor and f"(pid {old}) killed by signal 9 (SIGKILL)" in l["message"] for l in tail)
    assert any(l["pid"] == supervisor and f"started again, pid {new}" in l["message"] for l in tail)
    assert any(l["pid"] == first and l["message"].startswith("worker 0 serving") for l in tail)
    # and on stderr every line names its process
    lines_on_stderr = [line for line in served.log.splitlines() if " INFO " in line or " WARNING " in line]
    assert lines_on_stderr and all(re.search(r" kotakpos(\.\w+)?\[\d+\]: ", line) for line in lines_on_stderr)


def test_a_crash_loop_is_slowed_down_and_logged(served):
    cert = served.data_dir / "tls" / "cert.pem"
    good = cert.read_bytes()
    cert.write_text("not a PEM file\n")  # from now on every new worker fails as it starts
    os.kill(worker_pids(served)[1], signal.SIGKILL)
    wait_for(lambda: "the 5. time in a row before or right after it served: starting it again in 1s" in served.log,
             timeout=20, what="the crash loop to be noticed")
    cert.write_bytes(good)  # fixed: the worker comes back after its pause
    wait_for(lambda: (pids := worker_pids_when_up(served)) and all(pids), timeout=20, what="the worker")
    assert served.proc.poll() is None


def test_sighup_reaches_every_worker_and_sigterm_stops_them_all(served):
    pids = worker_pids(served)
    served.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: served.log.count("reloaded TLS certificate") == 2, what="both workers reloading")
    assert "passed SIGHUP on to 2 worker(s)" in served.log
    assert served.terminate() == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or b"zombie" in open(f"/proc/{pid}/status", "rb").read().lower()
    assert served.log.count(f"kotakpos[{served.proc.pid}]: stopped") == 1  # the supervisor, after
    assert all(f"kotakpos[{pid}]: stopped" in served.log for pid in pids)  # its two workers


def test_a_client_arriving_while_busy_workers_stop_is_refused_at_once(served):
    """A session inside DATA keeps its worker up to shutdown_grace (10 s); meanwhile a new
    client is refused, not left in the listening socket's backlog until the end."""
    busy = smtplib.SMTP("127.0.0.1", served.port("smtp"), timeout=10)
    busy.ehlo()
    busy.mail("someone@client.test")
    busy.rcpt("alice@example.org")
    assert busy.docmd("DATA")[0] == 354
    served.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping 2 worker(s)" in served.log, what="the stop to begin")

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", served.port("imap")), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False
    wait_for(refused, timeout=3.0, what="a new client to be refused")
    assert served.proc.poll() is None  # still waiting for the busy session
    busy.close()
    assert served.terminate() == 0
    assert "Traceback" not in served.log and "Bad file descriptor" not in served.log


def test_a_second_supervisor_on_the_same_folder_is_refused(served):
    second = ServeProcess(served.data_dir, offset=served.offset + 500)
    assert second.proc.wait(30) != 0
    assert "in use by a running Kotakpos server" in second.log
    assert len(worker_pids(served)) == 2  # the first one serves on


def test_a_worker_that_fails_to_start_fails_the_start(tmp_path):
    data = tmp_path / "data"
    prepare(data)
    (data / "tls").mkdir(mode=0o700)
    for name in ("cert.pem", "key.pem"):  # each worker loads the certificate, and cannot
        (data / "tls" / name).write_text("not a PEM file\n")
    proc = ServeProcess(data)
    assert proc.proc.wait(30) != 0
    assert "while starting" in proc.log and " ready " not in proc.log
    assert not (data / "workers" / "0.sock").exists()


def test_one_worker_is_one_process(tmp_path):
    data = tmp_path / "data"
    prepare(data, NO_DNS_CONFIG + "[server]\nworkers = 1\n")
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        assert worker_pids(proc) == [proc.proc.pid]
        assert "workers=" not in proc.log
    finally:
        assert proc.terminate() == 0


def test_the_default_is_a_worker_per_cpu(tmp_path):
    data = tmp_path / "data"
    prepare(data, NO_DNS_CONFIG)
    proc = ServeProcess(data)
    cpus = len(os.sched_getaffinity(0))
    try:
        proc.wait_ready()
        pids = worker_pids(proc)
        assert len(set(pids)) == cpus
        ready = next(line for line in proc.log_lines if " ready " in line)
        assert (f"workers={cpus}" in ready) if cpus > 1 else ("workers=" not in ready)
    finally:
        assert proc.terminate() == 0


def cpus_of_every_thread(pid: int) -> set[frozenset[int]]:
    """The CPU mask of each of the process's threads, as the kernel lists them."""
    masks = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            masks.add(frozenset(os.sched_getaffinity(int(task))))
        except OSError:  # a thread that ended meanwhile
            pass
    return masks


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux's CPU masks")
def test_each_worker_and_every_thread_it_starts_keeps_to_a_cpu_of_its_own(served):
    # A session thread is started for the client, after the worker pinned itself.
    with smtplib.SMTP("127.0.0.1", served.port("smtp"), timeout=10) as smtp:
        smtp.ehlo()
        cpus = sorted(os.sched_getaffinity(0))
        masks = [cpus_of_every_thread(pid) for pid in worker_pids(served)]
    assert all(len(mask) == 1 for mask in masks), masks
    assert {next(iter(mask)) for mask in masks} == {frozenset({cpus[0]}), frozenset({cpus[1 % len(cpus)]})}
    assert cpus_of_every_thread(served.proc.pid) == {frozenset(cpus)}  # the supervisor stays free


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux's CPU masks")
@pytest.mark.parametrize("pinned", [True, False])
def test_a_single_process_keeps_to_one_cpu_unless_told_not_to(tmp_path, pinned):
    data = tmp_path / "data"
    prepare(data, NO_DNS_CONFIG + f"[server]\nworkers = 1\npin_workers = {str(pinned).lower()}\n")
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        cpus = sorted(os.sched_getaffinity(0))
        assert cpus_of_every_thread(proc.proc.pid) == {frozenset(cpus[:1] if pinned else cpus)}
    finally:
        assert proc.terminate() == 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or "GLIBC_TUNABLES" in os.environ,
                    reason="a glibc tunable, set by the server itself")
def test_every_process_runs_without_the_per_thread_malloc_cache(served):
    # Each idle session's thread would keep tens of KiB in that cache: 1,000 idle IMAP
    # clients took 150 MB instead of 80 (bench/README.md).
    pids = [served.proc.pid, *worker_pids(served)]
    assert len(set(pids)) == 3
    for pid in pids:
        assert environment(pid).get("GLIBC_TUNABLES") == MALLOC_TUNABLES, pid



def test_what_one_worker_acknowledged_the_other_answers_at_once(served):
    # No waiting between the two clients: the reader's command comes a moment after the
    # writer's OK and must already show the change (docs/ARCHITECTURE.md, "Read your writes").
    reader, writer = logged_in_on_two_workers(served)
    writer.command("CREATE Other")
    writer.append("INBOX", b"Subject: first\r\n\r\nbody\r\n")
    assert b"* 1 EXISTS\r\n" in reader.command("SELECT INBOX")
    writer.command("SELECT INBOX")
    for n in range(1, 51):
        writer.append("INBOX", f"Subject: round {n}\r\n\r\nbody {n}\r\n".encode())
        assert b"* 2 EXISTS\r\n" in reader.command("NOOP"), n
        writer.command("STORE 2 +FLAGS.SILENT (\\Flagged)")
        assert any(b"FETCH" in line and b"\\Flagged" in line for line in reader.command("NOOP")), n
        assert reader.command("SEARCH FLAGGED")[0] == b"* SEARCH 2\r\n", n
        writer.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
        writer.command("EXPUNGE")
        assert b"* 1 EXPUNGE\r\n" in reader.command("NOOP"), n
        writer.command("STORE 1 -FLAGS.SILENT (\\Flagged)")
        assert reader.command("SEARCH FLAGGED")[0] == b"* SEARCH\r\n", n
        writer.append("Other", f"Subject: other {n}\r\n\r\nbody {n}\r\n".encode())
        assert f"(MESSAGES {2 * n - 1})".encode() in reader.command("STATUS Other (MESSAGES)")[0], n
        writer.append("Other", f"Subject: other {n}b\r\n\r\nbody {n}\r\n".encode())
        assert f"* {2 * n} EXISTS\r\n".encode() in reader.command("EXAMINE Other"), n
        writer.append("INBOX", f"Subject: round {n}b\r\n\r\nbody {n}\r\n".encode())
        assert b"* 2 EXISTS\r\n" in reader.command("SELECT INBOX"), n
        writer.command("STORE 2 +FLAGS.SILENT (\\Deleted)")
        writer.command("EXPUNGE")
        assert b"* 2 EXPUNGE\r\n" in reader.command("NOOP"), n
    reader.close()
    writer.close()



def test_an_alias_the_admin_added_is_known_at_once_to_smtp_on_the_other_worker(served):
    client = admin(served)
    first_pid = client.workers()[0]["pid"]  # the admin's worker
    for connection in range(4):
        smtp = smtp_on_worker_other_than(served, first_pid)
        smtp.ehlo()
        for n in range(8):  # each unknown recipient counts as an error: fewer than max_errors
            alias = f"sales{connection}-{n}@example.org"
            smtp.mail("someone@client.test")
            assert smtp.rcpt(alias)[0] == 550  # unknown, and remembered so by that worker
            smtp.rset()
            client.add_alias(alias, ["alice@example.org"])
            smtp.mail("someone@client.test")
            assert smtp.rcpt(alias)[0] == 250, alias
            smtp.rset()
        smtp.quit()
    client.close()



def test_pop3_on_one_worker_hears_at_once_of_an_expunge_acknowledged_on_the_other(served):
    imap = Imap(served.port("imap"))
    imap.command(f'LOGIN alice@example.org "{PASSWORD}"')
    imap.command("SELECT INBOX")
    rounds = 200
    for uid in range(1, 2 * rounds + 1):
        imap.append("INBOX", f"Subject: message {uid}\r\n\r\nbody\r\n".encode())
    pop = pop3_on_worker_other_than(served, serving_worker(served, imap.local_port))
    for k in range(1, rounds + 1):  # message number k is UID k
        assert pop.retr(2 * k - 1)[0].startswith(b"+OK")  # and reads the next one ahead
        imap.command(f"UID STORE {2 * k} +FLAGS.SILENT (\\Deleted)")
        imap.command(f"UID EXPUNGE {2 * k}")
        with pytest.raises(poplib.error_proto, match="-ERR"):
            pop.retr(2 * k)
    pop.quit()
    imap.close()
