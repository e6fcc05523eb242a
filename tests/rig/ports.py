"""Free ports on 127.0.0.1.

SIP peers bind the same port number for UDP and TCP, so a port is only handed out when both are
free. Ports come from below the kernel's ephemeral range (so an outgoing connection cannot take
one between our check and the peer's bind) and are never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
import threading

HOST = "127.0.0.1"

# Below Linux's default ephemeral range (32768-60999) and above most well-known services.
_LOW, _HIGH = 20000, 32000
_given: set[int] = set()
_lock = threading.Lock()
_rng = random.Random()


def _bindable(kind: socket.SocketKind, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def port_is_free(port: int) -> bool:
    """True when `port` can be bound on 127.0.0.1 for both UDP and TCP right now."""
    return _bindable(socket.SOCK_DGRAM, port) and _bindable(socket.SOCK_STREAM, port)


def free_port() -> int:
    """A port free on 127.0.0.1 for UDP and TCP, not returned before by this process."""
    with _lock:
        for _ in range(1000):
            port = _rng.randrange(_LOW, _HIGH)
            if port in _given:
                continue
            _given.add(port)
            if port_is_free(port):
                return port
    raise OSError(f"no free UDP+TCP port on {HOST} in {_LOW}-{_HIGH}")
