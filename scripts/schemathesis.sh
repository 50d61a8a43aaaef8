#!/usr/bin/env bash
# Property-based tests of the live API against its own OpenAPI document (GET /openapi.json):
# schemathesis generates requests from the document, valid and invalid, and fails on any 5xx and
# on any response the document does not describe (status, content type, headers, body schema).
#
# It runs target/release/sasgate (built if missing; SCHEMATHESIS_BIN overrides) on a free port,
# with a fresh SQLite ledger and an admin API key, in front of a fresh Azurite over HTTPS seeded
# like `make run`. Everything lives in a temporary directory and is stopped on exit. Exits
# non-zero on any failure. Knobs: SCHEMATHESIS_SEED, SCHEMATHESIS_MAX_EXAMPLES, PYTHON; further
# arguments go to `schemathesis run`. Takes about a minute once its venv exists.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/dev-common.sh

bin=${SCHEMATHESIS_BIN:-target/release/sasgate}
seed=${SCHEMATHESIS_SEED:-20261129}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-300}

pytools

[ -x "$bin" ] || make --no-print-directory release
[ -x node_modules/.bin/azurite-blob ] || npm ci --no-audit --no-fund

work=$(mktemp -d "${TMPDIR:-/tmp}/sasgate-schemathesis.XXXXXX")
sasgate_pid=
schemathesis_pid=
cleanup() {
  local status=$?
  set +e
  # Unquoted: the unset ones vanish.
  # shellcheck disable=SC2086
  stop_and_show "$status" "$work" $schemathesis_pid $sasgate_pid ${azurite_pid:-}
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

azurite_port=$(free_port)
azurite_start "$work/azurite" "$azurite_port"

key=$("$bin" keygen)
api_key=$(echo "$key" | sed -n 's/^api key[^:]*: *//p')
api_hash=$(echo "$key" | sed -n 's/^api_key_sha256[^:]*: *//p')
printf 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==' \
  >"$work/account.key"
port=$(free_port)
# The shipped policies, with their OIDC issuers trusting the test key set (tests/keys/) rather
# than fetching keys; the admin is also a researcher, so that the document's examples mint.
cat >"$work/sasgate.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
[ledger]
url = "sqlite://$work/ledger.db"
[policy]
dir = "$PWD/policy"
[limits]
mint_burst = 1000000
mint_rate_per_minute = 1000000
[log]
format = "json"
level = "warn"
[[auth.oidc]]
name = "github"
issuer = "https://token.actions.githubusercontent.com"
audiences = ["sasgate"]
jwks_file = "$PWD/tests/keys/oidc-jwks.json"
required_claims = ["repository", "repository_owner_id", "ref"]
[[auth.oidc]]
name = "gitlab"
issuer = "https://gitlab.com"
audiences = ["sasgate"]
jwks_file = "$PWD/tests/keys/oidc-jwks.json"
required_claims = ["project_path", "ref", "ref_type"]
[[accounts]]
name = "devstoreaccount1"
blob_endpoint = "https://127.0.0.1:$azurite_port/devstoreaccount1"
key_file = "$work/account.key"
ca_file = "$work/azurite/cert.pem"
[principals.admin]
api_key_sha256 = "$api_hash"
roles = ["admin", "researcher"]
TOML

"$bin" dev seed --config "$work/sasgate.toml" >/dev/null
"$bin" serve --config "$work/sasgate.toml" >"$work/sasgate.log" 2>&1 &
sasgate_pid=$!
wait_for "$sasgate_pid" 30 curl -sf -o /dev/null "http://127.0.0.1:$port/readyz"

# Every check but positive_data_acceptance, which cannot hold for this API by design: it expects
# a 2xx for every request the schema allows, but a well-formed request is refused by policy
# (403), names an issuance that does not exist (404) or a link that is gone (410); the schema
# describes the shape, the policy decides. (use_after_free stays on but has nothing to check:
# the API has no DELETE.)
# The emergency stops run too: against this throwaway emulator they only delete stored access
# policies the run itself created (later mints make new ones), and the user delegation stop is
# refused (400) because the emulator account does not sign with Entra ID.
# Run from target/schemathesis-run: that is where it keeps its state (.schemathesis/, for
# `st replay`, and .hypothesis/) and the JUnit report.
mkdir -p target/schemathesis-run
cd target/schemathesis-run
"../../$PYTOOLS/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $api_key" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --seed "$seed" \
  --max-examples "$max_examples" \
  --generation-database none \
  --request-timeout 15 \
  --max-redirects 0 \
  --no-color \
  --report junit --report-dir report \
  "$@" &
# In the background and waited for, so that a signal reaches the trap (and stops everything) at
# once rather than when schemathesis is done.
schemathesis_pid=$!
wait "$schemathesis_pid"
