#!/usr/bin/env bash
# Installs what building and testing framebus needs on Debian 12, only when missing:
# OpenCV and libclang development packages (apt), ffmpeg (test clips, ffprobe, MJPEG client),
# chromium (renders the preview page in the e2e tests, headless), systemd (`systemd-analyze
# verify` checks the units `ctl systemd` writes; nothing is started), groff-base (renders the
# man pages `ctl man` writes), fish (the e2e test runs ctl's fish completion), Python 3 with venv and pip, the `framebus` Python package (built
# from crates/framebus-py with maturin: needs cargo) in a venv at the repository root (`.venv`,
# with pytest and OpenCV for its tests and examples),
# GStreamer (the streamer's encoders and RTSP client, the media server's RTSP server and
# WebRTC; the bridge's H.264 decoder `h264parse ! openh264dec`, both in plugins-bad, which pulls
# in libopenh264), iproute2 and nftables (the bridge's e2e test joins two network namespaces
# with a veth pair, caps its rate with `tc` and drops packets with `nft`), and `just` (1.54 or
# newer: the `up` recipe uses `[continue]`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(libopencv-dev clang libclang-dev pkg-config ffmpeg chromium systemd groff-base fish
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-rtsp gstreamer1.0-nice iproute2 nftables)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: a venv at the repository root. Debian 12 may lack python3, its venv module or pip
# (`python3 -m venv` then fails or makes a venv without pip): install them and try again.
venv="$repo/.venv"
venv_ok() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; }
if ! venv_ok; then
  rm -rf "$venv"
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv "$venv" >/dev/null 2>&1 || ! venv_ok; then
    echo "bootstrap: installing python3 python3-venv python3-pip"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  echo "bootstrap: created the Python venv $venv"
fi
# The package's dependencies, maturin (builds its compiled part), pytest and OpenCV: prebuilt
# wheels only.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
  -r "$repo/python/requirements-dev.txt"
# The package, editable (python/src is used in place): maturin builds the binding
# (crates/framebus-py, release) into the workspace's target/ folder, so the crates it shares
# with `cargo build --release` are compiled once; the extension lands in python/src/framebus/.
echo "bootstrap: building the framebus Python package (crates/framebus-py)"
PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$repo/target" "$venv/bin/python" -m pip install -q \
  --disable-pip-version-check --no-deps --no-build-isolation -e "$repo/python"

# `[continue]` (clean Ctrl-C of `just up`) needs just 1.54: an older one is replaced.
just_is_recent() {
  local version
  version=$(just --version 2>/dev/null | awk '{print $2}')
  [ -n "$version" ] && [ "$(printf '%s\n' 1.54.0 "$version" | sort -V | head -n1)" = 1.54.0 ]
}
if command -v just >/dev/null 2>&1 && ! just_is_recent; then
  echo "bootstrap: just $(just --version) is older than 1.54; installing a newer one"
  if "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade rust-just 2>/dev/null \
    && [ -x "$venv/bin/just" ]; then
    $sudo ln -sf "$venv/bin/just" /usr/local/bin/just
  else
    cargo install just --locked --force
  fi
  hash -r
fi

if ! command -v just >/dev/null 2>&1; then
  echo "bootstrap: installing just"
  # PyPI ships just prebuilt (`rust-just`): seconds instead of minutes of `cargo install`.
  if "$venv/bin/python" -m pip install -q --disable-pip-version-check rust-just 2>/dev/null \
    && [ -x "$venv/bin/just" ]; then
    $sudo ln -sf "$venv/bin/just" /usr/local/bin/just
  fi
  if ! command -v just >/dev/null 2>&1; then
    cargo install just --locked
  fi
fi
command -v just >/dev/null 2>&1 || { echo "bootstrap: just is still not on PATH" >&2; exit 1; }
just_is_recent || { echo "bootstrap: just $(just --version) is older than 1.54" >&2; exit 1; }
