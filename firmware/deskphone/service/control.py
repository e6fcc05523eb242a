"""The control socket: the phone's command table over a unix socket, for `deskphone status`,
`dial`, `hangup`... and for scripts (kiosks, intercoms).

Protocol: JSON, one request per line and one response per line (newline-framed, UTF-8), in
order; a connection may carry any number of requests.

    -> {"command": "dial", "args": ["1002"]}
    <- {"ok": true, "result": null}
    -> {"command": "answer"}
    <- {"ok": false, "error": "answer: no call is ringing", "kind": "command"}

`command` is any entry of the phone's one command table (the keys reach the same entries) or a
query: `status`, `history [N]`, `battery`, `commands`, and `reload`. `kind` in an error is
"command" (the phone refused: wrong state or arguments), "config" (a reload found the new config
invalid; the running one stays), "request" (not a valid request) or "internal".

Access: the socket is mode 0660, owned by the daemon's user and by the group `[control] group`
names; add a user to that group to let it control the phone. Each command is logged with the
caller's uid.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deskphone.errors import ConfigError, DeskphoneError

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
SYSTEM_SOCKET = Path("/run/deskphone") / SOCKET_NAME
ENV_SOCKET = "DESKPHONE_SOCKET"
MAX_REQUEST = 64 * 1024  # bytes in one request line
MAX_RESPONSE = 16 * 1024 * 1024
MAX_CONNECTIONS = 16
IDLE_TIMEOUT = 300.0  # seconds a connection may sit without a request
SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL


class ControlError(DeskphoneError, RuntimeError):
    """The control socket could not be opened or reached, or a request failed; `kind` says which
    (see the module's docstring, plus "unreachable" when no daemon answers)."""

    def __init__(self, message: str, kind: str = "request") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Peer:
    """Who sent a request (from SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


Handler = Callable[[str, list[str], Peer], Awaitable[Any]]


# --- where the socket is ---------------------------------------------------------------------


def _candidates(environ: dict[str, str]) -> list[Path]:
    paths = []
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        paths.append(Path(runtime) / SOCKET_NAME)
    paths.append(SYSTEM_SOCKET)
    xdg = environ.get("XDG_RUNTIME_DIR")
    if xdg:
        paths.append(Path(xdg) / "deskphone" / SOCKET_NAME)
    return paths


def server_socket_path(configured: Path | None, environ: dict[str, str] | None = None) -> Path:
    """Where the daemon listens: the config's path, else systemd's RuntimeDirectory, else
    /run/deskphone as root, else the user's runtime directory."""
    if configured is not None:
        return configured
    env = dict(os.environ if environ is None else environ)
    if env.get("RUNTIME_DIRECTORY"):
        return _candidates(env)[0]
    if os.geteuid() == 0 or not env.get("XDG_RUNTIME_DIR"):
        return SYSTEM_SOCKET
    return _candidates(env)[-1]


def client_socket_path(environ: dict[str, str] | None = None) -> Path:
    """Where a client looks: $DESKPHONE_SOCKET, else the first of the daemon's usual places
    that holds a socket."""
    env = dict(os.environ if environ is None else environ)
    if env.get(ENV_SOCKET):
        return Path(env[ENV_SOCKET])
    for path in _candidates(env):
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(path.stat().st_mode):
                return path
    return SYSTEM_SOCKET


# --- the server ------------------------------------------------------------------------------


class ControlServer:
    """Listens on the socket and hands each request to `handler` on the event loop."""

    def __init__(self, path: Path, group: str, handler: Handler) -> None:
        self.path = path
        self.group = group
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the socket, 0660, given to the group; `ControlError` says why it cannot."""
        path = self.path
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise ControlError(
                f"control socket path too long ({len(os.fsencode(path))} bytes, at most "
                f"{SUN_PATH_MAX}): {path}"
            )
        gid = self._group_id()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(path)
            self._server = await asyncio.start_unix_server(
                self._connected, path=str(path), limit=MAX_REQUEST
            )
        except OSError as err:
            raise ControlError(f"cannot open control socket {path}: {err.strerror or err}") from err
        try:
            if gid is not None:
                os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        except OSError as err:
            await self.close()
            raise ControlError(
                f"cannot give control socket {path} to group {self.group!r}: "
                f"{err.strerror or err} (the daemon's user must be a member of it)"
            ) from err
        log.info("control socket %s, group %s", path, self.group or "of the daemon's user")

    def _group_id(self) -> int | None:
        if not self.group:
            return None
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise ControlError(f"control socket group {self.group!r} does not exist") from None

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            await _send(writer, _error("too many control connections; try again", "request"))
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer, _peer(writer))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
    ) -> None:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
            except TimeoutError:
                return
            except ValueError:  # the line outgrew MAX_REQUEST
                await _send(writer, _error(f"request longer than {MAX_REQUEST} bytes", "request"))
                return
            if not line:
                return
            if line.strip():
                await _send(writer, await self._respond(line, peer))

    async def _respond(self, line: bytes, peer: Peer) -> dict[str, Any]:
        try:
            command, args = parse_request(line)
        except ControlError as err:
            return _error(str(err), err.kind)
        try:
            result = await self._handler(command, args, peer)
        except ControlError as err:
            return _error(str(err), err.kind)
        except ConfigError as err:
            return _error(str(err), "config")
        except DeskphoneError as err:  # CommandError and the like: the phone said no
            return _error(str(err), "command")
        except Exception as err:
            log.exception("control command %r failed", command)
            return _error(f"internal error: {err}", "internal")
        return {"ok": True, "result": result}


def parse_request(line: bytes) -> tuple[str, list[str]]:
    """A request's command and arguments; `ControlError` says what is wrong with it."""
    try:
        request = json.loads(line)
    except ValueError as err:
        raise ControlError(f"not JSON: {err}") from None
    if not isinstance(request, dict):
        raise ControlError('a request is a JSON object: {"command": ..., "args": [...]}')
    unknown = set(request) - {"command", "args"}
    if unknown:
        raise ControlError(f"unknown request field(s): {', '.join(sorted(unknown))}")
    command = request.get("command")
    if not isinstance(command, str) or not command:
        raise ControlError('"command" must be a non-empty string')
    args = request.get("args", [])
    if not isinstance(args, list) or not all(
        isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in args
    ):
        raise ControlError('"args" must be a list of strings')
    return command, [str(a) for a in args]


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"ok": False, "error": message, "kind": kind}


async def _send(writer: asyncio.StreamWriter, response: dict[str, Any]) -> None:
    writer.write(json.dumps(response, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


def _peer(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
    except (OSError, AttributeError):
        return Peer(-1, -1, -1)
    return Peer(pid, uid, gid)


def _remove_stale(path: Path) -> None:
    """A socket left by a daemon that died is removed; a live one is an error."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket; remove it or choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: a leftover
        return
    finally:
        probe.close()
    raise ControlError(f"another deskphone is already listening on {path}")


# --- the client ------------------------------------------------------------------------------


def request(path: Path, command: str, args: Sequence[str] = (), timeout: float = 10.0) -> Any:
    """Send one request and return its result; `ControlError` carries the phone's refusal
    (kind "command", "config", ...) or why the daemon could not be reached ("unreachable")."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(
                f"deskphone is not running (nothing listens on {path})", "unreachable"
            ) from None
        except PermissionError:
            raise ControlError(
                f"no permission to use {path}: add your user to the socket's group "
                "(e.g. usermod -aG deskphone USER) and log in again",
                "unreachable",
            ) from None
        line = json.dumps({"command": command, "args": list(args)}).encode() + b"\n"
        sock.sendall(line)
        response = _read_line(sock)
    except TimeoutError:
        raise ControlError(
            f"deskphone did not answer within {timeout:g} s", "unreachable"
        ) from None
    except OSError as err:
        raise ControlError(f"control socket {path}: {err.strerror or err}", "unreachable") from err
    finally:
        sock.close()
    try:
        answer = json.loads(response)
    except ValueError as err:
        raise ControlError(f"deskphone sent an unreadable answer: {err}", "internal") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlError("deskphone sent an answer without 'ok'", "internal")
    if not answer["ok"]:
        raise ControlError(str(answer.get("error", "failed")), str(answer.get("kind", "command")))
    return answer.get("result")


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("deskphone closed the connection without answering")
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE:
            raise ConnectionError("answer too long")
