"""Across the SWIG boundary: the fast frame copy gives exactly what SWIG's own conversion gives,
and the jitter buffer's discard algorithm, an enum SWIG left opaque, is set as asked."""

from __future__ import annotations

import asyncio

import pjsua2 as pj

from deskphone.config import parse_config
from deskphone.sip.media import (
    JB_DISCARD_NONE,
    JB_DISCARD_PROGRESSIVE,
    JB_DISCARD_STATIC,
    jitter_discard,
    read_vector,
    set_jitter_discard,
    write_vector,
)
from deskphone.sip.stack import SipStack


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


def test_the_jitter_buffers_discard_algorithm_is_set_through_swigs_opaque_enum() -> None:
    media = pj.MediaConfig()
    assert jitter_discard(media) == JB_DISCARD_PROGRESSIVE  # pjmedia's default
    set_jitter_discard(media, JB_DISCARD_STATIC)
    assert jitter_discard(media) == JB_DISCARD_STATIC
    set_jitter_discard(media, JB_DISCARD_NONE)
    assert jitter_discard(media) == JB_DISCARD_NONE


def test_the_phone_asks_for_static_discard_from_a_one_packet_floor() -> None:
    config = parse_config('[phone]\nlog_level = "error"\n')
    loop = asyncio.new_event_loop()
    try:
        media = SipStack(config, loop, lambda _event: None)._endpoint_config().medConfig
    finally:
        loop.close()
    assert jitter_discard(media) == JB_DISCARD_STATIC
    assert (media.jbInit, media.jbMinPre) == (20, 20)
