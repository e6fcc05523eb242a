#!/bin/sh
# Runs inside the new root (chroot) while the base root file system is built: the firmware's
# Python environment with its dependencies. The firmware itself is added by build.sh later, so
# a change to it does not rebuild this slow step.
#   chroot-setup.sh ARCH REQUIREMENTS_FILE
set -eu
arch=$1
requirements=$2

# The venv sees the system's packages: Debian's python3-systemd (PyPI's systemd-python would
# need a compiler and libsystemd-dev in the image), and on arm64 spidev and the pjsua2 built
# from source (build.sh). The amd64 twin takes PyPI's pjsua2 wheel.
echo "image: the firmware's Python environment ($arch)" >&2
python3 -m venv --system-site-packages /opt/deskphone/venv
if ! /opt/deskphone/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
    -q --prefer-binary -r "$requirements"; then
    echo "image: installing the firmware's dependencies failed. One that needs compiling must" \
        "come from Debian: add its python3-* package to image/packages/common.txt." >&2
    exit 1
fi

# Host keys made now would be the same on every card: each phone makes its own (firstboot).
rm -f /etc/ssh/ssh_host_*

# Nothing at run time uses apt; its lists only take space.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
