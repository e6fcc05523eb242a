"""A bad network for RTP, inside a network namespace of our own.

The kernel here has no sch_netem, so impairment is built from netfilter: an NFQUEUE rule hands
every RTP packet to `Impairment`, which drops some and holds the rest for a random delay
(uniform in delay ± jitter; packets overtake each other, as on a real path) before letting
them go.

The chances are drawn per direction from a seed: the n-th packet toward the far end (and the
n-th back) is lost, or delayed, alike in every call the same seed impairs. Two phones measured
in turn against one far end thus meet the same network, packet for packet, and their scores
differ by what they make of it rather than by which packets the dice took (at 3 % loss, which
20 ms of speech goes decides a call's PESQ by up to 0.8).

Everything runs inside a namespace made for the purpose (`in_new_namespace` re-runs a command
there, with only its own loopback up), so the rules touch no traffic but the benchmark's: the
peers talk on that namespace's 127.0.0.1. Only RTP is impaired (the far end's RTP ports), not
SIP: the figures are about what the audio path makes of a bad network.
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import select
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

from tests.rig import RigError
from tests.rig.baresip import RTP_PORTS

QUEUE = 7
NAMESPACE_ENV = "DESKPHONE_BENCH_NETNS"


def in_new_namespace(argv: Sequence[str]) -> int:
    """Run `argv` in a fresh network namespace (loopback only) and remove it after."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise RigError("network namespaces need root and iproute2")
    name = f"deskphone-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        env = dict(os.environ, **{NAMESPACE_ENV: name})
        return subprocess.run(["ip", "netns", "exec", name, *argv], env=env, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def inside_namespace() -> bool:
    return bool(os.environ.get(NAMESPACE_ENV))


class Impairment:
    """Loss, delay and jitter for RTP to and from `ports`, in this (private) namespace;
    `far_end` (its RTP ports) tells the two directions of a call apart."""

    def __init__(
        self, ports: range = RTP_PORTS, queue: int = QUEUE, far_end: range = RTP_PORTS
    ) -> None:
        if not inside_namespace():
            raise RigError("refusing to change iptables outside the benchmark's own namespace")
        from netfilterqueue import NetfilterQueue

        self._ports = ports
        self._queue_num = queue
        self._far_end = far_end
        self._seed = 0
        self._dice: dict[tuple[bool, bool], random.Random] = {}  # (toward far end?, RTCP?)
        self._loss = 0.0
        self._queue = NetfilterQueue()
        self._held: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._delay = 0.0
        self._jitter = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rules: list[list[str]] = []
        self.passed = 0

    def start(self) -> Impairment:
        self._queue.bind(self._queue_num, self._hold)
        self._thread = threading.Thread(target=self._run, name="impairment", daemon=True)
        self._thread.start()
        return self

    def set(
        self, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0, seed: int = 0
    ) -> None:
        """Drop `loss` (0..1) of the RTP packets; delay the rest by delay ± jitter ms; each
        direction's n-th packet drawn alike whenever `seed` is the same."""
        self.clear()
        self._loss, self._delay, self._jitter = loss, delay_ms / 1000, jitter_ms / 1000
        self._seed = seed
        self._dice.clear()
        if loss > 0 or delay_ms > 0 or jitter_ms > 0:
            ports = f"{self._ports.start}:{self._ports.stop - 1}"
            self._add(["-p", "udp", "-m", "multiport", "--ports", ports,
                       "-j", "NFQUEUE", "--queue-num", str(self._queue_num)])  # fmt: skip

    def _add(self, rule: list[str]) -> None:
        subprocess.run(["iptables", "-A", "OUTPUT", *rule], check=True, capture_output=True)
        self._rules.append(rule)

    def clear(self) -> None:
        for rule in reversed(self._rules):
            subprocess.run(["iptables", "-D", "OUTPUT", *rule], check=False, capture_output=True)
        self._rules.clear()

    def close(self) -> None:
        self.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for _, _, packet in self._held:
            packet.accept()
        self._held.clear()
        self._queue.unbind()

    # -- the queue: one thread receives packets and lets each go when its time comes --------

    def _hold(self, packet: Any) -> None:
        dice = self._direction_dice(packet.get_payload())
        lost, spread = dice.random() < self._loss, dice.uniform(-1.0, 1.0)  # both, always
        if lost:
            packet.drop()
            return
        delay = max(0.0, self._delay + spread * self._jitter)
        heapq.heappush(self._held, (time.monotonic() + delay, next(self._order), packet))

    def _direction_dice(self, ip_packet: bytes) -> random.Random:
        """The draws of the packet's direction (IPv4 + UDP: the header's length, then the
        ports), started from the seed the first time the direction is seen. RTCP draws from
        dice of its own: its reports go at randomised times, and interleaved with the RTP they
        would shift which packet is the n-th from call to call."""
        header = (ip_packet[0] & 0x0F) * 4
        _, destination = struct.unpack_from("!HH", ip_packet, header)
        payload = ip_packet[header + 8 : header + 10]
        rtcp = len(payload) == 2 and 192 <= payload[1] <= 223  # RFC 5761: RTCP's packet types
        key = (destination in self._far_end, rtcp)
        if key not in self._dice:
            self._dice[key] = random.Random(f"{self._seed}/{key[0]}" + ("/rtcp" if rtcp else ""))
        return self._dice[key]

    def _run(self) -> None:
        fd = self._queue.get_fd()
        while not self._stop.is_set():
            now = time.monotonic()
            while self._held and self._held[0][0] <= now:
                heapq.heappop(self._held)[2].accept()
                self.passed += 1
            wait = min(0.1, self._held[0][0] - now) if self._held else 0.1
            readable, _, _ = select.select([fd], [], [], max(0.0, wait))
            if readable:
                self._queue.run(block=False)
