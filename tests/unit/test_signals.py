"""The tone detector the integration tests rely on: it must find a tone and reject others."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from tests.rig.signals import (
    dominant_frequency,
    dominant_frequency_over,
    has_tone,
    read_wav,
    tone,
    tone_ratio,
    wav_format,
    write_tone_wav,
)


def test_written_wav_reads_back(tmp_path: Path) -> None:
    path = write_tone_wav(tmp_path / "t.wav", 1000, 0.5, rate=16000, amplitude=0.5)
    samples, rate = read_wav(path)
    assert rate == 16000
    assert wav_format(path) == (16000, 1, 16)
    assert samples.dtype == np.float32
    assert len(samples) == 8000
    assert 0.45 < float(np.max(np.abs(samples))) <= 0.5


def test_pure_tone_is_found() -> None:
    samples = tone(1000, 2.0, rate=8000)
    assert tone_ratio(samples, 8000, 1000) > 0.95
    assert has_tone(samples, 8000, 1000, min_ratio=0.8, min_seconds=1.5)
    assert abs(dominant_frequency(samples, 8000) - 1000) < 2


def test_other_tone_is_not_found() -> None:
    samples = tone(600, 2.0, rate=16000)
    assert tone_ratio(samples, 16000, 1000) < 0.01
    assert not has_tone(samples, 16000, 1000, min_ratio=0.5, min_seconds=0.1)
    assert abs(dominant_frequency(samples, 16000) - 600) < 2


def test_a_gap_in_one_window_barely_moves_the_reading_over_all_of_them() -> None:
    """A sound-server stall leaves a gap (silence, then the tone out of phase): read from the
    one window holding it, 425 Hz moves by up to 10 Hz; averaged over eight, well under 1."""
    rate = 16000
    clean = tone(425, 0.8, rate)
    gap = np.zeros(rate * 15 // 1000, dtype=np.float32)
    glitched = np.concatenate([clean[:700], gap, clean[700:]])[: len(clean)]
    windows = [glitched[at : at + rate // 10] for at in range(0, len(glitched), rate // 10)]
    assert abs(dominant_frequency(windows[0], rate) - 425) > 4
    assert abs(dominant_frequency_over(windows, rate) - 425) < 1
    assert dominant_frequency_over([], rate) == 0.0


def test_silence_and_noise_have_no_tone() -> None:
    silence = np.zeros(16000, dtype=np.float32)
    assert tone_ratio(silence, 16000, 1000) == 0.0
    assert not has_tone(silence, 16000, 1000, min_ratio=0.1, min_seconds=0.1)
    noise = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    assert not has_tone(noise, 16000, 1000, min_ratio=0.5, min_seconds=0.1)


def test_tone_must_last_min_seconds() -> None:
    """A 0.3 s burst inside 2 s of silence is not a 1 s tone, but it is a 0.2 s one."""
    rate = 8000
    samples = np.concatenate([np.zeros(rate), tone(1000, 0.3, rate), np.zeros(rate)])
    assert not has_tone(samples, rate, 1000, min_ratio=0.5, min_seconds=1.0)
    assert has_tone(samples, rate, 1000, min_ratio=0.5, min_seconds=0.2)


def test_two_tones_share_power() -> None:
    samples = tone([700, 1200], 1.0, rate=16000)
    assert 0.4 < tone_ratio(samples, 16000, 700) < 0.6
    assert 0.4 < tone_ratio(samples, 16000, 1200) < 0.6


def test_unfinalised_header_reads_to_end_of_file(tmp_path: Path) -> None:
    """baresip's sndfile fixes the RIFF/data sizes only when the call ends."""
    path = write_tone_wav(tmp_path / "t.wav", 1000, 1.0, rate=8000)
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack("<I", 0)  # RIFF size never written
    raw[40:44] = struct.pack("<I", 0)  # data size never written
    raw += b"\x01"  # and a torn last sample
    path.write_bytes(bytes(raw))
    samples, rate = read_wav(path)
    assert rate == 8000
    assert len(samples) == 8000
    assert has_tone(samples, rate, 1000, min_ratio=0.9, min_seconds=0.9)


def test_not_a_wav_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError):
        read_wav(path)
