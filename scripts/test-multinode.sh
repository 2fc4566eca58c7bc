#!/usr/bin/env bash
# Multi-node training through burn-collective: builds the apps with the `collective` feature in
# its own target folder (the default build stays untouched; the feature's web stack changes
# features of crates under Burn, so this folder builds Burn once: ~20 min on 2 cores), then
# runs tests/multinode.rs: two antmmf-train node processes on loopback, CPU (flex), and the
# launch error cases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/collective}
cargo test --locked -p antmmf-apps --features collective --test e2e multinode:: -- --test-threads 1
