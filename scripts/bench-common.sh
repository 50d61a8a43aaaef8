# shellcheck shell=bash
# Shared by scripts/bench.sh and scripts/bench-replicas.sh (sourced, not run).
. scripts/dev-common.sh

# bench_setup WORK LEDGER_URL: writes into WORK an API key ($api_key), a one-rule policy, the dev
# account key, sasgate.toml with that ledger and the rate limit lifted (one principal drives all
# the load), and the wrk scripts mint.lua and plain.lua (each prints one RESULT line).
bench_setup() {
  local work=$1 ledger=$2 key api_hash
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
[ledger]
url = "$ledger"
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
  cat >"$work/plain.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
  {
    echo 'wrk.method = "POST"'
    echo "wrk.body = '{\"account\":\"benchaccount\",\"container\":\"models\",\"blob\":\"published/model.bin\",\"ttl\":\"15m\"}'"
    echo 'wrk.headers["Content-Type"] = "application/json"'
    echo "wrk.headers[\"Authorization\"] = \"Bearer $api_key\""
    cat "$work/plain.lua"
  } >"$work/mint.lua"
}

# bench_wait PORT: polls /healthz until it answers (10 s at most).
bench_wait() {
  wait_for 0 10 curl -sf -o /dev/null "http://127.0.0.1:$1/healthz" || {
    echo "sasgate did not start on port $1" >&2
    return 1
  }
}

# field LINE NAME: a figure from a RESULT line.
field() { echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }
