"""``kotakpos serve`` as a user runs it: first start, restart, TLS, errors, SIGTERM."""

import socket
import ssl
import stat
import tomllib

from tests.system.process import DEFAULT_PORTS, ServeProcess, run_cli


def tls_handshake(port: int, cafile) -> str:
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.version()


def test_first_start_initialises_everything_and_a_second_start_reuses_it(tmp_path):
    data = tmp_path / "data"
    proc = ServeProcess(data, dns_off=False)  # the built-in defaults, as a newcomer gets them
    try:
        proc.wait_ready()
        config_text = (data / "kotakpos.toml").read_text()
        tomllib.loads(config_text)  # the sample is valid TOML
        for key in ("hostname", "port_offset", "message_size", "allow_plaintext", "max_connections_per_ip"):
            assert f"# {key} =" in config_text
        key = data / "tls" / "key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (data / "kotakpos.sqlite").exists()
        for name in ("smtps", "pop3s", "imaps"):
            assert tls_handshake(proc.port(name), data / "tls" / "cert.pem") in ("TLSv1.2", "TLSv1.3")
        for name in DEFAULT_PORTS:
            assert f"{name}=127.0.0.1:{proc.port(name)}" in proc.log
        cert_before = (data / "tls" / "cert.pem").read_bytes()
        assert run_cli("domain", "add", "example.org", data_dir=data).returncode == 0
    finally:
        assert proc.terminate() == 0
    assert "stopped" in proc.log

    again = ServeProcess(data)
    try:
        again.wait_ready()
        assert (data / "tls" / "cert.pem").read_bytes() == cert_before
        assert "self-signed" not in again.log
        listed = run_cli("domain", "list", data_dir=data)
        assert listed.stdout.split() == ["example.org"]
    finally:
        assert again.terminate() == 0


def test_a_port_in_use_is_named_with_the_fix(tmp_path):
    proc = ServeProcess(tmp_path / "one")
    try:
        proc.wait_ready()
        # A second server on the same ports must fail, naming the port and what to do.
        result = run_cli("serve", "--listen", "127.0.0.1", "--port-offset", str(proc.offset),
                         data_dir=tmp_path / "two")
        assert result.returncode != 0
        assert f"127.0.0.1:{proc.port('smtp')}" in result.stderr
        assert "--port-offset" in result.stderr
    finally:
        proc.terminate()


def test_a_bad_config_names_the_key_and_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "kotakpos.toml").write_text("[server]\nhostname = \"mx.example.org\"\n\n[limits]\nmessage_size = \"big\"\n")
    result = run_cli("serve", "--port-offset", "30000", data_dir=data)
    assert result.returncode != 0
    assert "kotakpos.toml:5" in result.stderr and "limits.message_size" in result.stderr
    (data / "kotakpos.toml").write_text("[server]\nhostnme = \"x\"\n")
    result = run_cli("domain", "list", data_dir=data)
    assert result.returncode != 0 and "kotakpos.toml:2" in result.stderr and "server.hostnme" in result.stderr


def test_a_config_file_named_by_env_holds_only_changes(tmp_path):
    data = tmp_path / "data"
    cfg = tmp_path / "custom.toml"
    cfg.write_text("[server]\nhostname = \"mx.custom.test\"\n")
    proc = ServeProcess(data, env={"KOTAKPOS_CONFIG": str(cfg)})
    try:
        proc.wait_ready()
        assert not (data / "kotakpos.toml").exists()
        status = run_cli("status", data_dir=data)
        assert "mx.custom.test" in status.stdout
    finally:
        proc.terminate()


def test_status_with_and_without_a_server(tmp_path):
    data = tmp_path / "data"
    result = run_cli("status", data_dir=data)
    assert result.returncode != 0 and "No Kotakpos server is running" in result.stdout
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        with socket.create_connection(("127.0.0.1", proc.port("imap")), timeout=5) as client:
            client.recv(100)
            result = run_cli("status", data_dir=data)
        assert result.returncode == 0, result.stderr
        assert "Listeners:" in result.stdout and f"127.0.0.1:{proc.port('imaps')}" in result.stdout
        assert "Store:" in result.stdout
    finally:
        proc.terminate()


def test_sigterm_lets_the_server_exit_cleanly_with_clients_connected(tmp_path):
    proc = ServeProcess(tmp_path / "data")
    proc.wait_ready()
    clients = [socket.create_connection(("127.0.0.1", proc.port("pop3")), timeout=5) for _ in range(3)]
    try:
        assert proc.terminate(timeout=20) == 0
        assert "stopped" in proc.log
    finally:
        for c in clients:
            c.close()


def test_a_route_without_a_port_stops_the_start_with_key_and_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "kotakpos.toml").write_text('[server]\nhostname = "mx.example.org"\n\n[mta.routes]\n'
                                        '"partner.example" = "mx.partner.example"\n')
    result = run_cli("serve", "--port-offset", "30000", data_dir=data)
    assert result.returncode != 0
    assert ("kotakpos.toml:5: 'mta.routes' entry 'partner.example' must be \"host:port\" "
            "(e.g. \"mx.example.org:25\"), not 'mx.partner.example'") in result.stderr
