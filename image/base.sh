#!/usr/bin/env bash
# The image's base root file system: Debian 12 with the packages in image/packages/ and the
# firmware's Python dependencies in /opt/deskphone/venv, as a tarball. build.sh caches it under
# a digest of its inputs, this file among them.
#
#   base.sh ARCH OUTPUT.tar REQUIREMENTS.txt
#
# For arm64 every maintainer script runs emulated (qemu-user), so work that Debian would repeat
# is done once: making the initramfs and the certificate store are deferred while packages
# install (their packages' scripts and triggers each ran them twice) and run once at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DEFERRED=(/usr/sbin/update-initramfs /usr/sbin/update-ca-certificates)

# --------------------------------------------------------------- hooks (mmdebstrap calls back)

# Before the packages install: each deferred command becomes a no-op, the real one diverted.
hook_defer() {
    local root=$1 command
    for command in "${DEFERRED[@]}"; do
        chroot "$root" dpkg-divert --quiet --local --rename --divert "$command.deferred" \
            --add "$command"
        printf '#!/bin/sh\n# deskphone image build: run once at the end (image/base.sh)\n' \
            >"$root$command"
        chmod 0755 "$root$command"
    done
}

# After: the real commands back, each run once.
hook_finish() {
    local root=$1 command
    for command in "${DEFERRED[@]}"; do
        rm -f "$root$command"
        chroot "$root" dpkg-divert --quiet --local --rename --remove "$command"
    done
    chroot "$root" update-ca-certificates >/dev/null
    chroot "$root" update-initramfs -c -k all
}

# The firmware's Python environment (chroot-setup.sh in the new root). pip downloads through
# this machine's trust store, which may hold a proxy's certificate authority; the image keeps
# Debian's own.
hook_python() {
    local root=$1 arch=$2 requirements=$3
    local host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
    cp "$requirements" "$root/tmp/requirements.txt"
    cp "$here/chroot-setup.sh" "$root/tmp/chroot-setup.sh"
    cp "$host_ca" "$root/tmp/build-host-ca.crt"
    rm -f "$root/etc/resolv.conf"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" env PIP_CERT=/tmp/build-host-ca.crt REQUESTS_CA_BUNDLE=/tmp/build-host-ca.crt \
        SSL_CERT_FILE=/tmp/build-host-ca.crt PIP_FIND_LINKS= PIP_CONFIG_FILE=/dev/null \
        sh /tmp/chroot-setup.sh "$arch" /tmp/requirements.txt
    rm -f "$root/tmp/requirements.txt" "$root/tmp/chroot-setup.sh" "$root/tmp/build-host-ca.crt"
}

case "${1:-}" in
hook-defer) hook_defer "$2"; exit ;;
hook-finish) hook_finish "$2"; exit ;;
hook-python) hook_python "$2" "$3" "$4"; exit ;;
esac

# --------------------------------------------------------------- the build

[ $# -eq 3 ] || {
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
arch=$1
output=$2
requirements=$3
self=$here/base.sh

# The packages listed in image/packages/NAME.txt, comments and blank lines left out.
package_list() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages/$1.txt" | tr -s ' \n' ','
}

components=main
[ "$arch" = arm64 ] && components="main non-free-firmware"  # the Pi's Wi-Fi firmware
mmdebstrap --variant=apt --architectures="$arch" --mode=root --format=tar \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --include="$(package_list common),$(package_list "$arch")" \
    --setup-hook="sync-in '$here/base' /" \
    --essential-hook="'$self' hook-defer \"\$1\"" \
    --customize-hook="'$self' hook-finish \"\$1\"" \
    --customize-hook="'$self' hook-python \"\$1\" '$arch' '$requirements'" \
    "$suite" "$output" \
    "deb $mirror $suite $components" \
    "deb $mirror $suite-updates $components" \
    "deb $security $suite-security $components"
