"""Frames across the SWIG boundary: the fast copy gives exactly what SWIG's own conversion gives."""

from __future__ import annotations

import pjsua2 as pj

from deskphone.sip.media import read_vector, write_vector


def test_a_frame_read_fast_is_the_frame_swig_reads() -> None:
    pcm = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms at 16 kHz
    vector = pj.ByteVector(pcm)
    assert read_vector(vector) == bytes(vector) == pcm


def test_a_frame_written_fast_is_the_frame_swig_sees_whatever_its_size_was() -> None:
    for before in (b"", bytes(640), bytes(2000)):
        vector = pj.ByteVector(before)
        pcm = bytes(reversed(range(256))) * 2 + b"\x01" * 128
        write_vector(vector, pcm)
        assert vector.size() == len(pcm)
        assert bytes(vector) == pcm


def test_an_empty_frame_reads_as_nothing() -> None:
    assert read_vector(pj.ByteVector()) == b""
