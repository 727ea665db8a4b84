#!/usr/bin/env bash
# Runs every fuzz target briefly. With cargo-fuzz and a nightly toolchain: libFuzzer for
# FUZZ_SECONDS (default 20) per target, starting from the checked-in corpus. Without them:
# the stable replay of each corpus plus FUZZ_MUTATIONS (default 2000) seeded mutations of
# each corpus file. Exits non-zero when any target crashes.
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_MUTATIONS="${FUZZ_MUTATIONS:-2000}"
TARGETS=(record_frame block_scanner disk_headers recovery_image protocol_frame feature_codec config_size)

have_libfuzzer() {
  command -v cargo-fuzz >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q '^nightly'
}

if [[ "${FUZZ_MODE:-auto}" != "replay" ]] && have_libfuzzer; then
  for t in "${TARGETS[@]}"; do
    # Fuzz into a scratch copy so that the checked-in corpus only changes by hand.
    work="target/corpus-work/$t"
    mkdir -p "$work"
    cp -n corpus/"$t"/* "$work"/ 2>/dev/null || true
    echo "== $t: libFuzzer for ${FUZZ_SECONDS}s"
    mkdir -p target
    log="target/$t.log"
    set +e
    cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    grep -E 'stat::number_of_executed_units|SUMMARY|panicked' "$log" || true
    if [[ "$status" -ne 0 ]]; then
      tail -40 "$log" >&2
      echo "fuzz target $t failed (exit $status); a crashing input is under fuzz/artifacts/$t/" >&2
      exit 1
    fi
  done
else
  echo "cargo-fuzz or nightly missing (or FUZZ_MODE=replay): stable corpus replay"
  cargo run --release --quiet --bin replay -- --mutations "$FUZZ_MUTATIONS"
fi
