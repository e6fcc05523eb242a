#!/usr/bin/env bash
# Sets deskphone up on a fresh Debian / Raspberry Pi OS machine, then runs it.
#
#   ./bootstrap.sh run  [deskphone args]   the phone (the simulator on a PC without Pi hardware)
#   ./bootstrap.sh test [pytest args]      the whole test suite
#
# As root it installs the Debian packages it needs with apt; otherwise it names the missing
# ones and stops. Python packages go into a virtual environment (.venv, or $DESKPHONE_VENV).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${DESKPHONE_VENV:-$here/.venv}

# What the phone itself needs from Debian.
run_packages=(python3 python3-venv python3-dev)
# PyAudio (the handset's sound card through PortAudio/ALSA) compiles against PortAudio.
run_packages+=(portaudio19-dev)
# The display's fonts: DejaVu Sans for Latin, Greek and Cyrillic, GNU Unifont for Hangul, kana
# and Han (and every other script DejaVu lacks); the screens' reference PNGs are drawn with them.
run_packages+=(fonts-dejavu-core fonts-unifont)
# systemd-python (log records with structured fields in the journal) has no wheel: pip
# compiles it against libsystemd, found through pkg-config.
run_packages+=(gcc libsystemd-dev pkg-config)
# What the tests add: real peers and tools they drive on 127.0.0.1.
test_packages=(kamailio kamailio-extra-modules baresip-core sip-tester sox iproute2)
# The simulator's test runs `deskphone sim` in a real terminal (send-keys, capture-pane).
test_packages+=(tmux)
# The service's tests check the unit files with systemd-analyze and systemd-sysusers.
test_packages+=(systemd)
# Handset audio tests: a private PulseAudio whose null sinks are the handset, reached through
# ALSA's pulse plugin (libasound2-plugins), with pacat/pactl from pulseaudio-utils; festival's
# HTS voice speaks the test speech (PESQ needs speech built from recordings, not formants) and
# sox converts it; alsa-utils for looking at ALSA by hand.
test_packages+=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils)
test_packages+=(festival festvox-us-slt-hts)
# The audio benchmark impairs RTP in a network namespace: iptables (loss, NFQUEUE) and the
# headers NetfilterQueue compiles against.
test_packages+=(iptables libnetfilter-queue-dev)
# The SD-card image (image/, tests/e2e): mmdebstrap builds the root (qemu-user-static,
# binfmt-support and arch-test for arm64's), genimage, mtools, dosfstools, e2fsprogs and fdisk
# make the card without loop devices, dtc compiles the Pi overlay, make runs the recipe, and
# qemu boots it.
test_packages+=(mmdebstrap qemu-user-static binfmt-support arch-test genimage mtools dosfstools)
test_packages+=(e2fsprogs fdisk device-tree-compiler make qemu-system-x86 qemu-system-arm)

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' \
            || echo "$pkg"
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: these Debian packages are missing: ${missing[*]}" >&2
        echo "bootstrap: run this script as root (sudo) once to install them." >&2
        exit 1
    fi
    echo "bootstrap: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

make_venv() {
    local python=/usr/bin/python3
    [ -x "$python" ] || python=$(command -v python3)
    if [ ! -x "$venv/bin/python" ]; then
        # On a Pi the SD-card image provides pjsua2 (built from source) as a system package.
        local system_site=()
        [ "$(uname -m)" = "x86_64" ] || system_site=(--system-site-packages)
        "$python" -m venv "${system_site[@]}" "$venv"
    fi
    # Reinstall only when the project's requirements changed.
    local stamp="$venv/.deskphone-installed"
    local want
    want=$(sha256sum "$here/pyproject.toml" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -e "$here[test]"
        echo "$want" >"$stamp"
    fi
}

on_raspberry_pi() {
    grep -q "Raspberry Pi" /proc/device-tree/model 2>/dev/null
}

[ $# -ge 1 ] || usage
command=$1
shift
case "$command" in
run)
    install_packages "${run_packages[@]}"
    make_venv
    if on_raspberry_pi; then
        exec "$venv/bin/deskphone" run "$@"
    fi
    exec "$venv/bin/deskphone" sim "$@"
    ;;
test)
    install_packages "${run_packages[@]}" "${test_packages[@]}"
    make_venv
    cd "$here"
    exec "$venv/bin/python" -m pytest "$@"
    ;;
*)
    usage
    ;;
esac
