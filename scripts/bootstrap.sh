#!/usr/bin/env bash
# Installs what building and testing framebus needs on Debian 12, only when missing:
# OpenCV and libclang development packages (apt), ffmpeg (test clips, ffprobe, MJPEG client),
# chromium (renders the preview page in the e2e tests, headless), systemd (`systemd-analyze
# verify` checks the units `ctl systemd` writes; nothing is started), groff-base (renders the
# man pages `ctl man` writes), and `just` (1.54 or newer: the `up` recipe uses `[continue]`).
set -euo pipefail

packages=(libopencv-dev clang libclang-dev pkg-config ffmpeg chromium systemd groff-base)
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

# `[continue]` (clean Ctrl-C of `just up`) needs just 1.54: an older one is replaced.
just_is_recent() {
  local version
  version=$(just --version 2>/dev/null | awk '{print $2}')
  [ -n "$version" ] && [ "$(printf '%s\n' 1.54.0 "$version" | sort -V | head -n1)" = 1.54.0 ]
}
if command -v just >/dev/null 2>&1 && ! just_is_recent; then
  echo "bootstrap: just $(just --version) is older than 1.54; installing a newer one"
  python3 -m pip install -q --upgrade rust-just 2>/dev/null || cargo install just --locked --force
  hash -r
fi

if ! command -v just >/dev/null 2>&1; then
  echo "bootstrap: installing just"
  if python3 -m pip --version >/dev/null 2>&1 && python3 -m pip install -q rust-just 2>/dev/null; then
    scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    if ! command -v just >/dev/null 2>&1 && [ -x "$scripts_dir/just" ]; then
      $sudo ln -sf "$scripts_dir/just" /usr/local/bin/just
    fi
  fi
  if ! command -v just >/dev/null 2>&1; then
    cargo install just --locked
  fi
fi
command -v just >/dev/null 2>&1 || { echo "bootstrap: just is still not on PATH" >&2; exit 1; }
just_is_recent || { echo "bootstrap: just $(just --version) is older than 1.54" >&2; exit 1; }
