#!/usr/bin/env bash
# valgrind memcheck over the plain C++ core tests (native/core/test/test_*.cc). Builds its own
# copies (-O1 -g, no sanitizers) under build/core-tests-valgrind/, so it never touches the
# binaries or results.json of `npm run test:core`.
# Usage: scripts/valgrind-core.sh [filter]
# Env: VALGRIND_SKIP="test_a test_b" skips tests; VALGRIND_TIMEOUT seconds per test (default 600);
#      CXX (default g++).
set -uo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind-core: valgrind not installed (apt-get install -y valgrind)"; exit 1; }
FILTER=${1:-}
OUT=build/core-tests-valgrind
CORE=native/core
CXX=${CXX:-g++}
mkdir -p "$OUT"
FLAGS=(-std=c++17 -O1 -g -fno-omit-frame-pointer -pthread -I "$CORE" -I "$CORE/test/support")
JOBS=$(nproc)

echo "== building core objects ($OUT)"
objs=()
pids=()
for src in "$CORE"/*.cc "$CORE"/test/support/*.cc; do  # support: test-only code, never shipped
  obj="$OUT/$(basename "$src" .cc).o"
  objs+=("$obj")
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$CORE" -maxdepth 1 -name '*.h' -newer "$obj" -print -quit)" ]; then
    "$CXX" "${FLAGS[@]}" -c -o "$obj" "$src" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$JOBS" ]; then wait "${pids[0]}" || exit 1; pids=("${pids[@]:1}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p" || exit 1; done

status=0
summary=()
for t in "$CORE"/test/test_*.cc; do
  name=$(basename "$t" .cc)
  [ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]] && continue
  if [[ " ${VALGRIND_SKIP:-} " == *" $name "* ]]; then summary+=("$name: skipped (VALGRIND_SKIP)"); continue; fi
  "$CXX" "${FLAGS[@]}" -o "$OUT/$name" "$t" "${objs[@]}" || { summary+=("$name: BUILD FAILED"); status=1; continue; }
  echo "== valgrind $name"
  start=$(date +%s)
  timeout "${VALGRIND_TIMEOUT:-600}" valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --track-origins=yes \
    --fair-sched=yes --log-file="$OUT/$name.valgrind.log" "./$OUT/$name" >"$OUT/$name.out" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  errors=$(grep -oE 'ERROR SUMMARY: [0-9]+ errors' "$OUT/$name.valgrind.log" | tail -1 | grep -oE '[0-9]+' | head -1)
  cases=$(grep -oE '[0-9]+ passed, [0-9]+ failed' "$OUT/$name.out" | tail -1)
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("$name: FAILED (exit $rc, ${errors:-?} valgrind errors, ${cases:-no summary}, ${secs}s) see $OUT/$name.valgrind.log")
    grep -A12 -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and|.*definitely lost)' "$OUT/$name.valgrind.log" | head -60
  else
    summary+=("$name: clean (${errors:-0} errors, ${cases:-?}, ${secs}s)")
  fi
done
echo "== valgrind summary"
printf '%s\n' "${summary[@]}"
exit "$status"
