#!/usr/bin/env bash
# Mint throughput against /healthz, on the SQLite ledger with fsync on (synchronous=FULL).
# Prints both throughputs, their ratio and mint p50/p99; then the policy decision benchmark.
# Needs wrk (Debian package `wrk`). Minting signs locally, so no storage emulator is needed.
# Usage: scripts/bench.sh [duration, default 20s] [concurrency, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}
conns=${2:-64}
command -v wrk >/dev/null || { echo "install wrk first: apt-get install wrk" >&2; exit 1; }

cargo build --quiet --release
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

. scripts/bench-common.sh
bench_setup "$work" "sqlite://$work/ledger.db"
SASGATE_SERVER__LISTEN=127.0.0.1:18080 ./target/release/sasgate serve --config "$work/sasgate.toml" 2>"$work/server.log" &
server=$!
bench_wait 18080

threads=$(( conns < 4 ? conns : 4 ))
mint=$(wrk -t"$threads" -c"$conns" -d"$duration" -s "$work/mint.lua" http://127.0.0.1:18080/v1/tokens | grep RESULT)
health=$(wrk -t"$threads" -c"$conns" -d"$duration" -s "$work/plain.lua" http://127.0.0.1:18080/healthz | grep RESULT)
issued=$(sqlite3 "$work/ledger.db" 'select count(*) from issuances' 2>/dev/null || echo "?")
mint_rps=$(field "$mint" rps); health_rps=$(field "$health" rps)
echo "concurrency $conns, $duration each, SQLite ledger with synchronous=FULL"
echo "POST /v1/tokens : $(field "$mint" rps) req/s  p50 $(field "$mint" p50_ms) ms  p99 $(field "$mint" p99_ms) ms  non-2xx $(field "$mint" non2xx)  errors $(field "$mint" errors)"
echo "GET /healthz    : $(field "$health" rps) req/s  p50 $(field "$health" p50_ms) ms  p99 $(field "$health" p99_ms) ms"
echo "mint / healthz  : $(awk -v a="$mint_rps" -v b="$health_rps" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.5)"
echo "issuances in the ledger: $issued"
echo
cargo bench --quiet --bench policy 2>/dev/null | grep -v '^$' || true
