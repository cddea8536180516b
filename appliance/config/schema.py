"""The configuration schema: every setting, its default and what it means.

Each section is a frozen dataclass; each field carries its documentation in
``metadata["doc"]``. The loader validates a TOML file against these classes, and the
commented sample ``kotakpos.toml`` is generated from them, so the documentation and the
code cannot drift apart.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


def setting(default, doc: str, choices: tuple = (), values: str = "", minimum=None, maximum=None, **kw):
    """A config field with its documentation (mutable defaults are copied per instance).

    ``choices``: the only values allowed (an enumerated setting). ``values``: the form each
    value of a table setting must have; "host:port" is the one the loader knows.
    ``minimum``, ``maximum``: the range of a number (either end may be left open).
    """
    metadata = {"doc": doc, "choices": choices, "values": values, "minimum": minimum, "maximum": maximum}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


@dataclass(frozen=True)
class ServerSection:
    hostname: str = setting(socket.gethostname(), "Name this server gives itself in greetings, Received headers and its TLS certificate.")
    listen: list = setting([""], "Addresses to listen on; \"\" means every address (IPv6 and IPv4).")
    port_offset: int = setting(0, "Added to every port, so an unprivileged user can run the server (10000 gives 10025, 10143, ...).")
    max_connections: int = setting(2000, "Connections served at once across all listeners; past it a new client gets its protocol's 'too busy' reply.")
    max_connections_per_ip: int = setting(50, "Connections at once from one address (the trusted networks of [auth] are exempt).")
    workers: int = setting(0, "Worker processes that serve every port, each with its own threads, so the server uses more than one core. 0 means one per CPU; 1 is a single process. With more than one, `kotakpos serve` is a supervisor: it binds the ports, starts the workers and restarts one that dies; they share the store and hear each other's changes at once. Takes a restart.")
    pin_workers: bool = setting(True, "Keep each worker process, with every thread it starts, on one CPU: worker k on the k-th CPU the server may use (a single process on the first). Python runs one thread of a process at a time, so a process spread over several CPUs gains nothing and pays for waking its threads across CPUs at every hand-over. Turn it off when other busy programs on the box need the CPUs the workers hold. Takes a restart.")
    shutdown_grace: float = setting(10.0, "Seconds that transactions in flight may take to finish when the server is asked to stop.")
    log_file: str = setting("", "Also write the log to this file (relative to the data folder); \"\" logs to stderr only.")
    log_level: str = setting("info", "How much the log says: debug, info, warning or error.", choices=("debug", "info", "warning", "error"))
    admin_address: str = setting("", "Where mail to postmaster@ every local domain goes (RFC 5321 §4.5.1) unless an alias or user says otherwise; \"\" means the first user created.")


@dataclass(frozen=True)
class PortsSection:
    smtp: int = setting(25, "Inbound mail from other servers (MX).")
    submission: int = setting(587, "Mail submission by users, STARTTLS then AUTH.")
    smtps: int = setting(465, "Mail submission over implicit TLS.")
    pop3: int = setting(110, "POP3, STLS available.")
    pop3s: int = setting(995, "POP3 over implicit TLS.")
    imap: int = setting(143, "IMAP, STARTTLS available.")
    imaps: int = setting(993, "IMAP over implicit TLS.")
    managesieve: int = setting(4190, "ManageSieve (RFC 5804): users manage their Sieve filters from their mail client; STARTTLS, then AUTHENTICATE.")


@dataclass(frozen=True)
class TlsSection:
    cert_file: str = setting("tls/cert.pem", "Certificate chain (PEM), relative to the data folder. A self-signed one is made on first start.")
    key_file: str = setting("tls/key.pem", "Private key (PEM), relative to the data folder; must not be readable by others.")


@dataclass(frozen=True)
class LimitsSection:
    message_size: int = setting(37748736, "Largest message accepted, in bytes (SMTP SIZE, IMAP APPEND). 36 MiB, as Exchange Online receives: Gmail and Outlook let their users attach 25 MB, and base64 makes that about 34 MB on the wire.")
    idle_timeout_unauthenticated: float = setting(60.0, "Seconds an IMAP, POP3 or ManageSieve client may stay silent before it logs in.")


@dataclass(frozen=True)
class AuthSection:
    allow_plaintext: bool = setting(False, "Allow passwords over connections without TLS from trusted networks (a webmail on the same LAN). Never for the internet.")
    trusted_networks: list = setting([], "Networks (CIDR) that may relay without authentication and are never blocked wholesale, e.g. [\"192.168.1.0/24\"].")
    fail_delay_max: float = setting(5.0, "Longest delay, in seconds, before answering a failed login; each failure from an address doubles it.")
    block_after: int = setting(10, "Failed logins from one address before it is refused for a while.")
    block_seconds: int = setting(900, "How long an address that kept failing is refused.")
    require_app_passwords: bool = setting(False, "Mail clients (IMAP, POP3, SMTP submission) must log in with an app password made on the account page; the main password then opens only the account page.")


@dataclass(frozen=True)
class SmtpSection:
    max_recipients: int = setting(100, "Recipients per message.")
    max_messages_per_session: int = setting(1000, "Messages per connection.")
    max_errors: int = setting(10, "Bad commands before the server answers 421 and closes.")
    command_line_limit: int = setting(2048, "Longest command line accepted (RFC 5321 asks for 512; clients sometimes send more).")
    command_timeout: float = setting(300.0, "Seconds to wait for the next command (RFC 5321 §4.5.3.2.7: 5 minutes).")
    data_timeout: float = setting(180.0, "Seconds to wait for each block of message data (RFC 5321 §4.5.3.2.5: 3 minutes).")
    stress_load: float = setting(0.75, "Share of server.max_connections in use from which SMTP runs in stress mode, like Postfix's: every wait for the client is cut to stress_timeout.")
    stress_timeout: float = setting(10.0, "Seconds to wait for the next command or block of data in stress mode (instead of command_timeout and data_timeout).")
    junk_command_limit: int = setting(100, "NOOP, RSET, HELP, VRFY and EXPN commands without a message accepted before each further one counts as an error.")
    bare_newline: str = setting("reject", "Bare CR or LF inside a message: \"reject\" refuses it with 550 5.5.2; \"normalize\" turns it into CRLF. Only <CRLF>.<CRLF> ever ends a message.", choices=("reject", "normalize"))
    quota_reply: str = setting("temporary", "A recipient whose mailbox is over quota, at RCPT: \"temporary\" answers 452 4.2.2 (the sender retries for days, time to make room); \"permanent\" answers 552 5.2.2 (the sender gets a bounce at once).", choices=("temporary", "permanent"))


@dataclass(frozen=True)
class Pop3Section:
    idle_timeout: float = setting(600.0, "Seconds a logged-in POP3 client may stay silent (RFC 1939: at least 10 minutes).")
    max_errors: int = setting(10, "Bad commands before the session is closed.")
    deleted_to_trash: bool = setting(False, "Move messages deleted by POP3 into Trash instead of erasing them.")


@dataclass(frozen=True)
class ImapSection:
    idle_timeout: float = setting(1800.0, "Seconds a logged-in IMAP client may stay silent (RFC 3501: at least 30 minutes).")
    max_errors: int = setting(20, "Bad commands in a row before the session is closed.")


@dataclass(frozen=True)
class ManagesieveSection:
    max_script_size: int = setting(1048576, "Largest Sieve script a user may store, in bytes (1 MiB, as Pigeonhole's sieve_max_script_size): ManageSieve's HAVESPACE and PUTSCRIPT and the account page's editor refuse a bigger one with this limit.", minimum=1, maximum=16777216)
    max_scripts: int = setting(50, "Sieve scripts a user may keep (one of them active), over ManageSieve and on the account page.", minimum=1, maximum=10000)


@dataclass(frozen=True)
class DnsSection:
    resolver: str = setting("", "DNS server for MX lookups, SPF/DKIM/DMARC checks and `kotakpos check`: \"\" uses the system's, \"ip\" or \"ip:port\" one server, \"none\" never asks DNS (outbound mail then needs [mta] routes or a smarthost; filter checks record temperror).")
    timeout: float = setting(10.0, "Seconds one DNS lookup for outbound mail or `kotakpos check` may take (the filters use [mda] dns_timeout).")


@dataclass(frozen=True)
class MtaSection:
    routes: dict = setting({}, "Static routes, like Postfix's transport map: domain = \"host:port\".", values="host:port")
    smarthost: str = setting("", "Relay all outbound mail through this host:port (an ISP's server) instead of looking up MX records.")
    remote_port: int = setting(25, "Port of the MX servers found in DNS (25; only a tunnel past a blocked port 25 needs another).")
    smarthost_tls: str = setting("starttls", "How to reach the smarthost: \"starttls\" (port 587, STARTTLS required) or \"implicit\" (port 465, TLS from the first byte).", choices=("starttls", "implicit"))
    smarthost_user: str = setting("", "Login name for AUTH at the smarthost; \"\" sends without AUTH.")
    smarthost_password: str = setting("", "Password for AUTH at the smarthost (sent only over TLS).")
    tls_cafile: str = setting("", "Extra CA certificates (PEM) to trust when a peer's certificate must be verified (smarthost, tls_verify_domains); \"\" uses the system's.")
    tls_verify_domains: list = setting([], "Recipient domains whose servers must offer STARTTLS with a verified certificate; other domains get opportunistic TLS.")
    mta_sts: bool = setting(True, "Fetch, cache and obey the MTA-STS policies (RFC 8461) of destination domains: verified TLS to the MX hosts they list.")
    mta_sts_port: int = setting(443, "Port of the HTTPS servers that publish MTA-STS policies (443; tests use another).")
    workers: int = setting(16, "Outbound connections at once, across all destinations.")
    connections_per_destination: int = setting(2, "Outbound connections at once to one destination (a domain's MX, a static route or the smarthost).")
    messages_per_connection: int = setting(100, "Queued messages one connection may carry before it is closed and the rest wait for the next one.")
    retry_intervals: list = setting(["1m", "5m", "15m", "30m", "1h", "2h", "4h"], "Waits between delivery attempts after a temporary failure (s, m, h, d); the last one repeats.")
    max_queue_time: float = setting(432000.0, "Seconds a message may wait in the queue (5 days); past it a temporary failure becomes a bounce.")
    delay_warning: float = setting(14400.0, "Seconds after which the sender is told that a message is still waiting (RFC 3464 delay DSN); 0 never warns.")
    connect_timeout: float = setting(30.0, "Seconds to wait for a TCP connection to a remote server.")
    command_timeout: float = setting(300.0, "Seconds to wait for the greeting and the replies to EHLO, MAIL and RCPT (RFC 5321 §4.5.3.2.1-3: 5 minutes).")
    data_start_timeout: float = setting(120.0, "Seconds to wait for the 354 after DATA (RFC 5321 §4.5.3.2.4: 2 minutes).")
    data_block_timeout: float = setting(180.0, "Seconds a send of message data may take (RFC 5321 §4.5.3.2.5: 3 minutes).")
    data_end_timeout: float = setting(600.0, "Seconds to wait for the reply after the final dot (RFC 5321 §4.5.3.2.6: 10 minutes).")
    srs_domain: str = setting("", "Domain for Sender Rewriting Scheme addresses on forwarded mail (it must route to this server); \"\" uses server.hostname.")


@dataclass(frozen=True)
class MdaSection:
    filters: list = setting(["virus", "auth", "spam", "rules", "receipts"], "Filters every locally delivered message passes, in order: virus (built-in checks and clamd), auth (SPF, DKIM, DMARC, ARC), spam (heuristics, Bayes, spamd), rules (each user's Sieve script), receipts (delivery and read receipts); greylist (RFC 6647, off by default) may go first. [] delivers unfiltered.",
                           choices=("greylist", "virus", "auth", "spam", "rules", "receipts"))
    greylist_delay: float = setting(300.0, "Greylisting (add \"greylist\" first to filters; off by default): seconds before a first-time sender's retry is accepted.")
    greylist_window: float = setting(86400.0, "Greylisting: seconds a refused first attempt is remembered, waiting for its retry.")
    greylist_keep: float = setting(3110400.0, "Greylisting: seconds a sender that retried properly passes without delay (36 days).")
    time_budget: float = setting(10.0, "Seconds the filters that ask other hosts (clamd, spamd, DNS) may take per message while the SMTP client waits; past it the message goes to INBOX unfiltered (and the failure is logged).")
    virus_action: str = setting("reject", "What happens to infected mail and blocked attachments: \"reject\" (554 5.7.0 at the end of DATA) or \"quarantine\" (held for `kotakpos quarantine`).", choices=("reject", "quarantine"))
    blocked_extensions: list = setting(["exe", "scr", "js", "vbs", "bat", "cmd", "jar", "com", "pif", "docm", "xlsm", "pptm", "dotm", "xltm"], "Attachment file name extensions refused like a virus (also inside zip archives).")
    max_mime_depth: int = setting(20, "MIME nesting deeper than this is treated as a MIME bomb and refused like a virus.")
    max_mime_parts: int = setting(500, "More MIME parts than this is treated as a MIME bomb.")
    max_zip_members: int = setting(1000, "Files looked at inside one zip archive (nested zips count); a larger archive is scanned up to this.")
    clamd: str = setting("", "clamd socket: \"unix:/run/clamav/clamd.ctl\" or \"host:port\"; \"\" uses only the built-in checks.")
    clamd_timeout: float = setting(10.0, "Seconds a clamd scan may take; on failure the message is delivered and the failure logged.")
    dns_timeout: float = setting(1.5, "Seconds one DNS question may take. After a timeout DNS counts as unreachable for a minute and checks record temperror at once.")
    dnsbl: list = setting([], "DNS blocklists asked about the client's IPv4 address, e.g. [\"zen.spamhaus.org\"]; each listing adds dnsbl_score.")
    dnsbl_score: float = setting(3.0, "Spam score added per blocklist that lists the client.")
    junk_score: float = setting(5.0, "From this spam score on, a message is filed into the recipient's Junk folder.")
    reject_score: float = setting(15.0, "From this spam score on, a message is refused at the end of DATA (550 5.7.1).")
    spamd: str = setting("", "SpamAssassin spamd as \"host:port\" for an extra opinion; \"\" does without.")
    spamd_timeout: float = setting(5.0, "Seconds a spamd check may take.")
    vacation_days: int = setting(7, "Days between two vacation replies to one sender when the script does not say (RFC 5230 :days).")
    arc_trusted_sealers: list = setting([], "ARC (RFC 8617): domains whose ARC seal you trust as forwarders, e.g. [\"google.com\", \"outlook.com\"]. Mail that fails SPF or DMARC but carries a valid ARC chain last sealed by one of them is not scored for those failures. [] trusts none (ARC is still checked and recorded).")
    read_receipts: str = setting("client", "Default read-receipt (MDN) policy of a user: \"client\" (the mail client asks), \"auto\" (the server sends it on first read), \"never\". Each user may choose otherwise (kotakpos receipts ADDRESS --policy).", choices=("client", "auto", "never"))


@dataclass(frozen=True)
class BackupSection:
    interval: float = setting(86400.0, "Seconds between snapshots of the store (SQLite's online backup, each verified after writing); 0 takes none.")
    keep: int = setting(7, "How many snapshots to keep; older ones are deleted after a new one is verified.")
    folder: str = setting("snapshots", "Folder for the snapshots, relative to the data folder.")


@dataclass(frozen=True)
class WebSection:
    enabled: bool = setting(True, "Serve the account page (HTTPS), mail client set-up (Thunderbird autoconfig, Outlook Autodiscover, Apple profiles) and the MTA-STS policy over HTTP and HTTPS.")
    http_port: int = setting(80, "HTTP port (plus server.port_offset).")
    https_port: int = setting(443, "HTTPS port (plus server.port_offset), with the server's TLS certificate.")
    mta_sts_mode: str = setting("testing", "MTA-STS policy mode (RFC 8461): \"testing\", \"enforce\" or \"none\".", choices=("testing", "enforce", "none"))
    mta_sts_max_age: int = setting(604800, "Seconds senders may cache the MTA-STS policy.")


@dataclass(frozen=True)
class CheckSection:
    public_address: str = setting("", "The address the internet sees this server at, for `kotakpos check` (its reverse DNS must name server.hostname); \"\" skips that check.")


@dataclass(frozen=True)
class AcmeSection:
    enabled: bool = setting(False, "Get the TLS certificate from an ACME CA (Let's Encrypt) by HTTP-01 on port 80 (plus server.port_offset), renewed 30 days before expiry. The name(s) must point to this server in DNS.")
    directory: str = setting("https://acme-v02.api.letsencrypt.org/directory", "The CA's ACME directory URL.")
    email: str = setting("", "Contact address given to the CA (expiry warnings); \"\" gives none.")
    names: list = setting([], "Names the certificate covers besides server.hostname, e.g. [\"autoconfig.example.org\", \"mta-sts.example.org\"].")
    renew_days: int = setting(30, "Renew when the certificate ends within this many days.")
    retry_interval: float = setting(3600.0, "Seconds to wait after a failed order before trying again (meanwhile the current or a self-signed certificate is served).")
    ca_file: str = setting("", "CA certificates (PEM) to trust for the ACME server's own HTTPS (a private CA, Pebble in tests); \"\" uses the system's.")


@dataclass(frozen=True)
class Config:
    server: ServerSection = field(default_factory=ServerSection)
    ports: PortsSection = field(default_factory=PortsSection)
    tls: TlsSection = field(default_factory=TlsSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    smtp: SmtpSection = field(default_factory=SmtpSection)
    pop3: Pop3Section = field(default_factory=Pop3Section)
    imap: ImapSection = field(default_factory=ImapSection)
    managesieve: ManagesieveSection = field(default_factory=ManagesieveSection)
    dns: DnsSection = field(default_factory=DnsSection)
    mta: MtaSection = field(default_factory=MtaSection)
    mda: MdaSection = field(default_factory=MdaSection)
    backup: BackupSection = field(default_factory=BackupSection)
    web: WebSection = field(default_factory=WebSection)
    check: CheckSection = field(default_factory=CheckSection)
    acme: AcmeSection = field(default_factory=AcmeSection)
