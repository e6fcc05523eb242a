#!/usr/bin/env bash
# Builds the deskphone SD-card image: Debian 12 with the firmware preinstalled and started at
# boot, a read-only root, a small data partition, settings taken from the FAT boot partition.
#
#   image/build.sh ARCH [--pjproject TARBALL]      (or: make image ARCH=arm64|amd64)
#
#   arm64  the Raspberry Pi image (Pi 3, 4, Zero 2 W). pjsua2 is built from pjproject's source:
#          the pinned release tarball given with --pjproject (or $PJPROJECT_TARBALL), else
#          downloaded from GitHub (unless PJPROJECT_DOWNLOAD=no). Without either the image is
#          built without SIP and the phone service says so when it starts.
#   amd64  the twin for PCs and CI: the same recipe, a PC kernel and PyPI's pjsua2 wheel, so
#          this machine can boot and test the image under qemu.
#
# Writes image/build/deskphone-ARCH.img. The slow steps are cached in image/build/cache and
# are redone only when their inputs change: the base root file system (Debian packages and the
# firmware's Python dependencies) and, for arm64, pjproject. Needs root (mmdebstrap, chroot).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${DESKPHONE_IMAGE_BUILD:-$here/build}
cache=$build/cache

# pjproject: the release the PyPI wheel (pjsua2-python 2.15.1.post1) is built from.
pjproject_version=2.15.1
pjproject_url=https://github.com/pjsip/pjproject/archive/refs/tags/$pjproject_version.tar.gz
pjproject_sha256=8f3bd99caf003f96ed8038b8a36031eb9d8cd9eaea1eaff7e01c2eef6bd55706

# Partition sizes (MiB). The root is sized to fit what it holds.
boot_mib=256
data_mib=64
boot_label=DESKBOOT
root_label=deskroot
data_label=deskdata

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

say() { printf 'image: %s\n' "$*" >&2; }
die() {
    printf 'image: error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- arguments and checks

[ $# -ge 1 ] || usage
arch=$1
shift
pjproject_tarball=${PJPROJECT_TARBALL:-}
while [ $# -gt 0 ]; do
    case "$1" in
    --pjproject)
        [ $# -ge 2 ] || usage
        pjproject_tarball=$2
        shift 2
        ;;
    *) usage ;;
    esac
done
case "$arch" in
amd64) kernel_console=ttyS0,115200 ;;
arm64) kernel_console=ttyS1,115200 ;;
*) usage ;;
esac
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap builds the root file system as root)"
for tool in mmdebstrap genimage mkfs.ext4 mkfs.vfat mcopy systemctl systemd-sysusers; do
    command -v "$tool" >/dev/null || die "$tool is missing (./bootstrap.sh test installs it)"
done

work=$build/$arch
mkdir -p "$cache" "$work"
started=$(date +%s)

# ---------------------------------------------------------------- helpers

# A digest of files and strings, naming a cached step's inputs.
digest() {
    {
        for item in "$@"; do
            if [ -d "$item" ]; then
                (cd "$item" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
                (cd "$item" && find . -print0 | sort -z | xargs -0 stat -c '%n %a')
            elif [ -f "$item" ]; then
                sha256sum <"$item"
            else
                printf '%s\n' "$item"
            fi
        done
    } | sha256sum | cut -c1-16
}

# Binaries of a foreign architecture run through qemu-user (binfmt_misc), which may need
# mounting first on a fresh machine.
ensure_foreign_arch() {
    [ "$arch" = "$(dpkg --print-architecture)" ] && return 0
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
            || die "cannot mount binfmt_misc (needed to run $arch programs)"
    fi
    if ! arch-test "$arch" >/dev/null 2>&1; then
        # Registered while binfmt_misc was not mounted: register qemu-user-static's formats.
        update-binfmts --import >/dev/null 2>&1 || true
        update-binfmts --enable >/dev/null 2>&1 || true
    fi
    arch-test "$arch" >/dev/null 2>&1 \
        || die "this machine cannot run $arch programs (install qemu-user-static, binfmt-support)"
}

# The firmware's run-time dependencies from pyproject.toml, plus the image's own.
write_requirements() {
    python3 - "$repo/pyproject.toml" >"$1" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
EOF
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/requirements-$arch.txt" >>"$1"
}

# ---------------------------------------------------------------- 1. base root (cached)

# Debian and the firmware's Python dependencies: the slow step, redone only when the package
# lists, the files needed while packages install, or the dependencies change.
build_base() {
    local requirements=$work/requirements.txt
    write_requirements "$requirements"
    local key
    key=$(digest "$arch" "$here/base.sh" "$here/packages/common.txt" \
        "$here/packages/$arch.txt" "$here/base" "$here/chroot-setup.sh" "$requirements")
    base_tar=$cache/base-$arch-$key.tar
    if [ -f "$base_tar" ]; then
        say "base root file system: cached ($(basename "$base_tar"))"
        return 0
    fi
    ensure_foreign_arch
    say "base root file system: building with mmdebstrap ($arch; a few minutes)"
    local began
    began=$(date +%s)
    "$here/base.sh" "$arch" "$base_tar.part" "$requirements"
    mv "$base_tar.part" "$base_tar"
    # Older bases of this architecture are dead weight.
    find "$cache" -maxdepth 1 -name "base-$arch-*.tar" ! -name "$(basename "$base_tar")" -delete
    say "base root file system: built in $(($(date +%s) - began)) s"
}

# ---------------------------------------------------------------- 2. pjsua2 for arm64 (cached)

# Sets pjsua2_dir (files to copy into the root) or pjsua2_missing (why there is none).
build_pjsua2() {
    pjsua2_dir=""
    pjsua2_missing=""
    [ "$arch" = arm64 ] || return 0
    local tarball=$pjproject_tarball
    if [ -z "$tarball" ]; then
        tarball=$cache/pjproject-$pjproject_version.tar.gz
        if [ ! -f "$tarball" ] && [ "${PJPROJECT_DOWNLOAD:-yes}" = no ]; then
            pjsua2_missing="built without the pjproject $pjproject_version source: none was given (--pjproject TARBALL) and downloading it was turned off (PJPROJECT_DOWNLOAD=no)"
            say "pjproject: $pjsua2_missing"
            return 0
        fi
        if [ ! -f "$tarball" ]; then
            say "pjproject: downloading $pjproject_url"
            if ! curl -fsSL --connect-timeout 20 -o "$tarball.part" "$pjproject_url"; then
                rm -f "$tarball.part"
                pjsua2_missing="built without the pjproject $pjproject_version source: it could not be downloaded from $pjproject_url (rebuild with --pjproject TARBALL)"
                say "pjproject: $pjsua2_missing"
                return 0
            fi
            mv "$tarball.part" "$tarball"
        fi
    fi
    [ -f "$tarball" ] || die "pjproject tarball $tarball does not exist"
    local sum
    sum=$(sha256sum "$tarball" | cut -d' ' -f1)
    [ "$sum" = "$pjproject_sha256" ] \
        || die "$tarball has sha256 $sum, not pjproject $pjproject_version's $pjproject_sha256"
    local key
    key=$(digest "$sum" "$here/pjproject.sh")
    pjsua2_dir=$cache/pjsua2-arm64-$key
    if [ -f "$pjsua2_dir/.done" ]; then
        say "pjsua2 for arm64: cached"
        return 0
    fi
    say "pjsua2 for arm64: cross-building pjproject $pjproject_version (several minutes)"
    rm -rf "$pjsua2_dir"
    "$here/pjproject.sh" "$tarball" "$cache/sysroot-arm64" "$work/pjproject" "$pjsua2_dir"
    touch "$pjsua2_dir/.done"
}

# ---------------------------------------------------------------- 3. the image's root

populate_root() {
    root=$work/root
    ensure_foreign_arch
    say "root: unpacking the base and adding the firmware"
    rm -rf "$root"
    mkdir -p "$root"
    tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base_tar"

    # The firmware, as a wheel installed into the venv made in the base.
    local wheels=$work/wheel
    rm -rf "$wheels"
    local python=$repo/.venv/bin/python
    [ -x "$python" ] || python=python3
    # Locked: the two architectures may be built at once, and pip builds in the source tree.
    flock "$build/.wheel.lock" "$python" -m pip wheel -q --no-deps --disable-pip-version-check \
        -w "$wheels" "$repo" \
        || die "building the firmware's wheel failed (is pip installed? ./bootstrap.sh makes .venv)"
    cp "$wheels"/deskphone-*.whl "$root/tmp/"
    chroot "$root" /opt/deskphone/venv/bin/python -m pip install -q --no-deps --no-index \
        --disable-pip-version-check --force-reinstall /tmp/"$(basename "$wheels"/deskphone-*.whl)"
    rm -f "$root"/tmp/deskphone-*.whl

    # The image's own files, then the service's (systemd/ is the service's single source).
    cp -a "$here/rootfs/." "$root/"
    install -m 0644 "$repo/systemd/deskphone.service" "$root/etc/systemd/system/"
    install -m 0644 "$repo/systemd/deskphone.sysusers" "$root/usr/lib/sysusers.d/deskphone.conf"
    install -m 0644 "$repo/systemd/90-deskphone.rules" "$root/etc/udev/rules.d/"
    install -d -m 0755 "$root/etc/polkit-1/rules.d"
    install -m 0644 "$repo/systemd/polkit/50-deskphone.rules" "$root/etc/polkit-1/rules.d/"
    install -d "$root/usr/share/deskphone/hardware"
    cp -r "$repo/hardware/profiles" "$root/usr/share/deskphone/hardware/"
    install -D -m 0755 "$here/firstboot.py" "$root/usr/lib/deskphone/firstboot.py"

    # The service user and the device groups, made now so their ids are fixed in the image
    # (the data partition's files belong to them).
    systemd-sysusers --root="$root" >/dev/null

    # pjsua2: built for arm64, or the reason it is missing, for the service to tell.
    if [ -n "$pjsua2_dir" ]; then
        local site=$root/usr/local/lib/python3.11/dist-packages
        install -d "$site"
        cp "$pjsua2_dir"/pjsua2.py "$pjsua2_dir"/_pjsua2.*.so "$site/"
    elif [ -n "$pjsua2_missing" ]; then
        printf '%s\n' "$pjsua2_missing" >"$root/usr/share/deskphone/pjsua2-missing"
        install -D -m 0644 /dev/stdin "$root/etc/systemd/system/deskphone.service.d/no-sip.conf" <<EOF
# This image was $pjsua2_missing.
# The phone cannot work without its SIP stack: say so (journal, display) and do not start.
[Service]
ExecCondition=/opt/deskphone/venv/bin/python /usr/lib/deskphone/firstboot.py --no-sip-stack
EOF
    fi

    # Mount points of the read-only root's layout (see rootfs/etc/fstab).
    mkdir -p "$root/data" "$root/boot/firmware" "$root/media/root-ro" "$root/media/root-rw" \
        "$root/etc/deskphone" "$root/var/lib/deskphone" "$root/etc/wpa_supplicant"
    ln -sf /data/network/wpa_supplicant-wlan0.conf \
        "$root/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"

    # Services: the phone and its first-boot helper, the network; nothing that writes on a
    # timer (apt, dpkg backups, e2scrub, fstrim).
    systemctl --root="$root" enable --quiet deskphone.service deskphone-firstboot.service \
        systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
        ssh.service
    # Wi-Fi when a wlan0 appears (a Pi has one; enabled for good, it would hold up the boot of
    # a phone without it).
    local wlan_wants=$root/etc/systemd/system/sys-subsystem-net-devices-wlan0.device.wants
    mkdir -p "$wlan_wants"
    ln -sf /lib/systemd/system/wpa_supplicant@.service "$wlan_wants/wpa_supplicant@wlan0.service"
    systemctl --root="$root" mask --quiet apt-daily.timer apt-daily-upgrade.timer \
        dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        systemd-firstboot.service
    # No login prompts: no account has a password (SSH with the user's key is the way in), and a
    # getty on the console would silence systemd's boot messages there.
    systemctl --root="$root" mask --quiet getty@.service serial-getty@.service

    # The contents of the FAT and data partitions.
    build_boot_dir
    build_data_dir
}

# ---------------------------------------------------------------- 4. partitions

build_boot_dir() {
    boot=$work/boot
    rm -rf "$boot"
    mkdir -p "$boot"
    local kernel initrd
    kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
    initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -1)
    if [ -z "$kernel" ] || [ -z "$initrd" ]; then
        die "no kernel or initrd in the root's /boot"
    fi
    cp "$kernel" "$boot/vmlinuz"
    cp "$initrd" "$boot/initrd.img"
    sed "s/@CONSOLE@/$kernel_console/; s/@ROOT@/$root_label/" "$here/boot/cmdline.txt" \
        >"$boot/cmdline.txt"
    cp "$here/boot/DESKPHONE.TXT" "$here/boot/deskphone.toml.example" "$boot/"
    if [ "$arch" = arm64 ]; then
        # The Pi's GPU firmware loads config.txt, the device tree and the kernel from here.
        cp "$root"/usr/lib/raspi-firmware/* "$boot/"
        local kver
        kver=$(basename "$kernel" | sed 's/^vmlinuz-//')
        cp "$root/usr/lib/linux-image-$kver"/broadcom/bcm2*-rpi-*.dtb "$boot/"
        mkdir -p "$boot/overlays"
        if command -v dtc >/dev/null; then
            dtc -q -@ -I dts -O dtb -o "$boot/overlays/deskphone-ups.dtbo" "$here/boot/deskphone-ups.dts"
        else
            die "dtc is missing (apt-get install device-tree-compiler)"
        fi
        cp "$here/boot/config.txt" "$boot/config.txt"
    fi
}

build_data_dir() {
    # The data partition's first contents: the directories the fstab binds, owned by the
    # service user made above.
    data=$work/data
    rm -rf "$data"
    local owner group
    owner=$(chroot "$root" id -u deskphone)
    group=$(chroot "$root" id -g deskphone)
    # /etc/deskphone as the unit's ConfigurationDirectory= makes it (0755); the files in it
    # that hold passwords are 0640 root:deskphone.
    install -d -m 0755 -o 0 -g 0 "$data/etc/deskphone"
    install -d -m 0750 -o "$owner" -g "$group" "$data/lib/deskphone"
    install -d -m 0700 "$data/ssh" "$data/network"
    install -d -m 0755 "$data/system"
}

assemble() {
    local parts=$work/parts
    rm -rf "$parts" "$work/genimage-tmp"
    mkdir -p "$parts"
    say "partitions: root (ext4, read-only), boot (FAT), data (ext4)"
    # The root: its contents plus a margin, no journal (it is never mounted read-write) and no
    # blocks reserved for root.
    local root_kib
    root_kib=$(du -sk --apparent-size "$root" | cut -f1)
    local root_mib=$(((root_kib * 115 / 100) / 1024 + 64))
    mkfs.ext4 -q -F -L "$root_label" -O ^has_journal -m 0 -d "$root" \
        "$parts/root.ext4" "${root_mib}M"
    mkfs.ext4 -q -F -L "$data_label" -m 0 -d "$data" "$parts/data.ext4" "${data_mib}M"
    rm -f "$parts/boot.vfat"
    mkfs.vfat -F 32 -n "$boot_label" -C "$parts/boot.vfat" $((boot_mib * 1024)) >/dev/null
    mcopy -s -i "$parts/boot.vfat" "$boot"/* ::
    sed -e "s/@ARCH@/$arch/g" "$here/genimage.cfg" >"$work/genimage.cfg"
    mkdir -p "$work/empty"
    genimage --config "$work/genimage.cfg" --inputpath "$parts" --outputpath "$build" \
        --rootpath "$work/empty" --tmppath "$work/genimage-tmp" >"$work/genimage.log" 2>&1 \
        || die "genimage failed; see $work/genimage.log"
    # The trees the partitions were made from are large and rebuilt each time.
    rm -rf "$parts" "$work/genimage-tmp" "$root" "$boot" "$data" "$work/wheel" "$work/empty"
}

build_base
build_pjsua2
populate_root
assemble
say "done in $(($(date +%s) - started)) s: $build/deskphone-$arch.img"
