"""How good the audio that crossed a call is: alignment, PESQ, and tone cadence.

Shared by the audio tests and the audio benchmark (numpy, scipy and pesq: test extras only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pesq import pesq
from scipy.signal import correlate, resample_poly

from tests.rig.signals import Samples, rms, tone_ratio

PESQ_RATES = {"nb": 8000, "wb": 16000}


def resample(samples: Samples, rate: int, to_rate: int) -> Samples:
    if rate == to_rate:
        return samples
    divisor = np.gcd(rate, to_rate)
    return resample_poly(samples, to_rate // divisor, rate // divisor).astype(np.float32)


def find_delay(reference: Samples, recording: Samples) -> int:
    """Where in `recording` (in samples) `reference` starts: the cross-correlation peak."""
    corr = correlate(recording, reference, mode="valid", method="fft")
    return int(np.argmax(np.abs(corr)))


def aligned(reference: Samples, recording: Samples) -> Samples:
    """The stretch of `recording` that carries `reference`, as long as it (zero-padded)."""
    if len(recording) < len(reference):
        recording = np.concatenate([recording, np.zeros(len(reference) - len(recording))])
    start = find_delay(reference, recording)
    return np.asarray(recording[start : start + len(reference)], dtype=np.float32)


def pesq_mos(
    reference: Samples, ref_rate: int, recording: Samples, rec_rate: int, band: str
) -> float:
    """P.862 MOS-LQO of `recording` against `reference`: "nb" (P.862.1, 8 kHz) or "wb"
    (P.862.2, 16 kHz). Both are brought to the band's rate and aligned first."""
    rate = PESQ_RATES[band]
    ref = resample(reference, ref_rate, rate)
    deg = aligned(ref, resample(recording, rec_rate, rate))
    return float(pesq(rate, ref.astype(np.float64), deg.astype(np.float64), band))


@dataclass(frozen=True)
class Cadence:
    """On/off pattern of a tone in a recording, in 10 ms steps."""

    on: np.ndarray  # bool per step
    step_ms: int

    def runs(self) -> list[tuple[bool, int]]:
        """(sounding, length in ms) for each run of equal steps."""
        out: list[tuple[bool, int]] = []
        for value in self.on:
            if out and out[-1][0] == bool(value):
                out[-1] = (out[-1][0], out[-1][1] + self.step_ms)
            else:
                out.append((bool(value), self.step_ms))
        return out

    @property
    def onset(self) -> int | None:
        """Index of the first sounding step."""
        hits = np.flatnonzero(self.on)
        return int(hits[0]) if len(hits) else None


def cadence(
    samples: Samples,
    rate: int,
    frequencies: Sequence[float],
    *,
    step_ms: int = 10,
    min_rms: float = 0.003,
    min_ratio: float = 0.5,
) -> Cadence:
    """Which 10 ms steps carry the tone: audible, and most of their power within 40 Hz of one
    of `frequencies` (windows of 40 ms centred on each step, for frequency resolution)."""
    step = rate * step_ms // 1000
    half = 2 * step
    on = []
    for centre in range(step // 2, len(samples) - step // 2, step):
        window = samples[max(0, centre - half) : centre + half]
        chunk = samples[centre - step // 2 : centre + step // 2]
        audible = rms(chunk) >= min_rms
        share = sum(tone_ratio(window, rate, f, bandwidth_hz=80.0) for f in frequencies)
        on.append(audible and share >= min_ratio)
    return Cadence(np.array(on, dtype=bool), step_ms)
