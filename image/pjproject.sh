#!/usr/bin/env bash
# Cross-builds pjproject and its SWIG Python binding (pjsua2) for the arm64 image on this
# (amd64) machine: no Debian suite packages pjproject and PyPI has no aarch64 pjsua2 wheel.
# Compiling natively under qemu-user would take far longer.
#
#   pjproject.sh TARBALL SYSROOT WORKDIR OUTDIR
#
# TARBALL  pjproject's release source (build.sh has checked its sha256)
# SYSROOT  where the arm64 headers and libraries to build against are kept (made once)
# OUTDIR   receives pjsua2.py and _pjsua2.cpython-311-aarch64-linux-gnu.so, for the image's
#          /usr/local/lib/python3.11/dist-packages
#
# Built like PyPI's x86_64 wheel: no sound device (the phone clocks the conference bridge with
# the null device and moves audio itself) and no video; TLS through Debian's OpenSSL 3.
set -euo pipefail
tarball=$1
sysroot=$2
work=$3
out=$4
host=aarch64-linux-gnu
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

for tool in "$host-gcc" "$host-g++" swig mmdebstrap; do
    command -v "$tool" >/dev/null || {
        echo "pjproject: $tool is missing (apt-get install gcc-aarch64-linux-gnu" \
            "g++-aarch64-linux-gnu swig mmdebstrap)" >&2
        exit 1
    }
done

# arm64 headers and libraries, unpacked without installing (no emulation needed).
if [ ! -f "$sysroot/.done" ]; then
    rm -rf "$sysroot"
    mmdebstrap --variant=extract --architectures=arm64 \
        --include=libc6-dev,libstdc++-12-dev,libpython3.11-dev,libssl-dev \
        bookworm "$sysroot" "deb $mirror bookworm main"
    touch "$sysroot/.done"
fi

rm -rf "$work"
mkdir -p "$work" "$out"
tar -C "$work" --strip-components=1 -xzf "$tarball"
cd "$work"
cat >pjlib/include/pj/config_site.h <<'CONFIG'
/* deskphone: a desk phone's SIP stack, audio only. */
#define PJMEDIA_HAS_VIDEO 0
#define PJMEDIA_AUDIO_DEV_HAS_NULL_AUDIO 1
CONFIG

export CC="$host-gcc --sysroot=$sysroot"
export CXX="$host-g++ --sysroot=$sysroot"
export CFLAGS="-O2 -fPIC"
export CXXFLAGS="-O2 -fPIC"
./configure --host="$host" --prefix=/usr/local \
    --disable-sound --disable-video --disable-v4l2 --disable-sdl --disable-ffmpeg \
    --disable-openh264 --disable-libyuv --disable-libwebrtc --disable-opencore-amr \
    --disable-silk --disable-bcg729 --disable-upnp \
    --with-ssl="$sysroot/usr" >configure.log
make dep >make-dep.log 2>&1
make -j"$(nproc)" >make.log 2>&1 || {
    tail -40 make.log >&2
    exit 1
}

# The SWIG binding, compiled as the Python 3.11 extension of the arm64 image.
# pjproject's helper.mak prints the flags its own setup.py would use, one a line.
cd pjsip-apps/src/swig/python
make pjsua2_wrap.cpp >swig.log 2>&1
helper() { make -s --no-print-directory -f helper.mak "$1"; }
cflags=$(helper cflags)
ldflags=$(helper ldflags)
libs=$(helper libs | sed 's/^/-l/')
# shellcheck disable=SC2086  # the flags are word lists
$CXX -shared $CXXFLAGS $cflags \
    -I"$sysroot/usr/include/python3.11" -I"$sysroot/usr/include/$host/python3.11" \
    pjsua2_wrap.cpp -o "$out/_pjsua2.cpython-311-aarch64-linux-gnu.so" $ldflags $libs
cp pjsua2.py "$out/"
echo "pjproject: pjsua2 for arm64 in $out" >&2
