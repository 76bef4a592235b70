#!/usr/bin/env bash
# Makes `ctl` callable by name: a link in ~/.cargo/bin (on PATH after rustup) to the built ctl
# of this checkout. A link, not a copy: `ctl up` starts the other binaries from the folder its
# real executable is in. An existing ctl there that is not a link (another program) is left
# alone, with a note. Usage: scripts/link-ctl.sh target/release/ctl
set -euo pipefail
built="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
bin_dir="${CARGO_HOME:-$HOME/.cargo}/bin"
link="$bin_dir/ctl"
[ -x "$built" ] || { echo "link-ctl: $built is not built" >&2; exit 1; }
mkdir -p "$bin_dir"
if [ -e "$link" ] && [ ! -L "$link" ]; then
  echo "link-ctl: $link exists and is not a link; leaving it (call $built instead)" >&2
  exit 0
fi
if [ "$(readlink "$link" 2>/dev/null)" != "$built" ]; then
  ln -sfn "$built" "$link"
  echo "link-ctl: ctl is now on PATH: $link -> $built"
fi
case ":$PATH:" in *":$bin_dir:"*) ;; *) echo "link-ctl: add $bin_dir to PATH to call ctl by name" >&2 ;; esac
