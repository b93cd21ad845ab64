#!/usr/bin/env bash
# libFuzzer over the plain C++ core (native/core/fuzz/fuzz_*.cc), built with clang
# -fsanitize=fuzzer,address,undefined under build/fuzz/. Runs each harness for a bounded time
# (default 30 s; first argument or FUZZ_SECONDS) and prints executions and coverage per harness.
# Corpora persist in build/fuzz/corpus/<harness> (seeded from native/core/fuzz/corpus/<harness>
# when that exists); crash inputs land in build/fuzz/artifacts/. Exit 1 on any crash or finding.
# Usage: scripts/fuzz.sh [seconds] [harness-filter]
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-${FUZZ_SECONDS:-30}}
FILTER=${2:-}
CLANGXX=${CLANGXX:-}
if [ -z "$CLANGXX" ]; then
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$c" >/dev/null 2>&1; then CLANGXX=$c; break; fi
  done
fi
[ -n "$CLANGXX" ] || { echo "fuzz: clang++ not found (apt-get install -y clang)"; exit 1; }
OUT=build/fuzz
mkdir -p "$OUT/artifacts"
CORE=native/core
FLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I "$CORE" -pthread)

# Core sources each harness links (only what it exercises: fast builds, focused coverage).
declare -A DEPS=(
  [fuzz_batch_plan]="batch_plan.cc overlap_tracker.cc"
  [fuzz_dsa_hw]="dsa_hw.cc"
  [fuzz_pagefault]="dsa_hw.cc"
)

status=0
summary=()
for src in "$CORE"/fuzz/fuzz_*.cc; do
  name=$(basename "$src" .cc)
  [ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]] && continue
  deps=()
  for d in ${DEPS[$name]:-}; do deps+=("$CORE/$d"); done
  echo "== $name: build"
  if ! "$CLANGXX" "${FLAGS[@]}" -o "$OUT/$name" "$src" "${deps[@]}" 2>"$OUT/$name.build.log"; then
    cat "$OUT/$name.build.log"; echo "$name: build failed"; status=1; continue
  fi
  corpus="$OUT/corpus/$name"
  mkdir -p "$corpus"
  [ -d "$CORE/fuzz/corpus/$name" ] && cp -n "$CORE/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
  echo "== $name: fuzzing ${SECONDS_PER}s"
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
    "./$OUT/$name" -max_total_time="$SECONDS_PER" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$OUT/artifacts/$name-" "$corpus" >"$OUT/$name.log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$name.log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -oE '(DONE|pulse|NEW|REDUCE|INITED) +cov: [0-9]+ ft: [0-9]+' "$OUT/$name.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
  units=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -ne 0 ]; then
    grep -E "ERROR|FUZZ_CHECK|runtime error|Test unit written" "$OUT/$name.log" | head -20
    echo "$name: FAILED (exit $rc), see $OUT/$name.log"
    status=1
    summary+=("$name: FAILED after ${execs:-?} execs")
  else
    summary+=("$name: ${execs:-?} execs, ${cov:-cov ?}, corpus $units")
  fi
done
echo "== fuzz summary (${SECONDS_PER}s each)"
printf '%s\n' "${summary[@]}"
exit "$status"
