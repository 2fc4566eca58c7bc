#!/usr/bin/env bash
# The main job: set-up (idempotent), then antmmf-train pretraining the quickstart model (2 BERT
# layers from all-MiniLM-L6-v2, a small Video Swin) on the embedded sample data, CPU backend.
# Extra arguments are passed on as overrides (e.g. `training_parameters.max_iterations 20`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
# A one-shot build: incremental caches would only fill the disk (GBs for Burn's generic code).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
exec cargo run --locked -p antmmf-apps --bin antmmf-train -- \
  --config configs/quickstart.yml --backend flex "$@"
