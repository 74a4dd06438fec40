#!/usr/bin/env bash
# Builds the addon with AddressSanitizer into a scratch directory (build/Release is left alone) and runs
# the native and engine test suites against it. Usage: scripts/asan.sh [vitest args, default: test/native test/engine]
# ASAN_DIR (default /tmp/mipsec-asan) is where the instrumented copy is built. See fuzz/README.md.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
asan_dir="${ASAN_DIR:-/tmp/mipsec-asan}"
cxx="${CXX:-g++}"
cc="${CC:-gcc}"

libasan="$("$cxx" -print-file-name=libasan.so)"
if [ ! -e "$libasan" ] || [ "$libasan" = "libasan.so" ]; then
  echo "asan: $cxx has no libasan.so (install the compiler's sanitizer runtime, e.g. apt-get install libasan8)" >&2
  exit 2
fi

# A scratch copy of what node-gyp needs; node_modules is linked so binding.gyp finds node-addon-api.
rm -rf "$asan_dir"
mkdir -p "$asan_dir"
cp -r "$root/binding.gyp" "$root/native" "$asan_dir/"
ln -s "$root/node_modules" "$asan_dir/node_modules"
echo '{ "name": "mipsec-asan", "private": true }' > "$asan_dir/package.json"

# node-gyp: the project's own if installed, else the one npm bundles.
gyp="$root/node_modules/.bin/node-gyp"
[ -x "$gyp" ] || gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
[ -e "$gyp" ] || { echo "asan: node-gyp not found (npm install -g node-gyp)" >&2; exit 2; }

echo "asan: building the addon with -fsanitize=address in $asan_dir ($cxx)" >&2
sanitize="-fsanitize=address -fno-omit-frame-pointer -g"
(cd "$asan_dir" && CC="$cc" CXX="$cxx" CFLAGS="$sanitize" CXXFLAGS="$sanitize" LDFLAGS="-fsanitize=address" \
  node "$gyp" rebuild --nodedir="${npm_config_nodedir:-/usr}" --loglevel=warn >"$asan_dir/build.log" 2>&1) || {
  tail -40 "$asan_dir/build.log" >&2
  echo "asan: build failed (log: $asan_dir/build.log)" >&2
  exit 2
}
addon="$asan_dir/build/Release/mipsec.node"
# grep without -q reads all of nm's output: under pipefail an early exit would fail nm with SIGPIPE.
if ! nm -D "$addon" | grep __asan_report_load >/dev/null; then
  echo "asan: $addon is not instrumented (no __asan_report_* imports); check CXXFLAGS in $asan_dir/build.log" >&2
  exit 2
fi

# node-gyp-build loads $MIPSEC_PREBUILD/build/Release first; the check below proves which file loads.
export MIPSEC_PREBUILD="$asan_dir"
export LD_PRELOAD="$libasan"
rm -f "$asan_dir"/asan-report.*
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=$asan_dir/asan-report"
loaded="$(cd "$root" && node -e "console.log(require('node-gyp-build').path('.'))")"
if [ "$loaded" != "$addon" ]; then
  echo "asan: the tests would load $loaded, not $addon" >&2
  exit 2
fi
echo "asan: LD_PRELOAD=$libasan ASAN_OPTIONS=$ASAN_OPTIONS MIPSEC_PREBUILD=$asan_dir" >&2

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(test/native test/engine)
cd "$root"
set +e
"$root/node_modules/.bin/vitest" run "${suites[@]}" 2>&1 | tee "$asan_dir/vitest.log"
status=${PIPESTATUS[0]}
set -e
# Reports go to $asan_dir/asan-report.<pid> (a crashing test worker's stderr may not reach the log).
if compgen -G "$asan_dir/asan-report.*" >/dev/null || grep -q "ERROR: AddressSanitizer" "$asan_dir/vitest.log"; then
  cat "$asan_dir"/asan-report.* 2>/dev/null | head -60 >&2
  echo "asan: AddressSanitizer reported an error (see $asan_dir/asan-report.* and $asan_dir/vitest.log)" >&2
  exit 1
fi
echo "asan: vitest exit $status; no AddressSanitizer report" >&2
exit "$status"
