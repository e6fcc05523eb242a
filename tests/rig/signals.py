"""Test tones in, tone detection out: how tests tell that audio really crossed a call.

numpy only. WAVs are 16-bit PCM; `read_wav` also accepts files whose RIFF/data sizes were never
finalised (baresip's sndfile writes them when the call ends, so a recording read during a call,
or left by a killed process, still has zero or bogus sizes).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

# float32 mono samples in [-1, 1]
Samples = np.ndarray


def tone(
    freqs: float | Sequence[float], seconds: float, rate: int = 16000, amplitude: float = 0.3
) -> Samples:
    """Sum of sines at `freqs`, peak `amplitude`; no frequencies gives silence."""
    if isinstance(freqs, int | float):
        freqs = [freqs]
    t = np.arange(round(seconds * rate), dtype=np.float64) / rate
    out = np.zeros_like(t)
    for f in freqs:
        out += np.sin(2 * np.pi * float(f) * t)
    if len(freqs):
        out *= amplitude / len(freqs)
    return out.astype(np.float32)


def to_pcm16(samples: Samples) -> np.ndarray:
    """Float samples in [-1, 1] as the 16-bit integers a WAV of them holds."""
    return (np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767).astype("<i2")


def write_wav(path: Path | str, samples: Samples, rate: int) -> Path:
    """Write float samples in [-1, 1] as a 16-bit mono PCM WAV."""
    path = Path(path)
    data = to_pcm16(samples).tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", len(data))
    path.write_bytes(header + data)
    return path


def write_tone_wav(
    path: Path | str,
    freqs: float | Sequence[float],
    seconds: float,
    rate: int = 16000,
    amplitude: float = 0.3,
) -> Path:
    """A 16-bit mono PCM WAV of `freqs` (one or several, summed); `[]` writes silence."""
    return write_wav(path, tone(freqs, seconds, rate, amplitude), rate)


def wav_format(path: Path | str) -> tuple[int, int, int]:
    """(sample rate, channels, bits per sample) from a WAV's fmt chunk."""
    with open(path, "rb") as f:
        head = f.read(65536)
    rate, channels, bits, _ = _parse_header(head)
    return rate, channels, bits


def _parse_header(raw: bytes) -> tuple[int, int, int, int]:
    """(rate, channels, bits, offset of the data) — tolerant of unfinalised chunk sizes."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        size = struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", raw[body : body + 16])
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk before fmt chunk")
            tag, channels, rate, bits = fmt
            # 1 = PCM, 0xFFFE = WAVE_FORMAT_EXTENSIBLE (libsndfile uses it for some formats)
            if tag not in (1, 0xFFFE) or bits != 16:
                raise ValueError(f"only 16-bit PCM WAV is supported (format {tag}, {bits} bits)")
            return rate, channels, bits, body
        if size == 0 or body + size > len(raw):
            break  # an unfinalised size: we cannot skip this chunk reliably
        pos = body + size + (size & 1)
    raise ValueError("WAV has no data chunk")


def read_wav(path: Path | str) -> tuple[Samples, int]:
    """Samples (float32 mono, channels averaged) and rate; the data chunk runs to end of file."""
    raw = Path(path).read_bytes()
    rate, channels, _, offset = _parse_header(raw)
    usable = (len(raw) - offset) // (2 * channels) * (2 * channels)
    pcm = np.frombuffer(raw, dtype="<i2", count=usable // 2, offset=offset)
    samples = pcm.astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def _power_spectrum(samples: Samples, rate: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(samples, dtype=np.float64)
    x = x - x.mean()
    window = np.hanning(len(x))
    spectrum = np.abs(np.fft.rfft(x * window)) ** 2
    freqs = np.fft.rfftfreq(len(x), d=1.0 / rate)
    return freqs, spectrum


def tone_ratio(samples: Samples, rate: int, freq: float, bandwidth_hz: float = 50.0) -> float:
    """Share (0..1) of the signal's power within ±bandwidth_hz/2 of `freq`; 0 for silence."""
    if len(samples) < 2:
        return 0.0
    freqs, power = _power_spectrum(samples, rate)
    total = float(power.sum())
    if total <= 1e-12:
        return 0.0
    band = np.abs(freqs - freq) <= bandwidth_hz / 2
    return float(power[band].sum()) / total


def rms(samples: Samples) -> float:
    """Root mean square level (full scale = 1.0)."""
    if len(samples) == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(np.asarray(samples, dtype=np.float64)))))


def tone_frames(
    samples: Samples,
    rate: int,
    freq: float,
    *,
    min_ratio: float = 0.5,
    frame_seconds: float = 0.1,
    bandwidth_hz: float = 50.0,
    min_rms: float = 0.005,
) -> Iterator[Samples]:
    """The frames of `samples` where `freq` dominates and the level is audible."""
    frame = max(int(rate * frame_seconds), 16)
    for start in range(0, len(samples) - frame + 1, frame):
        chunk = samples[start : start + frame]
        if rms(chunk) >= min_rms and tone_ratio(chunk, rate, freq, bandwidth_hz) >= min_ratio:
            yield chunk


def tone_level(samples: Samples, rate: int, freq: float) -> float:
    """Median RMS of the 100 ms frames that are almost all the tone at `freq`; 0 if none are."""
    levels = [rms(chunk) for chunk in tone_frames(samples, rate, freq, min_ratio=0.9, min_rms=0.0)]
    return float(np.median(levels)) if levels else 0.0


def has_tone(
    samples: Samples,
    rate: int,
    freq: float,
    *,
    min_ratio: float = 0.5,
    min_seconds: float = 0.5,
    frame_seconds: float = 0.1,
    bandwidth_hz: float = 50.0,
) -> bool:
    """True when `freq` dominates (power share ≥ min_ratio) frames totalling ≥ min_seconds.

    Frames rather than the whole file, so a tone that fills only part of a recording (call setup
    silence, a late start) is still found, and a short click is not mistaken for it.
    """
    frames = tone_frames(
        samples,
        rate,
        freq,
        min_ratio=min_ratio,
        frame_seconds=frame_seconds,
        bandwidth_hz=bandwidth_hz,
    )
    seconds = sum(len(chunk) for chunk in frames) / rate
    return seconds >= min_seconds


def dominant_frequency(samples: Samples, rate: int) -> float:
    """Frequency (Hz) of the strongest spectral peak, refined by parabolic interpolation."""
    if len(samples) < 4:
        return 0.0
    return _peak(*_power_spectrum(samples, rate))


def dominant_frequency_over(windows: Sequence[Samples], rate: int) -> float:
    """The strongest peak of the power spectra of equal-length `windows`, averaged (Welch's
    method): a click or a gap in one window moves it by a fraction of what it would move
    that window's own peak."""
    if not windows or len(windows[0]) < 4:
        return 0.0
    spectra = [_power_spectrum(window, rate) for window in windows]
    return _peak(spectra[0][0], np.mean([power for _, power in spectra], axis=0))


def _peak(freqs: np.ndarray, power: np.ndarray) -> float:
    power = power.copy()
    power[0] = 0.0
    k = int(np.argmax(power))
    if 0 < k < len(power) - 1:
        a, b, c = np.log(power[k - 1 : k + 2] + 1e-30)
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        return float(freqs[k] + shift * (freqs[1] - freqs[0]))
    return float(freqs[k])
