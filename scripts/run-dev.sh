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
exec ./target/release/sasgate serve --config config/sasgate.toml
