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

key=$(./target/release/sasgate keygen)
api_key=$(echo "$key" | sed -n 's/^api key[^:]*: *//p')
api_hash=$(echo "$key" | sed -n 's/^api_key_sha256[^:]*: *//p')
mkdir -p "$work/policy"
cat >"$work/policy/bench.toml" <<TOML
[[rule]]
id = "bench-read"
principals = ["role:bench"]
account = "benchaccount"
containers = ["models"]
permissions = "r"
max_ttl = "1h"
TOML
printf 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==' >"$work/account.key"
sep='?'; case "$pg" in *\?*) sep='&';; esac
cat >"$work/sasgate.toml" <<TOML
[ledger]
url = "$pg${sep}schema=$schema"
[policy]
dir = "$work/policy"
[limits]
mint_burst = 100000000
mint_rate_per_minute = 100000000
[log]
level = "warn"
[[accounts]]
name = "benchaccount"
key_file = "$work/account.key"
[principals.bench]
api_key_sha256 = "$api_hash"
roles = ["bench"]
TOML
SASGATE_SERVER__LISTEN=127.0.0.1:18080 ./target/release/sasgate serve --config "$work/sasgate.toml" 2>"$work/a.log" &
a=$!
SASGATE_SERVER__LISTEN=127.0.0.1:18081 ./target/release/sasgate serve --config "$work/sasgate.toml" 2>"$work/b.log" &
b=$!
for port in 18080 18081; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done

cat >"$work/mint.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"account":"benchaccount","container":"models","blob":"published/model.bin","ttl":"15m"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $api_key"
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
sed -n '/^done/,$p' "$work/mint.lua" >"$work/plain.lua"
threads=$(( half < 2 ? half : 2 ))
both() { # script path
  wrk -t"$threads" -c"$half" -d"$duration" -s "$1" "http://127.0.0.1:18080$2" >"$work/wa" &
  local w=$!
  wrk -t"$threads" -c"$half" -d"$duration" -s "$1" "http://127.0.0.1:18081$2" >"$work/wb"
  wait $w
  grep RESULT "$work/wa"; grep RESULT "$work/wb"
}
field() { echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }
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
