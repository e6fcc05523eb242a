"""What crosses the loopback wire: a packet capture on `lo` (AF_PACKET, needs root) that
timestamps UDP packets, for "first RTP packet out" and other on-the-wire moments."""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

ETH_P_ALL = 0x0003
ETH_HEADER = 14
IPPROTO_UDP = 17


@dataclass(frozen=True)
class Packet:
    time: float  # wall clock when captured
    source_port: int
    destination_port: int
    payload: bytes


def is_rtp(payload: bytes) -> bool:
    """RTP version 2 with a payload type below the RTCP range."""
    return len(payload) >= 12 and payload[0] >> 6 == 2 and (payload[1] & 0x7F) < 72


class LoopbackCapture:
    """UDP packets on `lo` whose source port lies in one of `source_ports`, captured on a
    thread until `stop()`."""

    def __init__(self, *source_ports: range) -> None:
        self._ports = source_ports
        self.packets: list[Packet] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._read, name="capture", daemon=True)
        self._thread.start()

    def __enter__(self) -> LoopbackCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._running = False
        self._thread.join(2)
        self._sock.close()

    def first(self, source_ports: range, after: float, rtp: bool = True) -> Packet | None:
        with self._lock:
            for packet in self.packets:
                if (
                    packet.time >= after
                    and packet.source_port in source_ports
                    and (not rtp or is_rtp(packet.payload))
                ):
                    return packet
        return None

    def wait_first(
        self, source_ports: range, after: float, timeout: float = 5.0, rtp: bool = True
    ) -> Packet:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            packet = self.first(source_ports, after, rtp)
            if packet is not None:
                return packet
            time.sleep(0.01)
        raise TimeoutError(f"no packet from ports {source_ports} within {timeout} s")

    def _read(self) -> None:
        while self._running:
            try:
                frame = self._sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            seen = time.time()
            packet = _udp(frame, seen)
            if packet is not None and any(packet.source_port in r for r in self._ports):
                with self._lock:
                    self.packets.append(packet)


def _udp(frame: bytes, seen: float) -> Packet | None:
    """The UDP datagram in an Ethernet frame from `lo` (IPv4 only), or None."""
    if len(frame) < ETH_HEADER + 28 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[ETH_HEADER:]
    header_length = (ip[0] & 0x0F) * 4
    if ip[9] != IPPROTO_UDP:
        return None
    source, destination = struct.unpack("!HH", ip[header_length : header_length + 4])
    return Packet(seen, source, destination, ip[header_length + 8 : header_length + 20])
