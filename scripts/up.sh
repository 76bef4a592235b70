#!/usr/bin/env bash
# Starts capture, algo, preview and recorder of every camera in a deployment config and stops them on Ctrl-C.
set -euo pipefail
config=${1:-configs/default.toml}
bin=target/release
pids=()
cameras=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$config" | tail -n +2)
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop INT TERM
for cam in $cameras; do
  "$bin/capture" --config "$config" --camera "$cam" & pids+=($!)
  "$bin/algo" --config "$config" --camera "$cam" & pids+=($!)
  # Readers without a table in the config are not started.
  if grep -q '^\[camera.preview\]' "$config"; then "$bin/preview" --config "$config" --camera "$cam" & pids+=($!); fi
  if grep -q '^\[camera.recorder\]' "$config"; then "$bin/recorder" --config "$config" --camera "$cam" & pids+=($!); fi
done
wait
