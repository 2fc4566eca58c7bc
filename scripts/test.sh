#!/usr/bin/env bash
# The test command: set-up (idempotent), then the whole test suite on the CPU (flex) backend.
# Heavy suites are #[ignore]d; `scripts/test.sh --ignored` runs them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
if [ "${1:-}" = "--ignored" ]; then
  exec cargo test --workspace --locked -- --include-ignored
fi
exec cargo test --workspace --locked
