"""A fake I2C bus shaped like smbus2.SMBus, with the UPS chips the phone reads modelled at the
register level: values are stored as the chips send them (high byte first) and SMBus word reads
return them low byte first, as the kernel's SMBus layer does, so byte-order bugs show.

A device that is not on the bus answers like the kernel: OSError 121 (Remote I/O error).
"""

from __future__ import annotations

import errno
import os
import threading


class FakeSMBus:
    """One bus; `factory` hands it to code that opens buses by number."""

    def __init__(self, number: int = 1) -> None:
        self.number = number
        self.registers: dict[int, dict[int, int]] = {}  # address -> register -> value
        self.opened = 0
        self.closed = 0
        self.reads = 0
        self._lock = threading.Lock()

    def factory(self, number: int) -> FakeSMBus:
        if number != self.number:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), f"/dev/i2c-{number}")
        self.opened += 1
        return self

    def _device(self, address: int) -> dict[int, int]:
        self.reads += 1
        device = self.registers.get(address)
        if device is None:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        return device

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        with self._lock:
            value = self._device(i2c_addr)[register] & 0xFFFF
        return ((value & 0xFF) << 8) | (value >> 8)

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        with self._lock:
            return self._device(i2c_addr)[register] & 0xFF

    def close(self) -> None:
        self.closed += 1

    # -- the chips ------------------------------------------------------------------------

    def max17040(self, volts: float, percent: float, address: int = 0x36) -> None:
        """MAX17040-family gauge: VCELL (0x02) 78.125 uV per LSB, SOC (0x04) 1/256 %."""
        with self._lock:
            self.registers[address] = {0x02: round(volts / 78.125e-6), 0x04: round(percent * 256)}

    def ina219(self, volts: float, shunt_millivolts: float, address: int = 0x42) -> None:
        """INA219: bus voltage (0x02) 4 mV per LSB from bit 3; shunt (0x01) signed, 10 uV."""
        with self._lock:
            self.registers[address] = {
                0x02: round(volts / 0.004) << 3,
                0x01: round(shunt_millivolts / 0.01) & 0xFFFF,
            }

    def pisugar3(
        self, *, mains: bool, charging: bool, millivolts: int, percent: int, address: int = 0x57
    ) -> None:
        """PiSugar 3: status (0x02) bit 7 external power, bit 6 charging; 0x22/0x23 mV; 0x2A %."""
        with self._lock:
            self.registers[address] = {
                0x02: (0x80 if mains else 0) | (0x40 if charging else 0) | 0x01,
                0x22: millivolts >> 8,
                0x23: millivolts & 0xFF,
                0x2A: percent,
            }

    def remove(self, address: int) -> None:
        """The device stops answering (unplugged, crashed)."""
        with self._lock:
            self.registers.pop(address, None)
