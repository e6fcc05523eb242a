"""A slow network between a phone and its registrar: a UDP relay on 127.0.0.1 that holds every
packet for `delay` seconds each way, so a test can act while a transaction is in flight."""

from __future__ import annotations

import heapq
import itertools
import select
import socket
import threading
import time

from tests.rig.ports import HOST


class DelayingRelay:
    """Relays one client's datagrams to `target` and the answers back, each `delay` late."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.delay = delay
        self._target = (HOST, target_port)
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # faces the phone
        self._front.bind((HOST, 0))
        self._back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # faces the registrar
        self._back.bind((HOST, 0))
        self.port = self._front.getsockname()[1]
        self._client: tuple[str, int] | None = None
        self._due: list[tuple[float, int, socket.socket, bytes, tuple[str, int]]] = []
        self._order = itertools.count()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    def __enter__(self) -> DelayingRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._running = False
        self._thread.join(2)
        self._front.close()
        self._back.close()

    def _run(self) -> None:
        while self._running:
            wait = 0.05
            if self._due:
                wait = max(0.0, min(wait, self._due[0][0] - time.monotonic()))
            readable, _, _ = select.select([self._front, self._back], [], [], wait)
            for sock in readable:
                data, sender = sock.recvfrom(65535)
                if sock is self._front:
                    self._client = sender
                    self._hold(self._back, data, self._target)
                elif self._client is not None:
                    self._hold(self._front, data, self._client)
            while self._due and self._due[0][0] <= time.monotonic():
                _, _, out, data, address = heapq.heappop(self._due)
                out.sendto(data, address)

    def _hold(self, out: socket.socket, data: bytes, address: tuple[str, int]) -> None:
        heapq.heappush(
            self._due, (time.monotonic() + self.delay, next(self._order), out, data, address)
        )
