#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run (npm run test:asan).
#  1. Builds the addon with -fsanitize=address,undefined in a separate tree (build-asan/), never
#     touching build/ (other processes may be running tests against it).
#  2. Runs the plain C++ core tests built with the same sanitizers (run-core-tests.js --sanitize).
#  3. Runs the vitest suite with libasan preloaded into node and DMACOPY_NATIVE_PATH pointing at
#     the sanitized addon.
# Env: ASAN_VITEST_FILTER="file patterns" limits step 3 (default: the whole suite);
#      ASAN_SKIP_CORE=1 skips step 2; ASAN_SKIP_BUILD=1 reuses an existing build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build-asan
CXX=${CXX:-g++}
SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

if [ "${ASAN_SKIP_BUILD:-0}" != 1 ]; then
  echo "== building the sanitized addon in build-asan/"
  rm -rf "$OUT/native" "$OUT/build"
  mkdir -p "$OUT"
  cp -r native "$OUT/native"
  ln -sfn "$ROOT/node_modules" "$OUT/node_modules"
  # binding.gyp with the sanitizer flags added (compile and link), -O1 -g for usable reports.
  SAN_FLAGS="$SAN_FLAGS" node -e '
    const fs = require("node:fs");
    const g = JSON.parse(fs.readFileSync("binding.gyp", "utf8"));
    const flags = process.env.SAN_FLAGS.split(" ");
    for (const t of g.targets) {
      t.cflags_cc = [...(t.cflags_cc || []), ...flags, "-g"];
      t.cflags = [...(t.cflags || []), ...flags, "-g"];
      t.ldflags = [...(t.ldflags || []), ...flags];
      const rel = t.configurations && t.configurations.Release;
      if (rel) { rel.cflags_cc = ["-O1", "-g"]; rel["cflags_cc!"] = ["-O2", "-O3"]; }
    }
    fs.writeFileSync(process.argv[1], JSON.stringify(g, null, 2));
  ' "$OUT/binding.gyp"
  GYP=$(node -p 'try { require.resolve("node-gyp/bin/node-gyp.js") } catch { "" }')
  [ -n "$GYP" ] || GYP="$(npm root -g 2>/dev/null)/npm/node_modules/node-gyp/bin/node-gyp.js"
  NODEDIR_ARGS=()
  [ -f /usr/include/node/node_version.h ] && NODEDIR_ARGS=(--nodedir=/usr)
  (cd "$OUT" && CXX="$CXX" node "$GYP" rebuild "${NODEDIR_ARGS[@]}" -j "$(nproc)" >"$OUT/gyp.log" 2>&1) || {
    tail -40 "$OUT/gyp.log"; echo "sanitized addon build failed"; exit 1; }
fi
ADDON=$OUT/build/Release/dmacopy.node
[ -f "$ADDON" ] || { echo "missing $ADDON"; exit 1; }

LIBASAN=$($CXX -print-file-name=libasan.so)
LIBUBSAN=$($CXX -print-file-name=libubsan.so)
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0:check_initialization_order=1:allow_user_segv_handler=1:handle_segv=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

status=0
if [ "${ASAN_SKIP_CORE:-0}" != 1 ]; then
  echo "== core tests (ASan+UBSan)"
  node scripts/run-core-tests.js --sanitize || status=1
fi

echo "== vitest with the sanitized addon ($ADDON)"
npm run build:ts >"$OUT/build-ts.log" 2>&1 || echo "warning: npm run build:ts failed (see build-asan/build-ts.log); tests that spawn dist/ use the last build"
# shellcheck disable=SC2086
LD_PRELOAD="$LIBASAN $LIBUBSAN" DMACOPY_NATIVE_PATH="$ADDON" DMACOPY_ASAN=1 \
  npx vitest run --outputFile.json=build-asan/vitest-results.json ${ASAN_VITEST_FILTER:-} 2>&1 | tee "$OUT/vitest.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$OUT/vitest.log"; then
  echo "sanitizer reports found in build-asan/vitest.log"; status=1
fi
[ "$status" -eq 0 ] && echo "test:asan: clean" || echo "test:asan: FAILED"
exit "$status"
