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
cat >"$work/sasgate.toml" <<TOML
[server]
listen = "127.0.0.1:18080"
[ledger]
url = "sqlite://$work/ledger.db"
[policy]
dir = "$work/policy"
[limits]
# One principal drives all the load: lift its mint rate limit.
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
./target/release/sasgate serve --config "$work/sasgate.toml" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done

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
cat >"$work/plain.lua" <<LUA
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
threads=$(( conns < 4 ? conns : 4 ))
mint=$(wrk -t"$threads" -c"$conns" -d"$duration" -s "$work/mint.lua" http://127.0.0.1:18080/v1/tokens | grep RESULT)
health=$(wrk -t"$threads" -c"$conns" -d"$duration" -s "$work/plain.lua" http://127.0.0.1:18080/healthz | grep RESULT)
issued=$(sqlite3 "$work/ledger.db" 'select count(*) from issuances' 2>/dev/null || echo "?")
field() { echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }
mint_rps=$(field "$mint" rps); health_rps=$(field "$health" rps)
echo "concurrency $conns, $duration each, SQLite ledger with synchronous=FULL"
echo "POST /v1/tokens : $(field "$mint" rps) req/s  p50 $(field "$mint" p50_ms) ms  p99 $(field "$mint" p99_ms) ms  non-2xx $(field "$mint" non2xx)  errors $(field "$mint" errors)"
echo "GET /healthz    : $(field "$health" rps) req/s  p50 $(field "$health" p50_ms) ms  p99 $(field "$health" p99_ms) ms"
echo "mint / healthz  : $(awk -v a="$mint_rps" -v b="$health_rps" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.5)"
echo "issuances in the ledger: $issued"
echo
cargo bench --quiet --bench policy 2>/dev/null | grep -v '^$' || true
