#!/usr/bin/env bash
# `make run`: start Azurite (HTTPS, with a self-signed certificate made here on first use) and
# sasgate on its shipped configuration. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/dev-common.sh
mkdir -p data
trap 'kill ${azurite_pid:-} 2>/dev/null || true' EXIT
azurite_start .azurite 10000

make --no-print-directory --quiet release
./target/release/sasgate dev seed --config config/sasgate.toml
# Not exec: this shell stays to run the EXIT trap that stops Azurite. Ctrl-C reaches sasgate
# directly (same process group); a TERM sent to this script is passed on. sasgate then drains and
# exits, and so does the script, with sasgate's status.
./target/release/sasgate serve --config config/sasgate.toml &
sasgate_pid=$!
trap 'kill -TERM "$sasgate_pid" 2>/dev/null || true' INT TERM
status=0
# wait returns early when a trapped signal arrives: wait again until sasgate has exited.
while kill -0 "$sasgate_pid" 2>/dev/null; do
  wait "$sasgate_pid" && status=0 || status=$?
done
exit "$status"
