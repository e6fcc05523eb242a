"""The two G.722 codecs of the audio benchmark, run directly on samples, with no call.

The phone codes G.722 with pjmedia's codec (inside pjsua2's extension module), its 16-bit
samples brought to the codec's 14 bits as the phone does it: `G722_BRIDGE_SHIFT` bits by the
bridge (rounding down), `G722_PCM_SHIFT` by pjmedia's codec (rounding toward zero), and back
the same way. Baresip, the benchmark's reference, codes it with spandsp's (libspandsp, which
baresip's g722 module links). Run on the same speech, they show what the codecs alone score,
apart from everything a call adds: the floor under the phone's "at or above baresip" rows.
Both libraries are loaded with ctypes; pjmedia does not export its state's size, so that
state lives in a buffer surely big enough (its structs are about 1 KB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np
import pjsua2 as pj

from deskphone.sip.media import G722_BRIDGE_SHIFT, G722_PCM_SHIFT

FRAME = 320  # samples: one 20 ms packet at 16 kHz, as the phone's stream encodes them
DELAY = 22  # samples from a sample's coding to its decoding: the two codecs' filters
_STATE_BYTES = 16384


class G722Error(RuntimeError):
    """A codec library is missing (spandsp comes with baresip) or refused its work."""


@cache
def _pjmedia() -> ctypes.CDLL:
    library = ctypes.CDLL(pj._pjsua2.__file__)
    size = ctypes.POINTER(ctypes.c_size_t)
    library.g722_enc_init.argtypes = library.g722_dec_init.argtypes = (ctypes.c_void_p,)
    library.g722_enc_encode.argtypes = (
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, size
    )  # fmt: skip
    library.g722_dec_decode.argtypes = (
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, size
    )  # fmt: skip
    return library


@cache
def _spandsp() -> ctypes.CDLL:
    name = ctypes.util.find_library("spandsp")
    if name is None:
        raise G722Error("libspandsp is not installed (it comes with baresip)")
    library = ctypes.CDLL(name)
    for init in (library.g722_encode_init, library.g722_decode_init):
        init.restype = ctypes.c_void_p
        init.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_int)
    for free in (library.g722_encode_free, library.g722_decode_free):
        free.argtypes = (ctypes.c_void_p,)
    library.g722_encode.argtypes = library.g722_decode.argtypes = (
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int
    )  # fmt: skip
    return library


def _pcm(samples: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(samples, dtype=np.int16)


def pjmedia_encode(
    samples: np.ndarray, bridge_shift: int = G722_BRIDGE_SHIFT, codec_shift: int = G722_PCM_SHIFT
) -> bytes:
    """16-bit samples (whole 20 ms frames) coded as the phone's stream codes them, or with
    other shifts (bridge: rounding down; pjmedia's codec: toward zero)."""
    pcm = _pcm(samples)
    if len(pcm) % FRAME:
        raise ValueError(f"{len(pcm)} samples are not whole {FRAME}-sample frames")
    library, state = _pjmedia(), ctypes.create_string_buffer(_STATE_BYTES)
    if library.g722_enc_init(state) != 0:
        raise G722Error("pjmedia's G.722 encoder would not start")
    halved = pcm.astype(np.int32) >> bridge_shift  # the bridge's arithmetic shift
    shifted = _pcm(np.sign(halved) * (np.abs(halved) >> codec_shift))  # the codec's division
    out = ctypes.create_string_buffer(len(pcm) // 2)
    written = ctypes.c_size_t()
    for start in range(0, len(shifted), FRAME):
        written.value = FRAME // 2
        at = ctypes.addressof(out) + start // 2
        frame = shifted.ctypes.data + start * 2
        if library.g722_enc_encode(state, frame, FRAME, at, ctypes.byref(written)) != 0:
            raise G722Error("pjmedia's G.722 encoder refused a frame")
    return out.raw


def pjmedia_decode(data: bytes) -> np.ndarray:
    """G.722 decoded as the phone's stream decodes it, back at 16 bits."""
    library, state = _pjmedia(), ctypes.create_string_buffer(_STATE_BYTES)
    if library.g722_dec_init(state) != 0:
        raise G722Error("pjmedia's G.722 decoder would not start")
    out = np.zeros(len(data) * 2, dtype=np.int16)
    produced = ctypes.c_size_t()
    source = ctypes.create_string_buffer(data, len(data))
    for start in range(0, len(data) - FRAME // 2 + 1, FRAME // 2):
        produced.value = FRAME
        status = library.g722_dec_decode(
            state,
            ctypes.addressof(source) + start,
            FRAME // 2,
            out.ctypes.data + start * 4,
            ctypes.byref(produced),
        )
        if status != 0:
            raise G722Error("pjmedia's G.722 decoder refused a frame")
    codec = out.astype(np.int32) << G722_PCM_SHIFT
    return (codec << G722_BRIDGE_SHIFT).clip(-32768, 32767).astype(np.int16)


def spandsp_encode(samples: np.ndarray) -> bytes:
    """16-bit samples coded as baresip codes them (64 kbit/s)."""
    library, pcm = _spandsp(), _pcm(samples)
    state = library.g722_encode_init(None, 64000, 0)
    out = ctypes.create_string_buffer(len(pcm) // 2 + 1)
    try:
        count = library.g722_encode(state, out, pcm.ctypes.data, len(pcm))
    finally:
        library.g722_encode_free(state)
    return out.raw[:count]


def spandsp_decode(data: bytes) -> np.ndarray:
    """G.722 decoded as baresip decodes it."""
    library = _spandsp()
    state = library.g722_decode_init(None, 64000, 0)
    out = np.zeros(len(data) * 2, dtype=np.int16)
    try:
        count = library.g722_decode(state, out.ctypes.data, data, len(data))
    finally:
        library.g722_decode_free(state)
    return out[:count]
