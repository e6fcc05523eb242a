"""The rig's baresip config: which codecs it offers and what its microphone and speaker are."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rig.baresip import Baresip, _codec_plan


@pytest.mark.parametrize(
    ("codecs", "modules", "names"),
    [
        # Both offered, in order; G.722 with its rate (without one, baresip reads 8000 Hz
        # and finds no such codec).
        (["G722", "PCMU"], ["g722", "g711"], ["G722/16000/1", "PCMU"]),
        (["G722"], ["g722"], ["G722/16000/1"]),
        (["g711"], ["g711"], []),  # a module: every codec it has
        (["g722.so", "PCMA"], ["g722", "g711"], ["PCMA"]),
    ],
)
def test_codec_names_and_modules_are_told_apart(
    codecs: list[str], modules: list[str], names: list[str]
) -> None:
    assert _codec_plan(codecs) == (modules, names)


def _config(ua: Baresip) -> str:
    return (ua.config_dir / "config").read_text()


def test_a_sound_device_is_its_microphone_and_speaker(tmp_path: Path) -> None:
    ua = Baresip(tmp_path, "1005", "secret", ("127.0.0.1", 5060), sound_device="rig_handset")
    config = _config(ua)
    assert "audio_player alsa,rig_handset" in config
    assert "audio_source alsa,rig_handset" in config
    assert "module alsa.so" in config and "aufile" not in config


def test_a_wav_is_its_microphone_by_default(tmp_path: Path) -> None:
    config = _config(Baresip(tmp_path, "1002", "secret", ("127.0.0.1", 5060)))
    assert "audio_source aufile," in config and "alsa" not in config


def test_a_wav_and_a_sound_device_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        Baresip(tmp_path, "1005", "secret", ("127.0.0.1", 5060),
                audio_source=tmp_path / "x.wav", sound_device="rig_handset")  # fmt: skip
