#!/usr/bin/env bash
# Installs what scripts/vmtest.sh needs: qemu, a Debian 6.12 kernel (ublk_drv
# is a module there), libclang (libublk's bindgen), and virtme-ng.
# Idempotent: run it as often as you like. Needs root (apt-get).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

# The 6.12 kernels live in bookworm-backports; add it if apt does not know it.
. /etc/os-release
CODENAME=${VERSION_CODENAME:-bookworm}
if [ "$CODENAME" = bookworm ] && ! apt-cache policy 2>/dev/null | grep -c "${CODENAME}-backports" >/dev/null; then
    if ! grep -rqs "${CODENAME}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "vm-setup: adding ${CODENAME}-backports to apt sources"
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$CODENAME" | $SUDO tee /etc/apt/sources.list.d/backports.sources >/dev/null
    fi
fi

$SUDO apt-get update -q
# qemu from backports where there is one: it matches a backports qemu-utils
# that may already be installed (the two must be the same version).
QEMU_T=()
# (no `| grep -q` under pipefail: grep's early exit fails the pipeline)
if apt-cache policy qemu-system-x86 2>/dev/null | grep -c -- "-backports" >/dev/null; then
    QEMU_T=(-t "${CODENAME}-backports")
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${QEMU_T[@]}" qemu-system-x86
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libclang-dev busybox-static kmod

# The newest 6.12 unsigned kernel image apt knows about.
# The generic flavour: not -rt- (PREEMPT_RT) nor -cloud- (fewer drivers).
KPKG=$(apt-cache search --names-only '^linux-image-6\.12.*-amd64-unsigned$' \
    | awk '{print $1}' | grep -v -e '-rt-' -e '-cloud-' | sort -V | tail -n1)
if [ -z "$KPKG" ]; then
    echo "vm-setup: no linux-image-6.12*-amd64-unsigned package found" >&2
    exit 1
fi
if ! dpkg -s "$KPKG" >/dev/null 2>&1; then
    echo "vm-setup: installing $KPKG"
    # Only the image: the host keeps booting its own kernel; the image brings
    # /boot/vmlinuz-6.12* and /lib/modules/6.12*/ for the VM.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$KPKG"
fi

if ! command -v vng >/dev/null 2>&1; then
    python3 -m pip install -q virtme-ng
fi
echo "vm-setup: ready ($KPKG, $(command -v vng))"
