"""SIP addressing for the adapter: pure string work, no pjsua2, so it is unit-tested fast."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME_ADDR = re.compile(
    r'^\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^<"]*?))\s*<(?P<uri>[^>]*)>'
)
_USER = re.compile(r"^(?:sips?|tel):(?P<user>[^@;?>]*)")


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end, as a desk phone shows it."""

    name: str
    number: str
    uri: str


def parse_peer(name_addr: str) -> Peer:
    """Split `"Alice" <sip:1002@pbx;transport=udp>` into a display name, number and URI."""
    match = _NAME_ADDR.match(name_addr)
    if match:
        quoted = match.group("quoted")
        name = quoted.replace('\\"', '"') if quoted is not None else (match.group("token") or "")
        uri = match.group("uri").strip()
    else:
        name, uri = "", name_addr.strip()
    user = _USER.match(uri)
    number = user.group("user") if user else uri
    return Peer(name=name.strip(), number=number, uri=uri)


def server_uri(scheme: str, host: str, port: int | None, transport: str) -> str:
    """A registrar or proxy URI with the account's transport made explicit."""
    hostport = _hostport(host, port)
    suffix = "" if transport == "udp" or scheme == "sips" else f";transport={transport}"
    return f"{scheme}:{hostport}{suffix}"


def target_uri(target: str, host: str, port: int | None, transport: str) -> str:
    """The Request-URI for something the user dialled: a full SIP URI is used as given,
    digits become a user at the account's registrar (with its port, so it routes there)."""
    if re.match(r"^(sips?|tel):", target):
        return target
    if "@" in target:
        return f"sip:{target}"
    suffix = "" if transport == "udp" else f";transport={transport}"
    return f"sip:{target}@{_hostport(host, port)}{suffix}"


def _hostport(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return shown if port is None else f"{shown}:{port}"
