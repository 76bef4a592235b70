#!/usr/bin/env bash
# Installs what building and testing framebus needs on Debian 12, only when missing:
# OpenCV and libclang development packages (apt), ffmpeg (test clips, ffprobe, MJPEG client),
# chromium (renders the preview page in the e2e tests, headless), GStreamer (the streamer's
# encoders and RTSP client, the media server's RTSP server and WebRTC), and `just`.
set -euo pipefail

packages=(libopencv-dev clang libclang-dev pkg-config ffmpeg chromium
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-rtsp gstreamer1.0-nice)
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
