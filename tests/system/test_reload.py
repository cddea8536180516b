"""SIGHUP: the running server reads its config again, applies what is safe and names the rest."""

import signal
import smtplib
import time

from tests.system.process import NO_DNS_CONFIG, ServeProcess


def wait_for_log(proc: ServeProcess, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in proc.log:
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{proc.log}"
        time.sleep(0.05)
    return next(line for line in proc.log_lines if text in line)


def advertised_size(proc: ServeProcess) -> int:
    with smtplib.SMTP("127.0.0.1", proc.port("smtp"), timeout=10) as smtp:
        smtp.ehlo("client.test")
        return int(smtp.esmtp_features["size"])


def test_sighup_applies_the_new_config_and_names_what_needs_a_restart(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    config = data / "kotakpos.toml"
    config.write_text(NO_DNS_CONFIG + "[limits]\nmessage_size = 1000000\n")
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        assert advertised_size(proc) == 1000000
        config.write_text(NO_DNS_CONFIG + '[limits]\nmessage_size = 2000000\n[mta]\nsmarthost = "smtp.isp.example:587"\n')
        proc.proc.send_signal(signal.SIGHUP)
        applied = wait_for_log(proc, "reloaded the config")
        assert "applied limits.message_size" in applied
        restart = wait_for_log(proc, "take effect only after a restart")
        assert "WARNING" in restart and "mta.smarthost" in restart and "limits" not in restart
        assert advertised_size(proc) == 2000000  # a new session has the new limit

        config.write_text(NO_DNS_CONFIG + '[server]\nlog_level = "verbose"\n[limits]\nmessage_size = 3000000\n')
        proc.proc.send_signal(signal.SIGHUP)
        failed = wait_for_log(proc, "config reload failed, keeping the running settings")
        assert "'server.log_level' cannot be 'verbose'" in failed
        assert advertised_size(proc) == 2000000
        assert proc.proc.poll() is None  # a broken file never stops a running server
    finally:
        assert proc.terminate() == 0
