#!/usr/bin/env bash
# Reliability figures (issue 9 items 2-5), in one table. Runs, in order:
#   1. attacks: cargo test --release --locked --test attacks -- --nocapture (no --release
#      with --quick, below)
#      (one line per suite: RELIABILITY attacks <suite> attempts=<n> accepted=<m>)
#   2. faults:  cargo test --release --locked --test faults -- --nocapture --include-ignored
#      (RELIABILITY faults <scenario> requests= issued= refused_503= unrecorded= recovery_ms=)
#   3. fuzz:    scripts/fuzz.sh for FUZZ_SECONDS (default 30) per target
#      (RELIABILITY fuzz <target> runs= exec_per_s= corpus= crashes=)
#   4. soak:    scripts/soak.sh for SOAK_DURATION (default 10m) at SOAK_RATE (default 200/s)
#      (RELIABILITY soak <name> rate= achieved= requests= errors= p50_ms= p99_ms= rss_…)
# Every part runs even if an earlier one failed. Full logs: target/reliability/<part>.log.
# It then prints one table, suite | case | figures | verdict, where a line passes by its rule:
#   attacks accepted=0; faults unrecorded=0; fuzz crashes=0; soak errors=0 and RSS flat (the
#   driver's judgement, examples/soak.rs) and the rate kept.
# A part that exits non-zero, or prints no RELIABILITY line (a test file not there yet, a build
# error), fails loudly with a row of its own. Only fuzzing may be skipped: when scripts/fuzz.sh
# does not exist, or cargo-fuzz cannot be installed (scripts/fuzz.sh installs it); the
# table says so. Exits non-zero if anything failed.
#
# --quick (the CI flavour, the last step of `make test`; one minute once built, plus a release
# build of the soak driver the first time): attacks and faults in the test build `cargo test`
# made (they are not compiled again, only run again for their figures), faults without
# --include-ignored (the long scenarios stay out); no fuzzing; a
# 30-second soak at 50 requests/s that checks every answer but does not judge RSS (30 s is all
# warm-up). SOAK_DURATION/SOAK_RATE still override.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

quick=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (only --quick)" >&2; exit 2 ;;
  esac
done

logs=target/reliability
mkdir -p "$logs"
rows=()    # "suite|case|figures|verdict"
failed=0

row() { rows+=("$1|$2|$3|$4"); case $4 in FAIL*) failed=1 ;; esac; }

# figure LINE KEY: the value of KEY=… in LINE (empty when absent).
figure() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1; }

# run_part NAME COMMAND...: runs COMMAND with its output shown and in $logs/NAME.log; sets
# part_status.
run_part() {
  local name=$1
  shift
  echo
  echo "=== reliability: $name: $* ==="
  "$@" 2>&1 | tee "$logs/$name.log"
  part_status=${PIPESTATUS[0]}
  echo "=== reliability: $name: exit status $part_status ==="
}

# collect NAME SUITE RULE: a row for each RELIABILITY SUITE line of NAME's log, judged by RULE
# (a function of the line that prints the verdict); then a failure row if the part exited
# non-zero or printed no line.
collect() {
  local name=$1 suite=$2 rule=$3 n=0 line case figures
  while IFS= read -r line; do
    n=$((n + 1))
    case=$(echo "$line" | awk '{ print $3 }')
    # Only the key=value figures: with --nocapture a test's line can share a terminal line
    # with the harness's own "test … ok".
    figures=$(echo "$line" | tr ' ' '\n' | sed -n '4,$p' | grep -E '^[a-z0-9_]+=[^ ]*$' | tr '\n' ' ')
    row "$suite" "$case" "${figures% }" "$($rule "$line")"
  done < <(grep -ao "RELIABILITY $suite [^ ]* .*" "$logs/$name.log")
  if [ "$n" = 0 ]; then
    row "$suite" "-" "no RELIABILITY $suite line (see $logs/$name.log)" "FAIL"
  elif [ "$part_status" != 0 ]; then
    row "$suite" "-" "exit status $part_status (see $logs/$name.log)" "FAIL"
  fi
}

zero_rule() { # zero_rule KEY LINE
  local v
  v=$(figure "$2" "$1")
  if [ -z "$v" ]; then echo "FAIL: no $1="; elif [ "$v" = 0 ]; then echo PASS; else echo "FAIL: $1=$v"; fi
}
attacks_rule() { zero_rule accepted "$1"; }
faults_rule() { zero_rule unrecorded "$1"; }
fuzz_rule() { zero_rule crashes "$1"; }
soak_rule() {
  local verdict
  verdict=$(zero_rule errors "$1")
  [ "$verdict" = PASS ] || { echo "$verdict"; return; }
  if grep -q 'NOT FLAT' "$logs/soak.log"; then echo "FAIL: RSS not flat"
  elif grep -q 'fell behind' "$logs/soak.log"; then echo "FAIL: rate not kept"
  elif grep -q 'RSS not judged' "$logs/soak.log"; then echo "PASS (RSS not judged)"
  elif grep -q 'RSS trend: .*; flat$' "$logs/soak.log"; then echo PASS
  else echo "FAIL: no RSS verdict"
  fi
}

make --no-print-directory deps >/dev/null

# The full run measures the release build; --quick reuses the test build of `cargo test`.
profile=(--release)
[ "$quick" = 1 ] && profile=()

# 1. Attacks.
if [ -f tests/attacks.rs ]; then
  run_part attacks cargo test ${profile[@]+"${profile[@]}"} --locked --test attacks -- --nocapture
  collect attacks attacks attacks_rule
else
  row attacks "-" "tests/attacks.rs does not exist" "FAIL"
fi

# 2. Faults.
if [ -f tests/faults.rs ]; then
  if [ "$quick" = 1 ]; then
    run_part faults cargo test ${profile[@]+"${profile[@]}"} --locked --test faults -- --nocapture
  else
    run_part faults cargo test ${profile[@]+"${profile[@]}"} --locked --test faults -- --nocapture --include-ignored
  fi
  collect faults faults faults_rule
else
  row faults "-" "tests/faults.rs does not exist" "FAIL"
fi

# 3. Fuzzing.
if [ "$quick" = 1 ]; then
  row fuzz "-" "not run with --quick" "SKIP"
elif [ ! -x scripts/fuzz.sh ]; then
  row fuzz "-" "scripts/fuzz.sh does not exist (yet)" "SKIP"
else
  run_part fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-30}" scripts/fuzz.sh
  if [ "$part_status" != 0 ] && ! grep -aq 'RELIABILITY fuzz ' "$logs/fuzz.log" \
    && ! cargo fuzz --help >/dev/null 2>&1; then
    row fuzz "-" "cargo-fuzz could not be installed (see $logs/fuzz.log)" "SKIP"
  else
    collect fuzz fuzz fuzz_rule
  fi
fi

# 4. Soak.
if [ "$quick" = 1 ]; then
  run_part soak env SOAK_DURATION="${SOAK_DURATION:-30s}" SOAK_RATE="${SOAK_RATE:-50}" \
    SOAK_NAME=quick scripts/soak.sh --no-rss-verdict
else
  run_part soak env SOAK_DURATION="${SOAK_DURATION:-10m}" SOAK_RATE="${SOAK_RATE:-200}" \
    scripts/soak.sh
fi
collect soak soak soak_rule

# The table.
echo
echo "=== reliability$([ "$quick" = 1 ] && echo " --quick"): $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) ==="
{
  echo "suite|case|figures|verdict"
  printf '%s\n' "${rows[@]}"
} | awk -F'|' '
  { for (i = 1; i <= 4; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
  END {
    for (r = 1; r <= NR; r++) {
      printf "%-*s | %-*s | %-*s | %s\n", w[1], cell[r, 1], w[2], cell[r, 2], w[3], cell[r, 3], cell[r, 4]
      if (r == 1) printf "%s-+-%s-+-%s-+-%s\n", sep(w[1]), sep(w[2]), sep(w[3]), sep(w[4])
    }
  }
  function sep(n,   s) { s = ""; while (length(s) < n) s = s "-"; return s }'
if [ "$failed" = 0 ]; then
  echo "reliability: all PASS (logs in $logs/)"
else
  echo "reliability: FAIL (logs in $logs/)" >&2
fi
exit "$failed"
