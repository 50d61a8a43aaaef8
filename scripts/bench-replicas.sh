#!/usr/bin/env bash
# Mint throughput of two replicas on one PostgreSQL ledger, against /healthz of the same two.
# wrk drives both replicas at once (half the connections each); the figures are summed (req/s)
# and given per replica (p50/p99). Then `sasgate ledger verify` checks the chain they built.
# Needs wrk and a PostgreSQL at $SASGATE_TEST_PG (default postgres://postgres@127.0.0.1:5432/test).
# Usage: scripts/bench-replicas.sh [duration, default 20s] [total concurrency, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}
conns=${2:-64}
half=$(( conns / 2 ))
pg=${SASGATE_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null || { echo "install wrk first: apt-get install wrk" >&2; exit 1; }

cargo build --quiet --release
work=$(mktemp -d)
schema="sg_bench_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
trap 'kill $a $b 2>/dev/null || true; psql -q "$pg" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

. scripts/bench-common.sh
sep='?'; case "$pg" in *\?*) sep='&';; esac
bench_setup "$work" "$pg${sep}schema=$schema"
SASGATE_SERVER__LISTEN=127.0.0.1:18080 ./target/release/sasgate serve --config "$work/sasgate.toml" 2>"$work/a.log" &
a=$!
SASGATE_SERVER__LISTEN=127.0.0.1:18081 ./target/release/sasgate serve --config "$work/sasgate.toml" 2>"$work/b.log" &
b=$!
bench_wait 18080
bench_wait 18081

threads=$(( half < 2 ? half : 2 ))
both() { # script path
  wrk -t"$threads" -c"$half" -d"$duration" -s "$1" "http://127.0.0.1:18080$2" >"$work/wa" &
  local w=$!
  wrk -t"$threads" -c"$half" -d"$duration" -s "$1" "http://127.0.0.1:18081$2" >"$work/wb"
  wait $w
  grep RESULT "$work/wa"; grep RESULT "$work/wb"
}
mint=$(both "$work/mint.lua" /v1/tokens)
health=$(both "$work/plain.lua" /healthz)
ma=$(echo "$mint" | sed -n 1p); mb=$(echo "$mint" | sed -n 2p)
ha=$(echo "$health" | sed -n 1p); hb=$(echo "$health" | sed -n 2p)
mint_rps=$(awk -v a="$(field "$ma" rps)" -v b="$(field "$mb" rps)" 'BEGIN { print a + b }')
health_rps=$(awk -v a="$(field "$ha" rps)" -v b="$(field "$hb" rps)" 'BEGIN { print a + b }')
echo "two replicas on PostgreSQL, concurrency $conns ($half each), $duration each"
echo "POST /v1/tokens : $mint_rps req/s  replica A p50 $(field "$ma" p50_ms) ms p99 $(field "$ma" p99_ms) ms, B p50 $(field "$mb" p50_ms) ms p99 $(field "$mb" p99_ms) ms  non-2xx $(field "$ma" non2xx)+$(field "$mb" non2xx)"
echo "GET /healthz    : $health_rps req/s  replica A p50 $(field "$ha" p50_ms) ms p99 $(field "$ha" p99_ms) ms"
echo "mint / healthz  : $(awk -v a="$mint_rps" -v b="$health_rps" 'BEGIN { printf "%.2f", a / b }')"
kill $a $b; wait $a $b 2>/dev/null || true
./target/release/sasgate ledger verify --config "$work/sasgate.toml"
