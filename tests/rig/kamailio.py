"""Kamailio as the PBX: a real registrar and proxy the phone registers with and calls through.

The config is generated per instance into its work dir: digest auth from a db_text subscriber
table, usrloc in memory, record-routing so in-dialog requests pass through it, and one xlog line
per request received and per reply relayed or sent, which `requests()`/`replies()` parse so tests
can assert on what really went over the wire. The lines (in kamailio.log, after Kamailio's own
` N(PID) NOTICE: <script>: ` prefix; `<null>` for an absent value):

    RIGSIP request ts=<epoch.usec> method=M from=USER to=USER ruri=URI src=IP:PORT proto=udp|tcp
        cseq=N callid=ID
    RIGSIP reply ts=<epoch.usec> kind=relay|local code=NNN method=M from=USER to=USER
        src=IP:PORT dst=IP:PORT|- proto=udp|tcp cseq=N callid=ID reason=PHRASE (may have spaces)

(one line each). kind=relay: received from downstream (and relayed upstream unless tm absorbs
it, like the 200 to a forwarded CANCEL); kind=local: sent by Kamailio itself (401/407
challenges, 403 bad credentials, 200 to REGISTER, 404, 408 timeouts, 200 to CANCEL; not 100).

Policy: REGISTER needs digest auth (realm = domain = 127.0.0.1); initial requests whose From is
one of our users need proxy auth (407); wrong credentials get 403, not another challenge; a
request for a user with no binding gets 404; requests for any other host:port get
"404 Domain Not Served" and are never forwarded, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, TypeVar

from tests.rig import RigError, live_peers, module_dir, signal_group
from tests.rig.ports import HOST, free_port

_T = TypeVar("_T", "SipRequestLog", "SipReplyLog")

KAMAILIO = "kamailio"
KAMCMD = "kamcmd"
MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
)

DEFAULT_USERS: Mapping[str, str] = {
    f"{n}": f"secret-{n}" for n in ("1001", "1002", "1003", "1004", "1005", "1006", "1007")
}

# Marker that starts every line our xlog calls write; the rest is `key=value` fields.
LOG_MARKER = "RIGSIP"
_FIELD = re.compile(r"(\w+)=(\S*)")


@dataclass(frozen=True)
class SipRequestLog:
    """One request Kamailio received, as its xlog line recorded it."""

    time: float
    method: str
    from_user: str
    to_user: str
    ruri: str
    source: str  # "ip:port"
    transport: str  # "udp" / "tcp"
    cseq: str
    call_id: str
    user_agent: str  # the User-Agent header, "" when absent


@dataclass(frozen=True)
class SipReplyLog:
    """One reply Kamailio relayed (kind "relay", received from downstream) or sent itself
    (kind "local", e.g. 401/407 challenges, 200 for REGISTER, 404)."""

    time: float
    kind: str
    code: int
    reason: str
    method: str  # from CSeq
    from_user: str
    to_user: str
    source: str  # "ip:port" the reply came from (Kamailio's own socket for local replies)
    destination: str  # "ip:port" a local reply was sent to; "" for relayed ones
    transport: str
    cseq: str
    call_id: str


class _PortInUseError(RigError):
    """Another process took the port between free_port() and Kamailio's bind."""


def _null(value: str) -> str:
    return "" if value in ("<null>", "-") else value


def _status(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _select(entries: list[_T], since: float, **wanted: object) -> list[_T]:
    """The entries logged at `since` or later whose fields equal every criterion given (None
    means any)."""
    return [
        e
        for e in entries
        if e.time >= since and all(v is None or getattr(e, k) == v for k, v in wanted.items())
    ]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _listening(port: int, table: str) -> bool:
    """Whether /proc/net/<table> shows 127.0.0.1:port bound (UDP) or listening (TCP)."""
    want = f"0100007F:{port:04X}"
    try:
        with open(f"/proc/net/{table}") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == want and (table != "tcp" or fields[3] == "0A"):
                    return True
    except OSError:
        return False
    return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group. Zombies hold no sockets, and on this
    machine's init they may linger, so `killpg(pgid, 0)` alone would wait for nothing."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces, so split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class Kamailio:
    """A Kamailio registrar/proxy in the foreground on 127.0.0.1, its config and log in `workdir`.

    Users register as `sip:USER@127.0.0.1:PORT` (the domain is the IP; the port is part of every
    AOR so Kamailio recognises its own URIs without a port-less alias).
    """

    def __init__(
        self,
        workdir: Path,
        users: Mapping[str, str] = DEFAULT_USERS,
        port: int | None = None,
        min_expires: int = 2,
        default_expires: int = 60,
        max_expires: int = 3600,
        fr_timer_ms: int = 5000,
        in_dialog_invite_delay_ms: int = 0,
        in_dialog_invite_refusal: int = 0,
        in_dialog_invite_refusals: int = 0,
    ) -> None:
        """`in_dialog_invite_delay_ms`: hold every re-INVITE and ACK that long before relaying
        it (a slow network in mid-call), so a test can act while one is unanswered.
        `in_dialog_invite_refusal`: answer every re-INVITE with this error code itself, as a
        far end or PBX that refuses a hold would; with `in_dialog_invite_refusals`, only that
        many (the first ones), as a far end whose own offer met ours would (491)."""
        self.workdir = Path(workdir)
        self.users: dict[str, str] = dict(users)
        self.host = HOST
        self.domain = HOST
        self._auto_port = port is None
        self._started_once = False
        self.port = port if port is not None else free_port()
        self.min_expires = min_expires
        self.default_expires = default_expires
        self.max_expires = max_expires
        self.fr_timer_ms = fr_timer_ms
        self.in_dialog_invite_delay_ms = in_dialog_invite_delay_ms
        self.in_dialog_invite_refusal = in_dialog_invite_refusal
        self.in_dialog_invite_refusals = in_dialog_invite_refusals
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cfg_path = self.workdir / "kamailio.cfg"
        self.log_path = self.workdir / "kamailio.log"
        self.db_dir = self.workdir / "db"
        self.run_dir = self.workdir / "run"
        self.pid_path = self.run_dir / "kamailio.pid"
        self._short_dir: Path | None = None
        self.ctl_socket = self._ctl_socket_path()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: BinaryIO | None = None
        self._write_db()
        self._write_cfg()

    # ----------------------------------------------------------------- configuration

    @property
    def uri(self) -> str:
        """The registrar/proxy URI, e.g. for an outbound proxy setting."""
        return f"sip:{self.host}:{self.port}"

    def aor(self, user: str) -> str:
        """The address of record of `user` on this PBX."""
        return f"sip:{user}@{self.domain}:{self.port}"

    def _ctl_socket_path(self) -> Path:
        path = self.workdir / "run" / "ctl.sock"
        if len(str(path)) < 100:  # unix socket paths are limited to 108 bytes
            return path
        self._short_dir = Path(tempfile.mkdtemp(prefix="rig-kam-"))
        return self._short_dir / "ctl.sock"

    def _ha1(self, user: str, password: str) -> str:
        return hashlib.md5(f"{user}:{self.domain}:{password}".encode()).hexdigest()

    def _write_db(self) -> None:
        """db_text tables: `version` and `subscriber` with precomputed ha1 (calculate_ha1 off)."""
        self.db_dir.mkdir(parents=True, exist_ok=True)
        (self.db_dir / "version").write_text(
            "id(int,auto) table_name(string) table_version(int)\n0:subscriber:7\n"
        )
        rows = [
            (
                "id(int,auto) username(string) domain(string) password(string) "
                "ha1(string,null) ha1b(string,null)"
            )
        ]
        for i, (user, password) in enumerate(self.users.items(), start=1):
            for ch in ":\\\n":
                if ch in user or ch in password:
                    raise ValueError(f"user {user!r}: ':' '\\' and newlines are not allowed")
            rows.append(f"{i}:{user}:{self.domain}:{password}:{self._ha1(user, password)}:")
        (self.db_dir / "subscriber").write_text("\n".join(rows) + "\n")

    def _write_cfg(self) -> None:
        self.cfg_path.write_text(
            _CONFIG.format(
                mpath=module_dir(MODULE_DIRS, "tm.so", "Kamailio"),
                port=self.port,
                domain=self.domain,
                db_url=f"text://{self.db_dir}",
                ctl=self.ctl_socket,
                min_expires=self.min_expires,
                default_expires=self.default_expires,
                max_expires=self.max_expires,
                fr_timer=self.fr_timer_ms,
                in_dialog_invite_delay_us=self.in_dialog_invite_delay_ms * 1000,
                in_dialog_invite_refusal=self.in_dialog_invite_refusal,
                in_dialog_invite_refusals=self.in_dialog_invite_refusals,
                marker=LOG_MARKER,
                host=self.host,
            )
        )

    # ----------------------------------------------------------------- process control

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 5.0) -> Self:
        """Start and wait until it listens on UDP and TCP and answers on its control socket.

        If the port was picked automatically and another process grabbed it before Kamailio bound
        it, a new port is picked (only on the first start: restart() keeps the port)."""
        if self.running:
            raise RigError("Kamailio is already running")
        if shutil.which(KAMAILIO) is None:
            raise RigError("kamailio is not installed (apt-get install kamailio)")
        attempts = 3 if self._auto_port and not self._started_once else 1
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
            except _PortInUseError:
                if attempt == attempts:
                    raise
                self.port = free_port()
                self._write_cfg()
                continue
            self._started_once = True
            live_peers.add(self)
            return self
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ctl_socket.parent.mkdir(parents=True, exist_ok=True)
        for stale in (self.ctl_socket, self.pid_path):
            stale.unlink(missing_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        log.write(f"==== rig: starting kamailio on {self.host}:{self.port}\n".encode())
        log.flush()
        offset = log.tell()
        self._log_file = log
        cmd = [
            KAMAILIO, "-f", str(self.cfg_path), "-DD", "-E",
            "-l", f"udp:{self.host}:{self.port}", "-l", f"tcp:{self.host}:{self.port}",
            "-P", str(self.pid_path), "-Y", str(self.run_dir), "-m", "32", "-M", "4",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches the children
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._reap()
                with open(self.log_path, "rb") as f:
                    f.seek(offset)
                    in_use = b"Address already in use" in f.read()
                error = _PortInUseError if in_use else RigError
                raise error(
                    f"kamailio exited with {code} while starting on port {self.port};"
                    f" log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if (
                _listening(self.port, "udp")
                and _listening(self.port, "tcp")
                and self.ctl_socket.exists()
                and self._rpc_ok()
            ):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RigError(
                    f"kamailio did not listen on {self.host}:{self.port} within {timeout}s;"
                    f" log {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _rpc_ok(self) -> bool:
        try:
            self.rpc("core.version", timeout=2.0)
        except RigError:
            return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL the whole process group."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._proc.wait(5)
        self._wait_children_gone(timeout)
        self._reap()

    def kill(self) -> None:
        """SIGKILL main process and children at once: a crash, no goodbye on any socket."""
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self._proc.wait(5)
        self._wait_children_gone(5.0)
        self._reap()

    def restart(self, timeout: float = 5.0) -> Self:
        """Stop (if running) and start again on the same port; usrloc is empty afterwards."""
        self.stop()
        deadline = time.monotonic() + timeout
        while _listening(self.port, "udp") or _listening(self.port, "tcp"):
            if time.monotonic() > deadline:
                raise RigError(f"port {self.port} still bound after Kamailio stopped")
            time.sleep(0.02)
        return self.start(timeout=max(1.0, deadline - time.monotonic()))

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        signal_group(self._proc, sig)

    def _wait_children_gone(self, timeout: float) -> None:
        """Children outlive a SIGKILLed parent briefly; make sure none still holds the port."""
        assert self._proc is not None
        pgid = self._proc.pid
        deadline = time.monotonic() + timeout
        while group_members(pgid) and time.monotonic() < deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.01)

    def _reap(self) -> None:
        live_peers.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)  # start() makes it again

    def __enter__(self) -> Self:
        return self.start() if not self.running else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- control socket

    def rpc(self, *args: str, timeout: float = 5.0) -> str:
        """Run one kamcmd RPC over the ctl socket; raises RigError on failure."""
        try:
            out = subprocess.run(
                [KAMCMD, "-s", f"unix:{self.ctl_socket}", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RigError(f"kamcmd {' '.join(args)}: {e}") from e
        if out.returncode != 0 or out.stdout.startswith("error:"):
            raise RigError(f"kamcmd {' '.join(args)}: {out.stdout.strip()} {out.stderr.strip()}")
        return out.stdout

    def bindings(self, user: str) -> list[str]:
        """Contact URIs currently registered for `user` (empty when none)."""
        try:
            out = self.rpc("ul.lookup", "location", f"s:{user}")
        except RigError as e:
            if "404" in str(e) or "not found" in str(e).lower():
                return []
            raise
        return re.findall(r"^\s*Address:\s*(\S+)\s*$", out, flags=re.MULTILINE)

    def wait_for_bindings(self, user: str, count: int, timeout: float) -> list[str]:
        """Wait until `user` has exactly `count` bindings; RigError with what was seen if not."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.bindings(user)
            if len(found) == count:
                return found
            if time.monotonic() > deadline:
                raise RigError(
                    f"user {user} has {len(found)} bindings {found}, expected {count}"
                    f" within {timeout}s; recent REGISTERs: {self.requests('REGISTER')[-5:]}"
                )
            time.sleep(0.05)

    # ----------------------------------------------------------------- log

    def _log_fields(self, kind: str) -> list[dict[str, str]]:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        marker = f"{LOG_MARKER} {kind} "
        rows = []
        for line in text.splitlines():
            at = line.find(marker)
            if at < 0:
                continue
            body = line[at + len(marker) :]
            # Fields that may hold spaces come last and take the rest of the line.
            tail = {}
            for name in ("ua", "reason"):
                if f" {name}=" in body:
                    body, tail[name] = body.split(f" {name}=", 1)
            fields = dict(_FIELD.findall(body))
            fields["reason"] = tail.get("reason", "")
            fields["ua"] = tail.get("ua", "")
            rows.append(fields)
        # Several Kamailio processes append to the log; order by their timestamps.
        rows.sort(key=lambda f: float(f.get("ts", "0") or 0))
        return rows

    def requests(
        self,
        method: str | None = None,
        from_user: str | None = None,
        since: float = float("-inf"),
        to_user: str | None = None,
    ) -> list[SipRequestLog]:
        """Requests Kamailio received (at `since`, a `time.time()`, or later), oldest first,
        optionally filtered."""
        entries = [
            SipRequestLog(
                time=float(f.get("ts", "0")),
                method=f.get("method", ""),
                from_user=_null(f.get("from", "")),
                to_user=_null(f.get("to", "")),
                ruri=_null(f.get("ruri", "")),
                source=f.get("src", ""),
                transport=f.get("proto", ""),
                cseq=f.get("cseq", ""),
                call_id=_null(f.get("callid", "")),
                user_agent=_null(f.get("ua", "")),
            )
            for f in self._log_fields("request")
        ]
        return _select(
            entries, since, method=method and method.upper(), from_user=from_user, to_user=to_user
        )

    def replies(
        self,
        method: str | None = None,
        from_user: str | None = None,
        code: int | None = None,
        kind: str | None = None,
        call_id: str | None = None,
        since: float = float("-inf"),
    ) -> list[SipReplyLog]:
        """Replies Kamailio relayed or sent itself (at `since`, a `time.time()`, or later),
        oldest first, optionally filtered.

        A reply Kamailio sends itself is logged just after it goes out, so when the answer to it
        reaches another Kamailio process quickly, that request's reply may be logged first:
        order one dialog's replies by CSeq where their order matters.
        """
        entries = [
            SipReplyLog(
                time=float(f.get("ts", "0")),
                kind=f.get("kind", ""),
                code=_status(f.get("code", "0")),
                reason=f.get("reason", ""),
                method=f.get("method", ""),
                from_user=_null(f.get("from", "")),
                to_user=_null(f.get("to", "")),
                source=f.get("src", ""),
                destination=_null(f.get("dst", "")),
                transport=f.get("proto", ""),
                cseq=f.get("cseq", ""),
                call_id=_null(f.get("callid", "")),
            )
            for f in self._log_fields("reply")
        ]
        return _select(
            entries,
            since,
            method=method and method.upper(),
            from_user=from_user,
            code=code,
            kind=kind,
            call_id=call_id,
        )

    def wait_for_requests(
        self,
        method: str | None = None,
        from_user: str | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[SipRequestLog]:
        """Wait until at least `count` matching requests are logged; returns all matching."""
        return self._wait_log(
            lambda: self.requests(method, from_user),
            count,
            timeout,
            f"{count} {method or 'request'}(s) from {from_user or 'anyone'}",
        )

    def wait_for_replies(
        self,
        method: str | None = None,
        from_user: str | None = None,
        code: int | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[SipReplyLog]:
        """Wait until at least `count` matching replies are logged; returns all matching.

        Kamailio logs a reply it sends itself just after sending it, so a peer can see the reply
        before the log line exists: wait, don't read the log right after a peer's event."""
        return self._wait_log(
            lambda: self.replies(method, from_user, code),
            count,
            timeout,
            f"{count} {code or ''} repl(ies) to {method or 'any'} from {from_user or 'anyone'}",
        )

    def _wait_log(
        self, read: Callable[[], list[_T]], count: int, timeout: float, what: str
    ) -> list[_T]:
        deadline = time.monotonic() + timeout
        while True:
            found = read()
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise RigError(f"Kamailio log: no {what} within {timeout}s; found {found}")
            time.sleep(0.02)

    def count(self, method: str, from_user: str | None = None) -> int:
        """How many `method` requests Kamailio received (from `from_user`, if given)."""
        return len(self.requests(method, from_user))

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Kamailio {self.host}:{self.port} {state} workdir={self.workdir}>"


# Doubled braces are literal braces for str.format.
_CONFIG = r"""#!KAMAILIO
# Generated by tests/rig/kamailio.py for one test; listen sockets come from the command line.

debug=2
log_stderror=yes
memdbg=5
memlog=5
children=2
tcp_children=2
auto_aliases=no
dns=no
rev_dns=no
dns_try_ipv6=no
use_dns_cache=off
tcp_connection_lifetime=3605
server_header="Server: deskphone-rig kamailio"
user_agent_header="User-Agent: deskphone-rig kamailio"

mpath="{mpath}"
loadmodule "db_text.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "ctl.so"
loadmodule "kex.so"
loadmodule "cfgutils.so"

modparam("ctl", "binrpc", "unix:{ctl}")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", {min_expires})
modparam("registrar", "default_expires", {default_expires})
modparam("registrar", "max_expires", {max_expires})
modparam("registrar", "gruu_enabled", 0)
modparam("auth_db", "db_url", "{db_url}")
modparam("auth_db", "calculate_ha1", 0)
modparam("auth_db", "password_column", "ha1")
modparam("auth_db", "use_domain", 0)
modparam("rr", "enable_full_lr", 1)
modparam("pv", "shvset", "refused=i:0")
modparam("tm", "fr_timer", {fr_timer})
modparam("tm", "fr_inv_timer", 60000)

request_route {{
    xlog("L_NOTICE", "{marker} request ts=$TV(Sn) method=$rm from=$fU to=$tU ruri=$ru src=$si:$sp proto=$proto cseq=$cs callid=$ci ua=$ua\n");

    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check()) {{
        exit;
    }}

    # In-dialog requests (ACK/BYE/re-INVITE/INFO) follow the Record-Route we inserted.
    if (has_totag()) {{
        if (loose_route()) {{
            if ({in_dialog_invite_delay_us} > 0 && is_method("INVITE|ACK")) {{
                usleep("{in_dialog_invite_delay_us}");
            }}
            if ({in_dialog_invite_refusal} > 0 && is_method("INVITE")
                    && ({in_dialog_invite_refusals} == 0 || $shv(refused) < {in_dialog_invite_refusals})) {{
                $shv(refused) = $shv(refused) + 1;
                sl_send_reply("{in_dialog_invite_refusal}", "Refused by the rig");
                exit;
            }}
            route(RELAY);
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}

    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            if (t_relay()) {{
                # tm answers the CANCEL itself; log that 200 here (see LOG_LOCAL_REPLY).
                xlog("L_NOTICE", "{marker} reply ts=$TV(Sn) kind=local code=200 method=CANCEL from=$fU to=$tU src={host}:{port} dst=$si:$sp proto=$proto cseq=$cs callid=$ci reason=canceling\n");
            }}
        }}
        exit;
    }}
    # Absorb retransmissions of requests we already handle statefully.
    t_check_trans();

    # Initial request: drop a preloaded Route (a phone using us as outbound proxy sets one).
    remove_hf("Route");

    # Ours: host 127.0.0.1 with our port or none. Checked here, not with alias=127.0.0.1, which
    # would also make every UA's 127.0.0.1:PORT contact "myself" (and loop ACK/BYE).
    $var(ours) = 0;
    if ($rd == "{domain}" && ($(ru{{uri.port}}) == "{port}" || $(ru{{uri.port}}{{s.len}}) == 0)) {{
        $var(ours) = 1;
    }}

    # Keepalive pings addressed to the server itself.
    if (is_method("OPTIONS") && $var(ours) == 1 && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}

    if (is_method("REGISTER")) {{
        route(REGISTRAR);
        exit;
    }}

    # Initial requests from our own users are authenticated, as on a real PBX.
    if ($fd == "{domain}") {{
        if (!proxy_authorize("{domain}", "subscriber")) {{
            route(AUTH_FAILED);
            proxy_challenge("{domain}", "0");
            exit;
        }}
        if ($au != $fU) {{
            sl_send_reply("403", "Forbidden Auth ID");
            exit;
        }}
        consume_credentials();
    }}

    # Never relay to other domains or other ports: all traffic stays on this PBX's users.
    if ($var(ours) != 1) {{
        sl_send_reply("404", "Domain Not Served");
        exit;
    }}

    record_route();
    if (!lookup("location")) {{
        $var(rc) = $rc;
        if ($var(rc) == -2) {{
            sl_send_reply("405", "Method Not Allowed");
        }} else {{
            sl_send_reply("404", "Not Found");
        }}
        exit;
    }}
    route(RELAY);
}}

route[REGISTRAR] {{
    if ($var(ours) != 1) {{
        sl_send_reply("404", "Domain Not Served");
        exit;
    }}
    if (!www_authorize("{domain}", "subscriber")) {{
        route(AUTH_FAILED);
        www_challenge("{domain}", "0");
        exit;
    }}
    if ($au != $tU) {{
        sl_send_reply("403", "Forbidden Auth ID");
        exit;
    }}
    consume_credentials();
    # 0x04: keep only the newest contact, so a killed client's binding cannot swallow calls.
    if (!save("location", "0x04")) {{
        sl_reply_error();
    }}
    exit;
}}

# Credentials that are wrong (-2 bad password, -3 unknown user) get a final 403 rather than
# another challenge: Kamailio hands out a fresh nonce with every 401/407, and baresip answers each
# one again, so re-challenging turns one wrong password into a REGISTER storm.
route[AUTH_FAILED] {{
    $var(rc) = $rc;
    if ($var(rc) == -2 || $var(rc) == -3) {{
        xlog("L_NOTICE", "rig: bad credentials from $fU ($var(rc)): 403\n");
        sl_send_reply("403", "Forbidden");
        exit;
    }}
}}

route[RELAY] {{
    if (is_method("INVITE|SUBSCRIBE|MESSAGE|OPTIONS|INFO|BYE|UPDATE|REFER|NOTIFY|PRACK")) {{
        t_on_failure("LOG_TIMEOUT");
    }}
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

onreply_route {{
    xlog("L_NOTICE", "{marker} reply ts=$TV(Sn) kind=relay code=$rs method=$rm from=$fU to=$tU src=$si:$sp dst=- proto=$proto cseq=$cs callid=$ci reason=$rr\n");
}}

event_route[sl:local-response] {{
    route(LOG_LOCAL_REPLY);
}}

# A branch that never answered: tm replies 408 itself (logged here, just before it is sent).
failure_route[LOG_TIMEOUT] {{
    if (t_branch_timeout()) {{
        xlog("L_NOTICE", "{marker} reply ts=$TV(Sn) kind=local code=408 method=$rm from=$fU to=$tU src={host}:{port} dst=$si:$sp proto=$proto cseq=$cs callid=$ci reason=Request Timeout\n");
    }}
}}

# Replies Kamailio sends itself statelessly (sl: 401/403/404/407, 200 to REGISTER); the message
# here is the request and $snd is where the reply went. Not event_route[tm:local-response]: in
# Kamailio 5.6 it runs only once per process (kamailio issue #3064); tm's own replies are logged
# where they happen (408 above, 200 to CANCEL), and 100 Trying is not logged at all.
route[LOG_LOCAL_REPLY] {{
    xlog("L_NOTICE", "{marker} reply ts=$TV(Sn) kind=local code=$(snd(buf){{s.select,1, }}) method=$rm from=$fU to=$tU src={host}:{port} dst=$snd(ip):$snd(port) proto=$snd(sproto) cseq=$cs callid=$ci reason=$(snd(buf){{line.at,0}}{{s.substr,12,0}})\n");
}}
"""
