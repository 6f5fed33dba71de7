#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a fixed number of executions, starting from its
# committed corpus, and prints the executions, seconds and executions per second of each.
# New inputs go to a scratch directory, so the tree stays as it was; a crash stops the script
# with libFuzzer's report and leaves the input in fuzz/artifacts/<target>/.
#
#   RILL_FUZZ_RUNS     executions per target (default 50000: CI's smoke run; 10000000 for a
#                      long run)
#   RILL_FUZZ_TARGETS  a space-separated subset of the targets (default: all)
#
# Needs cargo-fuzz (scripts/setup.sh installs it); RUSTC_BOOTSTRAP lets the pinned stable
# toolchain build with the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
runs="${RILL_FUZZ_RUNS:-50000}"
targets="${RILL_FUZZ_TARGETS:-$(cargo fuzz list)}"
cargo fuzz build
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $targets; do
  flags=(-runs="$runs" -print_final_stats=1)
  # The request decoder must allocate in proportion to the frame: a 64 MB ceiling catches a
  # length field trusted before it is checked against the bytes left.
  if [ "$target" = broker_request ]; then flags+=(-malloc_limit_mb=64); fi
  mkdir -p "$scratch/$target"
  start="$(date +%s.%N)"
  if ! cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- "${flags[@]}" \
    >"$scratch/$target.log" 2>&1; then
    tail -n 60 "$scratch/$target.log" >&2
    echo "fuzz: $target failed" >&2
    exit 1
  fi
  seconds="$(echo "$(date +%s.%N) - $start" | bc)"
  executed="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$target.log" | grep -o '[0-9]*$')"
  printf 'fuzz: %-16s %10s executions in %6.1f s (%s/s)\n' "$target" "$executed" "$seconds" \
    "$(echo "$executed / $seconds" | bc)"
done
