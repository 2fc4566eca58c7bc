#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with cargo-fuzz (libFuzzer), each target for a bounded
# time. Not part of CI. Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
#
#   scripts/fuzz.sh                 # every target, 60 s each
#   scripts/fuzz.sh 300 config      # one or more targets, 300 s each
#
# Targets: config (config loader + overrides, full defaults), config_small (the same on a small
# declared tree: fast), checkpoint (checkpoint reader), annotations (every
# annotation reader), tokenizer (BERT WordPiece). The last two build antmmf-data (Burn, FFmpeg)
# under instrumentation: the first build takes a while. Builds go to fuzz/target; new corpus
# entries to fuzz/corpus-run/<target> (ignored); the seeds in fuzz/corpus/<target> are read only.
# A crash leaves its input in fuzz/artifacts/<target>/: reproduce with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...
# and keep it as a regression test in the crate concerned (a unit test of antmmf-core,
# antmmf-data/tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config config_small checkpoint annotations tokenizer)
fi
toolchain=${FUZZ_TOOLCHAIN:-nightly}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
status=0
for t in "${targets[@]}"; do
  features=()
  case "$t" in
    annotations | tokenizer) features=(--features data) ;;
  esac
  mkdir -p "fuzz/corpus-run/$t" "fuzz/corpus/$t"
  echo "== fuzzing $t for ${secs}s"
  # -rss_limit_mb: a reader that allocates from an untrusted length shows up as a crash.
  if ! cargo "+$toolchain" fuzz run --fuzz-dir fuzz -O "${features[@]}" "$t" \
      "fuzz/corpus-run/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536; then
    echo "!! $t found a crash: see fuzz/artifacts/$t/"
    status=1
  fi
done
exit $status
