#!/usr/bin/env bash
# The main job: set-up (idempotent), then antmmf-train on the embedded sample data, CPU backend
# (until UniVL training lands it validates and prints the quickstart config).
# Extra arguments are passed on (e.g. `training_parameters.max_iterations 20`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
exec cargo run --locked -p antmmf-apps --bin antmmf-train -- \
  --config configs/quickstart.yml --backend flex --print-config "$@"
