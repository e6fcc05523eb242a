"""Finding the handset by name: kernel cards by ID or name, ALSA PCMs by name, never by number."""

from __future__ import annotations

import pytest

from deskphone.audio.devices import (
    PortAudioDevice,
    SoundCard,
    alsa_config_files,
    match_device,
    parse_cards,
)
from deskphone.config import parse_config
from deskphone.errors import ConfigError

# /proc/asound/cards of a Pi with its HDMI and headphone outputs and a C-Media USB handset.
PI_CARDS = """\
 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0
                      vc4-hdmi-0
 1 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones
                      bcm2835 Headphones
 2 [Device         ]: USB-Audio - USB PnP Sound Device
                      C-Media Electronics Inc. USB PnP Sound Device at usb-xhci-hcd.1-1, full speed
"""

# What PortAudio lists on that Pi (hardware devices carry their card number).
PI_DEVICES = [
    PortAudioDevice(0, "vc4-hdmi-0: MAI PCM i2s-hifi-0 (hw:0,0)", 0, 2),
    PortAudioDevice(1, "bcm2835 Headphones: - (hw:1,0)", 0, 8),
    PortAudioDevice(2, "USB PnP Sound Device: Audio (hw:2,0)", 1, 2),
    PortAudioDevice(3, "sysdefault", 128, 128),
    PortAudioDevice(4, "default", 128, 128),
]


def test_cards_are_read_with_id_name_and_long_name() -> None:
    cards = parse_cards(PI_CARDS)
    assert [c.number for c in cards] == [0, 1, 2]
    usb = cards[2]
    assert (usb.id, usb.name) == ("Device", "USB PnP Sound Device")
    assert usb.long_name.startswith("C-Media Electronics Inc.")


@pytest.mark.parametrize("wanted", ["C-Media", "c-media", "Device", "USB PnP", "pnp sound"])
def test_the_usb_handset_is_found_by_id_or_any_part_of_its_names(wanted: str) -> None:
    found = match_device(wanted, PI_DEVICES, parse_cards(PI_CARDS))
    assert found is not None
    assert (found.label, found.input_index, found.output_index) == ("USB PnP Sound Device", 2, 2)


def test_the_match_follows_the_card_when_its_number_changes() -> None:
    """Plugged in before the headphones driver loaded, the handset is card 1 instead of 2."""
    renumbered = PI_CARDS.replace(" 2 [Device", " 9 [Device").replace(" 1 [Head", " 2 [Head")
    devices = [
        PortAudioDevice(0, "bcm2835 Headphones: - (hw:2,0)", 0, 8),
        PortAudioDevice(1, "USB PnP Sound Device: Audio (hw:9,0)", 1, 2),
    ]
    found = match_device("C-Media", devices, parse_cards(renumbered))
    assert found is not None and found.input_index == found.output_index == 1


def test_an_output_only_card_has_no_microphone() -> None:
    found = match_device("Headphones", PI_DEVICES, parse_cards(PI_CARDS))
    assert found is not None
    assert (found.input_index, found.output_index) == (None, 1)


def test_an_alsa_pcm_from_the_config_is_found_by_name_exact_first() -> None:
    devices = [
        PortAudioDevice(0, "handset_ringer", 0, 2),
        PortAudioDevice(1, "handset", 1, 1),
    ]
    found = match_device("handset", devices, [])
    assert found is not None and found.label == "handset"
    found = match_device("ringer", devices, [])
    assert found is not None and found.label == "handset_ringer"


def test_nothing_matches_an_absent_device() -> None:
    assert match_device("Jabra", PI_DEVICES, parse_cards(PI_CARDS)) is None
    assert match_device("", PI_DEVICES, parse_cards(PI_CARDS)) is None


def test_a_card_without_a_pcm_portaudio_can_open_is_skipped_for_a_pcm_match() -> None:
    cards = [SoundCard(3, "Loopback", "Loopback", "Loopback 1")]
    devices = [PortAudioDevice(0, "loopback_pcm", 1, 1)]
    found = match_device("loopback", devices, cards)
    assert found is not None and found.label == "loopback_pcm"


def test_alsa_config_files_follow_alsa_config_path() -> None:
    paths = alsa_config_files({"ALSA_CONFIG_PATH": "/usr/share/alsa/alsa.conf:/run/rig.conf"})
    assert [str(p) for p in paths] == ["/usr/share/alsa/alsa.conf", "/run/rig.conf"]
    assert [p.name for p in alsa_config_files({})] == ["asound.conf", ".asoundrc"]


def test_the_alsa_backend_needs_a_handset_device_in_the_config() -> None:
    with pytest.raises(ConfigError, match="handset_device"):
        parse_config('[audio]\nbackend = "alsa"\n')
    config = parse_config('[audio]\nbackend = "alsa"\nhandset_device = "C-Media"\n')
    assert config.audio.handset_device == "C-Media"
    assert config.audio.ringer_device == ""
    with pytest.raises(ConfigError, match="handset_ring_level"):
        parse_config('[audio]\nbackend = "alsa"\nhandset_device = "x"\nhandset_ring_level = 11\n')
