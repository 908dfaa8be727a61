#!/bin/bash
# run.sh [SECONDS] — the two libFuzzer targets (config: config.json loading
# and planning; gpu: CDI specs, NVIDIA_* values, requirements, driver procfs
# text, ld.so.cache files), SECONDS each (default 60), from the seeds in
# fuzz/seeds plus the host's /etc/ld.so.cache. Needs cargo-fuzz:
# VESSEL_TEST_SYSTEM=1 installs it from crates.io when it is missing,
# otherwise it prints SKIPPED. A crash stops it with the input saved under
# fuzz/artifacts/ and its stack printed.
set -uo pipefail
SECS=${1:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Nightly builds the targets with AddressSanitizer; without it, stable
# builds them with libFuzzer's coverage only (cargo fuzz --sanitizer none).
if rustup run nightly rustc --version >/dev/null 2>&1; then
  TOOLCHAIN=(+nightly); SANITIZER=address
else
  TOOLCHAIN=(); SANITIZER=none
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  if [ "${VESSEL_TEST_SYSTEM:-0}" != 1 ]; then
    echo "SKIPPED: fuzzing needs cargo-fuzz (cargo install cargo-fuzz, or VESSEL_TEST_SYSTEM=1)"; exit 0
  fi
  cargo install cargo-fuzz --locked -q || exit 1
fi
rc=0
for t in config gpu; do
  corpus=target/fuzz-corpus/$t
  mkdir -p "$corpus"
  [ "$t" = gpu ] && [ -r /etc/ld.so.cache ] && cp /etc/ld.so.cache "$corpus/host-ld.so.cache"
  out=$(cargo "${TOOLCHAIN[@]}" fuzz run -O -s "$SANITIZER" "$t" "$corpus" "fuzz/seeds/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=4096 -print_final_stats=1 2>&1)
  r=$?
  echo "# fuzz $t ($SANITIZER sanitizer): $(printf '%s\n' "$out" | grep -E '^Done [0-9]+ runs' | tail -1)," \
    "$(printf '%s\n' "$out" | grep -oE 'cov: [0-9]+' | tail -1) edges"
  if [ $r != 0 ]; then
    printf '%s\n' "$out" | tail -40
    rc=1
  fi
done
exit $rc
