#!/usr/bin/env bash
# The test command: set-up (idempotent), then the whole test suite on the CPU (flex) backend.
# Heavy suites are #[ignore]d; `scripts/test.sh --ignored` runs them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
# A one-shot build: incremental caches would only fill the disk (GBs for Burn's generic code).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
extra=()
if [ "${1:-}" = "--ignored" ]; then
  extra=(--include-ignored)
fi
cargo test --workspace --locked --exclude antmmf-tasks -- "${extra[@]}"
# antmmf-tasks' tests seed Burn's process-wide RNG and compare runs (resume, devices,
# checkpointing): one test at a time, so no other test draws from it in between.
cargo test --locked -p antmmf-tasks -- --test-threads=1 "${extra[@]}"
