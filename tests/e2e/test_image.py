"""The SD-card image booted under qemu. The amd64 twin registers the phone inside with a
Kamailio on this machine, takes its settings off the card, writes nothing to its root, and
un-REGISTERs cleanly when the power button is pressed. The arm64 (Raspberry Pi) image boots to
multi-user with the phone service started, or says why it has no SIP stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import CardFactory
from tests.e2e.vm import Vm, card_files, phone_settings, put_on_card
from tests.rig.kamailio import Kamailio

pytestmark = pytest.mark.e2e

USER = "1001"
NO_SIP_STACK = "/usr/share/deskphone/pjsua2-missing"  # why an arm64 image has no pjsua2
BOOT_TIMEOUT = 240.0  # software emulation on a shared 2-core machine: about 1 min typical
REGISTER_TIMEOUT = 120.0


def test_amd64_image_registers_at_boot_and_unregisters_at_power_off(
    card: CardFactory, kamailio: Kamailio, tmp_path: Path
) -> None:
    disk = card("amd64")
    put_on_card(disk, phone_settings(kamailio.port, USER, kamailio.users[USER]))

    with Vm(disk, "amd64", tmp_path) as vm:
        vm.wait_multi_user(BOOT_TIMEOUT)
        kamailio.wait_for_bindings(USER, 1, timeout=REGISTER_TIMEOUT)
        vm.wait_agent(60.0)

        _, status = vm.run("systemctl", "is-active", "deskphone.service")
        assert status.strip() == "active", vm.run("journalctl", "-u", "deskphone", "-b")[1]
        # The settings left the FAT partition for the data partition, readable by the service
        # only; the root file system was never written.
        on_card = vm.check("ls", "/boot/firmware").split()
        assert "deskphone.toml" not in on_card and f"{USER}.secret" not in on_card
        owner = vm.check("stat", "-c", "%a %U %G", f"/etc/deskphone/{USER}.secret")
        assert owner.split() == ["640", "root", "deskphone"]
        assert "vda3" in vm.check("findmnt", "-n", "-o", "SOURCE", "/etc/deskphone")
        assert vm.sectors_written(["vda2"]) == {"vda2": 0}

        registers_before = kamailio.count("REGISTER", USER)
        vm.press_power_button()
        vm.wait_exit(120.0)

    # The phone said goodbye before the machine went down: the binding is gone long before
    # its 300 s expiry, through one more REGISTER (expires 0) that Kamailio answered.
    assert kamailio.bindings(USER) == []
    goodbye = kamailio.requests("REGISTER", USER)[-1]
    assert kamailio.count("REGISTER", USER) > registers_before
    assert any(
        reply.call_id == goodbye.call_id and reply.cseq == goodbye.cseq
        for reply in kamailio.replies("REGISTER", USER, code=200)
    )
    assert {"deskphone.toml", f"{USER}.secret"}.isdisjoint(card_files(disk))


ARM64_BOOT_TIMEOUT = 900.0  # a Cortex-A53 emulated instruction by instruction: minutes


def test_arm64_image_boots_to_multi_user_with_the_phone_service_started(
    card: CardFactory, kamailio: Kamailio, tmp_path: Path
) -> None:
    """The Raspberry Pi image, on qemu's generic arm64 machine (the Pi's own boot firmware
    does not run there): its kernel and initrd from the card, the same root and services."""
    disk = card("arm64")
    put_on_card(disk, phone_settings(kamailio.port, USER, kamailio.users[USER]))

    with Vm(disk, "arm64", tmp_path) as vm:
        vm.wait_multi_user(ARM64_BOOT_TIMEOUT)
        vm.wait_agent(120.0)
        assert "deskphone.toml" not in vm.check("ls", "/boot/firmware").split()
        journal = vm.check("journalctl", "-b", "-o", "cat", "-u", "deskphone.service")
        no_sip, missing = vm.run("cat", NO_SIP_STACK)
        if no_sip == 0:
            # Built without pjproject's source: the service ran, said why, and did not start
            # the phone. Not a pass: the phone cannot work.
            assert "pjsua2 (the SIP stack) is not in this image" in journal
            result = vm.check("systemctl", "show", "-p", "Result", "deskphone.service")
            assert result.strip() == "Result=exec-condition"
            pytest.skip(f"the arm64 image has no SIP stack: {missing.strip()}")
        kamailio.wait_for_bindings(USER, 1, timeout=REGISTER_TIMEOUT)
        _, status = vm.run("systemctl", "is-active", "deskphone.service")
        assert status.strip() == "active", journal
