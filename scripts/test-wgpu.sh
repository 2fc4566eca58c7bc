#!/usr/bin/env bash
# The wgpu smoke test on Mesa's lavapipe (a CPU Vulkan driver): the GPU code path without a GPU.
# Builds the apps with the wgpu backend in its own target folder (the default build stays
# untouched), then runs the ignored tests of tests/wgpu_smoke.rs. Slow: lavapipe is ~30x flex.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! dpkg-query -W -f='${Status}' mesa-vulkan-drivers 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/wgpu}
cargo test --locked -p antmmf-apps --features wgpu --test wgpu_smoke -- --ignored --test-threads 1
