#!/usr/bin/env bash
# Runs every fuzz target (fuzz/README.md) for FUZZ_SECONDS each (default 60), one after the
# other, starting from the committed corpus in fuzz/corpus/<target>/, which it leaves untouched
# (new inputs go to a scratch directory). For each target it prints one line:
#   RELIABILITY fuzz <target> runs=<n> exec_per_s=<n> corpus=<n> crashes=<n>
# and exits non-zero if any target found a crash, a failed property, a leak or a timeout; the
# input is kept in fuzz/artifacts/<target>/ (reproduce with `cargo fuzz run <target> <file>`).
#
# cargo-fuzz is installed from crates.io when missing. It drives rustc with unstable flags
# (-Zsanitizer=address, sanitizer coverage), which the stable toolchain accepts with
# RUSTC_BOOTSTRAP=1; no nightly toolchain is needed.
#
# FUZZ_TARGETS="names sas_parse" limits the run to those targets.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-sas_parse sas_lint names policy_load mint_body}"
export RUSTC_BOOTSTRAP=1
# The same flags for build and run, so that `cargo fuzz run` does not build again: optimised,
# with debug assertions (integer overflow panics), AddressSanitizer.
flags=(-O -a)

if ! cargo fuzz --help >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >&2 || {
    echo "fuzz: cargo-fuzz could not be installed" >&2
    exit 2
  }
fi

echo "fuzz: building the targets" >&2
if ! cargo fuzz build "${flags[@]}" >&2; then
  echo "fuzz: the fuzz targets do not build" >&2
  exit 2
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0

dict_of() {
  case "$1" in
    sas_parse | sas_lint) echo fuzz/dicts/sas.dict ;;
    policy_load) echo fuzz/dicts/policy.dict ;;
    mint_body) echo fuzz/dicts/mint.dict ;;
    names) echo fuzz/dicts/names.dict ;;
  esac
}

for target in $targets; do
  log="$scratch/$target.log"
  mkdir -p "$scratch/$target" "fuzz/corpus/$target" "fuzz/artifacts/$target"
  before=$(find "fuzz/artifacts/$target" -type f | wc -l)
  # cargo-fuzz itself points libFuzzer's artifacts at fuzz/artifacts/<target>/.
  args=(-max_total_time="$seconds" -timeout=25 -print_final_stats=1)
  dict=$(dict_of "$target")
  [ -n "$dict" ] && args+=(-dict="$dict")
  # The scratch directory comes first: libFuzzer writes new inputs only to the first corpus.
  cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "fuzz/corpus/$target" \
    -- "${args[@]}" >"$log" 2>&1
  status=$?
  after=$(find "fuzz/artifacts/$target" -type f | wc -l)
  crashes=$((after - before))
  if [ "$status" != 0 ] && [ "$crashes" = 0 ]; then
    crashes=1
  fi

  # libFuzzer's final stats, or its last status line when a crash cut the run short.
  runs=$(grep -a '^stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}')
  eps=$(grep -a '^stat::average_exec_per_sec:' "$log" | tail -1 | awk '{print $2}')
  last=$(grep -aE '^#[0-9]+' "$log" | tail -1)
  [ -n "$runs" ] || runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
  [ -n "$eps" ] || eps=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last")
  corpus=$(sed -nE 's/.*corp: ([0-9]+)\/.*/\1/p' <<<"$last")
  echo "RELIABILITY fuzz $target runs=${runs:-0} exec_per_s=${eps:-0} corpus=${corpus:-0} crashes=$crashes"
  if [ "$crashes" != 0 ]; then
    failed=1
    echo "fuzz: $target failed (exit $status); the end of its log:" >&2
    tail -40 "$log" >&2
  fi
done

exit "$failed"
