"""The phone's own network addresses, for the menu's network page.

Read from the kernel when the page is open (never polled): IPv4 through the SIOCGIFADDR ioctl
per interface, IPv6 from /proc/net/if_inet6 (global addresses only). Loopback is left out.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

from deskphone.ui.screens import NetworkInfo

SIOCGIFADDR = 0x8915
IF_INET6 = Path("/proc/net/if_inet6")


def read_network_info() -> NetworkInfo:
    addresses: list[tuple[str, str]] = []
    names = [name for _, name in socket.if_nameindex() if name != "lo"]
    for name in names:
        ipv4 = _ipv4(name)
        if ipv4:
            addresses.append((name, ipv4))
    addresses += [(name, address) for name, address in _ipv6() if name in names]
    return NetworkInfo(socket.gethostname(), tuple(addresses))


def _ipv4(interface: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("256s", interface.encode()[:15])
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
        except OSError:
            return ""  # the interface has no IPv4 address
    return socket.inet_ntoa(answer[20:24])


def _ipv6() -> list[tuple[str, str]]:
    try:
        lines = IF_INET6.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        if address.is_global:
            found.append((fields[5], str(address)))
    return found
