"""The control socket's server and client (service/control.py) over a real unix socket: the
framing, the errors, the permissions. Driving a real phone through it is
tests/integration/test_control.py."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from deskphone.core.phone import CommandError
from deskphone.errors import ConfigError, ConfigProblem
from deskphone.service.control import (
    MAX_REQUEST,
    ControlError,
    ControlServer,
    Peer,
    client_socket_path,
    parse_request,
    request,
    server_socket_path,
)

Handler = Callable[[str, list[str], Peer], Awaitable[Any]]


async def echo(command: str, args: list[str], peer: Peer) -> Any:
    if command == "refuse":
        raise CommandError("refuse: not now")
    if command == "bad-config":
        raise ConfigError("x.toml", [ConfigProblem("phone.name", "too long", 3)])
    if command == "crash":
        raise RuntimeError("boom")
    return {"command": command, "args": args, "uid": peer.uid}


def serve(
    path: Path,
    scenario: Callable[[ControlServer], Awaitable[None]],
    *,
    group: str = "",
    handler: Handler = echo,
) -> None:
    """Run `scenario` with a server listening on `path`; blocking clients run in threads."""

    async def main() -> None:
        server = ControlServer(path, group, handler)
        await server.start()
        try:
            await scenario(server)
        finally:
            await server.close()

    asyncio.run(main())


async def ask(path: Path, command: str, *args: str) -> Any:
    return await asyncio.to_thread(request, path, command, args, 5.0)


def test_one_request_one_response_and_the_callers_uid(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def scenario(server: ControlServer) -> None:
        result = await ask(path, "dial", "1002")
        assert result == {"command": "dial", "args": ["1002"], "uid": os.getuid()}

    serve(path, scenario)
    assert not path.exists()  # closed: the socket file is gone


def test_many_requests_on_one_connection_answer_in_order(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    def talk() -> list[dict[str, Any]]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(b'{"command": "a"}\n\n{"command": "b", "args": [1]}\nnot json\n')
            with sock.makefile("rb") as replies:
                return [json.loads(replies.readline()) for _ in range(3)]

    async def scenario(server: ControlServer) -> None:
        first, second, third = await asyncio.to_thread(talk)
        assert first["result"]["command"] == "a"
        assert second["result"]["args"] == ["1"]
        assert third["ok"] is False and third["kind"] == "request"

    serve(path, scenario)


def test_refusals_carry_their_kind(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def scenario(server: ControlServer) -> None:
        for command, kind, text in [
            ("refuse", "command", "refuse: not now"),
            ("bad-config", "config", "line 3: phone.name: too long"),
            ("crash", "internal", "internal error: boom"),
        ]:
            with pytest.raises(ControlError, match=text) as caught:
                await ask(path, command)
            assert caught.value.kind == kind

    serve(path, scenario)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"[1, 2]", "a request is a JSON object"),
        (b'{"command": ""}', "non-empty string"),
        (b'{"command": "dial", "args": "1002"}', "list of strings"),
        (b'{"command": "dial", "args": [true]}', "list of strings"),
        (b'{"command": "dial", "user": "x"}', "unknown request field"),
    ],
)
def test_malformed_requests_are_named(line: bytes, message: str) -> None:
    with pytest.raises(ControlError, match=message):
        parse_request(line)


def test_an_oversized_request_is_refused_and_the_connection_closed(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    def talk() -> tuple[dict[str, Any], bytes]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            sock.sendall(b'{"command": "' + b"x" * (MAX_REQUEST + 10) + b'"}\n')
            with sock.makefile("rb") as replies:
                return json.loads(replies.readline()), replies.read()

    async def scenario(server: ControlServer) -> None:
        answer, rest = await asyncio.to_thread(talk)
        assert answer["ok"] is False and "longer than" in answer["error"] and rest == b""

    serve(path, scenario)


def test_the_socket_is_0660_and_belongs_to_the_configured_group(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    group = grp.getgrgid(os.getgid()).gr_name if os.getuid() else "daemon"

    async def scenario(server: ControlServer) -> None:
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == grp.getgrnam(group).gr_gid

    serve(path, scenario, group=group)


def test_an_unknown_group_is_a_clear_error(tmp_path: Path) -> None:
    server = ControlServer(tmp_path / "c.sock", "no-such-group-here", echo)
    with pytest.raises(ControlError, match="group 'no-such-group-here' does not exist"):
        asyncio.run(server.start())


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening: what a killed daemon leaves
    stale.close()

    async def scenario(server: ControlServer) -> None:
        assert (await ask(path, "ping"))["command"] == "ping"
        second = ControlServer(path, "", echo)
        with pytest.raises(ControlError, match="another deskphone is already listening"):
            await second.start()

    serve(path, scenario)


def test_a_path_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    path.write_text("precious")
    with pytest.raises(ControlError, match="exists and is not a socket"):
        asyncio.run(ControlServer(path, "", echo).start())
    assert path.read_text() == "precious"


def test_a_too_long_path_is_refused_before_binding(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120) / "control.sock"
    with pytest.raises(ControlError, match="path too long"):
        asyncio.run(ControlServer(path, "", echo).start())


def test_no_daemon_means_unreachable(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="deskphone is not running") as caught:
        request(tmp_path / "control.sock", "status")
    assert caught.value.kind == "unreachable"


def test_where_the_socket_is(tmp_path: Path) -> None:
    assert server_socket_path(Path("/x/y.sock")) == Path("/x/y.sock")
    systemd = {"RUNTIME_DIRECTORY": "/run/deskphone"}
    assert server_socket_path(None, systemd) == Path("/run/deskphone/control.sock")
    runtime = tmp_path / "user-runtime"
    (runtime / "deskphone").mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(runtime / "deskphone" / "control.sock"))
    try:
        env = {"XDG_RUNTIME_DIR": str(runtime)}
        assert client_socket_path(env) == runtime / "deskphone" / "control.sock"
        assert client_socket_path({"DESKPHONE_SOCKET": "/a.sock", **env}) == Path("/a.sock")
    finally:
        sock.close()
