#!/usr/bin/env bash
# Runs every fuzz target briefly.
# 1. Always (stable Rust): each target over its checked-in corpus plus FUZZ_MUTATIONS (default
#    2000) seeded mutations of each corpus file. The seed is FUZZ_SEED, or a new one per run;
#    it is printed, and `FUZZ_SEED=<seed> bash fuzz/run-short.sh` replays the same inputs.
# 2. Where cargo-fuzz and a nightly toolchain exist (and FUZZ_MODE is not `replay`): libFuzzer
#    for FUZZ_SECONDS (default 20) per target, starting from the corpus. Where they do not, a
#    line says that libFuzzer was skipped. `.ci/run` sets FUZZ_MODE=replay unless told
#    otherwise: the sanitizer build alone takes longer than CI gives fuzzing.
# Exits non-zero when any target crashes or breaks its invariant.
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_MUTATIONS="${FUZZ_MUTATIONS:-2000}"
FUZZ_SEED="${FUZZ_SEED:-$(( ($(date +%s) << 16) ^ $$ ))}"
TARGETS=(record_frame block_scanner disk_headers recovery_image protocol_frame feature_codec config_size)

have_libfuzzer() {
  command -v cargo-fuzz >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q '^nightly'
}

echo "== stable replay: seed $FUZZ_SEED, $FUZZ_MUTATIONS mutations per corpus file (replay with FUZZ_SEED=$FUZZ_SEED)"
cargo run --release --quiet --bin replay -- --mutations "$FUZZ_MUTATIONS" --seed "$FUZZ_SEED"

if [[ "${FUZZ_MODE:-auto}" == "replay" ]]; then
  exit 0
fi
if ! have_libfuzzer; then
  echo "== libFuzzer skipped: no cargo-fuzz with a nightly toolchain on this machine"
  exit 0
fi
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
