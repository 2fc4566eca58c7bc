//! `model_attributes.univl`: the typed view of AntMMF's UniVL model configuration, and the
//! resolved encoder configurations it builds.
//!
//! Mirrors the keys read by `prj/base_vtp/roi_univl/univl/model/univl_video_base.py`,
//! `univl_video_ret.py`, `univl_video_pretrain.py`, `univl_video_cls.py`, `moco_utils.py` and the
//! encoders they build (`antmmf/modules/encoders/text_encoder.py::PretrainedTransformerEncoder`,
//! `visual_encoder.py::VideoSwinEncoder` and `DetrBatchPVTImageEncoder` (over
//! `antmmf/modules/vision/backbone/pvt.py::PVTImageEncoder`),
//! `antmmf/modules/vision/backbone/efficientnet.py::BatchEfficientNetImageEncoder`,
//! `clip_visual_encoder.py::VitImageEncoder`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bert::BertConfig;
use crate::clip::ClipVisionConfig;
use crate::efficientnet::EfficientNetLiteConfig;
use crate::losses::{ResampleMethod, ReweightMethod};
use crate::pvt_v2::PvtV2Config;
use crate::transformer::Activation;
use crate::video_swin::VideoSwinConfig;

use super::UnivlError;

/// Key path of the UniVL model configuration in an AntMMF config.
pub const UNIVL_CONFIG_PATH: &str = "model_attributes.univl";

/// AntMMF's `MocoUtils.img_K`: the video queue length, hard-coded to 16384 there.
pub const ANTMMF_VIDEO_QUEUE_SIZE: usize = 16384;

/// `[SEP]` id AntMMF appends after the clip tokens (`prepare_cross_visual`: 102, the id in both
/// bert-base-uncased and bert-base-chinese).
pub const ANTMMF_SEP_TOKEN_ID: usize = 102;

fn config_error(key: &str, message: impl Into<String>) -> UnivlError {
    UnivlError::Config {
        key: format!("{UNIVL_CONFIG_PATH}.{key}"),
        message: message.into(),
    }
}

fn de_resample<'de, D: Deserializer<'de>>(d: D) -> Result<ResampleMethod, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(serde::de::Error::custom)
}

fn ser_resample<S: Serializer>(method: &ResampleMethod, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(method.config_name())
}

/// `re_weight_method`: `median`, or `None` / null for no re-weighting.
fn de_reweight<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReweightMethod>, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("None") | Some("none") => Ok(None),
        Some(name) => name.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

fn ser_reweight<S: Serializer>(method: &Option<ReweightMethod>, s: S) -> Result<S::Ok, S::Error> {
    match method {
        Some(ReweightMethod::Median) => s.serialize_str("median"),
        None => s.serialize_str("None"),
    }
}

/// A flag that AntMMF accepts either once or per stage (`gradient_checkpointing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StageFlags {
    /// One value for every stage.
    One(bool),
    /// One value per stage.
    PerStage(Vec<bool>),
}

impl Default for StageFlags {
    fn default() -> Self {
        Self::One(false)
    }
}

impl StageFlags {
    /// Whether any stage asks for it.
    pub fn any(&self) -> bool {
        match self {
            Self::One(b) => *b,
            Self::PerStage(v) => v.iter().any(|b| *b),
        }
    }
}

/// `text_encoder.params`: `PretrainedTransformerEncoder`'s arguments, plus `model_path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextEncoderParams {
    /// Initialise from pretrained weights (needs `model_path` here; AntMMF downloads by name).
    pub pretrained: bool,
    /// Number of token types; AntMMF extends the type embeddings when it exceeds 2.
    pub num_segments: Option<usize>,
    /// HF model type (only `bert` is supported).
    pub model_type: String,
    /// The HF model name (informational; weights come from `model_path`).
    pub bert_model_name: String,
    /// Hidden width (must equal `model_attributes.univl.hidden_size`).
    pub hidden_size: usize,
    /// Feed-forward width (default `4 * hidden_size`, or the checkpoint's).
    pub intermediate_size: Option<usize>,
    /// Encoder layers kept (the first ones of a checkpoint).
    pub num_hidden_layers: usize,
    /// First checkpoint layer kept (AntMMF's `start_hidden_layer`).
    pub start_hidden_layer: usize,
    /// Attention heads (default `hidden_size / 64`, or the checkpoint's).
    pub num_attention_heads: Option<usize>,
    /// Accepted for compatibility; attentions are returned by dedicated methods.
    pub output_attentions: bool,
    /// Accepted for compatibility.
    pub output_hidden_states: bool,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Gradient checkpointing (any `true` turns on backend-wide checkpointing: see
    /// [`UnivlConfig::gradient_checkpointing`]).
    pub gradient_checkpointing: StageFlags,
    /// Token types (overridden by `num_segments`).
    pub type_vocab_size: Option<usize>,
    /// Learned positions (default 512, or the checkpoint's).
    pub max_position_embeddings: Option<usize>,
    /// antmmf-rs: an HF folder (`config.json` + `model.safetensors` / `pytorch_model.bin`).
    pub model_path: Option<PathBuf>,
}

impl Default for TextEncoderParams {
    fn default() -> Self {
        Self {
            pretrained: true,
            num_segments: Some(2),
            model_type: "bert".into(),
            bert_model_name: "bert-base-uncased".into(),
            hidden_size: 768,
            intermediate_size: None,
            num_hidden_layers: 12,
            start_hidden_layer: 0,
            num_attention_heads: None,
            output_attentions: false,
            output_hidden_states: false,
            vocab_size: 30522,
            gradient_checkpointing: StageFlags::default(),
            type_vocab_size: None,
            max_position_embeddings: None,
            model_path: None,
        }
    }
}

/// `text_encoder`: `type` and `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextEncoderSection {
    /// Encoder type; `PretrainedTransformerEncoder` is the one UniVL uses.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its parameters.
    pub params: TextEncoderParams,
}

impl Default for TextEncoderSection {
    fn default() -> Self {
        Self {
            kind: "PretrainedTransformerEncoder".into(),
            params: TextEncoderParams::default(),
        }
    }
}

/// `cross_encoder.params` as far as the model reads it.
///
/// AntMMF builds no separate cross encoder (`UnivlVideoBase.build` reuses the text encoder's
/// embeddings and *all* its layers); its `num_hidden_layers` is read only to warn when it differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CrossEncoderParams {
    /// Layers the config asks for (unused by AntMMF, see above).
    pub num_hidden_layers: Option<usize>,
}

/// `cross_encoder`: only its `params` matter here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CrossEncoderSection {
    /// Its parameters (other keys are ignored, as AntMMF ignores them).
    pub params: CrossEncoderParams,
}

/// Video Swin flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SwinVariant {
    /// AntMMF/VIOLET: temporal stride 1, the number of frames is kept.
    #[default]
    Violet,
    /// torchvision `swin3d_*`: temporal stride = temporal patch size.
    Torchvision,
}

/// Video Swin size preset (torchvision's `swin3d_t/s/b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SwinPreset {
    /// embed 96, depths [2,2,6,2], heads [3,6,12,24].
    Tiny,
    /// embed 96, depths [2,2,18,2], heads [3,6,12,24] (AntMMF's `SwinTransformer3D` default).
    #[default]
    Small,
    /// embed 128, depths [2,2,18,2], heads [4,8,16,32].
    Base,
}

/// `image_encoder.params` of `VideoSwinEncoder`: AntMMF's keys plus the architecture keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct VideoSwinParams {
    /// Load weights from `model_path` (AntMMF downloads when it is null; here: random init).
    pub pretrained: Option<bool>,
    /// Accepted for compatibility: freezing is the optimizer's business in Burn.
    pub freeze: Option<bool>,
    /// Gradient checkpointing, once or per stage (any `true` turns on backend-wide
    /// checkpointing: see [`UnivlConfig::gradient_checkpointing`]).
    pub gradient_checkpointing: Option<StageFlags>,
    /// A Video Swin / VIOLET checkpoint (`.pth`, `.pt`, `.safetensors`).
    pub model_path: Option<PathBuf>,
    /// Size preset the other keys start from.
    pub preset: Option<SwinPreset>,
    /// VIOLET (default) or torchvision patch embedding.
    pub variant: Option<SwinVariant>,
    /// Width of the first stage.
    pub embed_dim: Option<usize>,
    /// Blocks per stage.
    pub depths: Option<Vec<usize>>,
    /// Heads per stage.
    pub num_heads: Option<Vec<usize>>,
    /// Attention window `[t, h, w]`.
    pub window_size: Option<[usize; 3]>,
    /// Patch size `[t, h, w]`.
    pub patch_size: Option<[usize; 3]>,
    /// MLP width ratio.
    pub mlp_ratio: Option<f64>,
    /// Other keys. AntMMF's `VideoSwinEncoder(**kwargs)` swallows them (AntMMF's own configs
    /// leave an included encoder's `encoder_type`, `pool_type`... there), so they are ignored
    /// with a warning, unless one looks like a misspelt parameter: that is an error.
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The parameters [`VideoSwinParams`] reads.
const SWIN_PARAMS: &[&str] = &[
    "pretrained",
    "freeze",
    "gradient_checkpointing",
    "model_path",
    "preset",
    "variant",
    "embed_dim",
    "depths",
    "num_heads",
    "window_size",
    "patch_size",
    "mlp_ratio",
];

/// Levenshtein distance (for "did you mean" on misspelt keys).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Checks the keys an encoder's `**kwargs` swallowed: one that looks like a misspelt parameter
/// of `known` is an error naming it; the others are ignored with a warning, as AntMMF ignores
/// them.
fn check_swallowed_keys(
    encoder: &str,
    known: &[&str],
    other: &BTreeMap<String, serde_json::Value>,
) -> Result<(), UnivlError> {
    for key in other.keys() {
        let path = format!("image_encoder.params.{key}");
        if let Some(known) = known
            .iter()
            .find(|k| edit_distance(key, k) <= 2.min(k.len() / 3).max(1))
        {
            return Err(config_error(
                &path,
                format!("unknown {encoder} parameter; did you mean `{known}`?"),
            ));
        }
        log::warn!(
            "{UNIVL_CONFIG_PATH}.{path} is not a {encoder} parameter: ignored, as AntMMF's \
             **kwargs does"
        );
    }
    Ok(())
}

impl VideoSwinParams {
    /// Rejects unknown keys that look like a misspelt parameter; warns about the others.
    pub fn check_other_keys(&self) -> Result<(), UnivlError> {
        check_swallowed_keys("VideoSwinEncoder", SWIN_PARAMS, &self.other)
    }

    /// The backbone configuration these parameters describe (no classification head).
    pub fn to_swin_config(&self) -> Result<VideoSwinConfig, UnivlError> {
        let key = |k: &str| format!("image_encoder.params.{k}");
        let mut config = match self.preset.unwrap_or_default() {
            SwinPreset::Tiny => VideoSwinConfig::swin3d_t(),
            SwinPreset::Small => VideoSwinConfig::swin3d_s(),
            SwinPreset::Base => VideoSwinConfig::swin3d_b(),
        };
        config.num_classes = 0;
        config.temporal_stride_one = self.variant.unwrap_or_default() == SwinVariant::Violet;
        if let Some(v) = self.embed_dim {
            config.embed_dim = v;
        }
        if let Some(v) = &self.depths {
            config.depths = v.clone();
        }
        if let Some(v) = &self.num_heads {
            config.num_heads = v.clone();
        }
        if let Some(v) = self.window_size {
            config.window_size = v;
        }
        if let Some(v) = self.patch_size {
            config.patch_size = v;
        }
        if let Some(v) = self.mlp_ratio {
            config.mlp_ratio = v;
        }
        if config.embed_dim == 0 {
            return Err(config_error(&key("embed_dim"), "must be > 0"));
        }
        if config.depths.is_empty() || config.depths.len() != config.num_heads.len() {
            return Err(config_error(
                &key("depths"),
                format!(
                    "depths {:?} and num_heads {:?} need the same, non-zero length",
                    config.depths, config.num_heads
                ),
            ));
        }
        for (i, &heads) in config.num_heads.iter().enumerate() {
            let dim = config.embed_dim << i;
            if heads == 0 || !dim.is_multiple_of(heads) {
                return Err(config_error(
                    &key("num_heads"),
                    format!("stage {i} has width {dim}, not a multiple of {heads} heads"),
                ));
            }
        }
        if config.window_size.contains(&0) {
            return Err(config_error(&key("window_size"), "every size must be > 0"));
        }
        if config.patch_size.contains(&0) {
            return Err(config_error(&key("patch_size"), "every size must be > 0"));
        }
        if !(config.mlp_ratio.is_finite() && config.mlp_ratio > 0.0) {
            return Err(config_error(&key("mlp_ratio"), "must be finite and > 0"));
        }
        Ok(config)
    }
}

/// `image_encoder.params` of `VitImageEncoder` (CLIP ViT, one token per frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipVisualParams {
    /// AntMMF's checkpoint name (informational; weights come from `model_path`).
    pub model_name: Option<String>,
    /// Input image side.
    pub input_resolution: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Transformer width.
    pub width: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Output width after the projection.
    pub out_dim: usize,
    /// Width of one attention head (`heads = width / head_width`).
    pub head_width: usize,
    /// Load weights from `model_path`.
    pub pretrained: bool,
    /// Project the CLS token to `out_dim` (OpenAI CLIP's `proj`); off: `out_dim = width`.
    pub is_proj: bool,
    /// antmmf-rs: an HF CLIP vision tower or full `CLIPModel` weights file or folder.
    pub model_path: Option<PathBuf>,
}

impl Default for ClipVisualParams {
    fn default() -> Self {
        Self {
            model_name: None,
            input_resolution: 224,
            patch_size: 32,
            width: 768,
            layers: 12,
            out_dim: 512,
            head_width: 64,
            pretrained: false,
            is_proj: true,
            model_path: None,
        }
    }
}

impl ClipVisualParams {
    /// The tower configuration these parameters describe.
    pub fn to_clip_config(&self) -> Result<ClipVisionConfig, UnivlError> {
        let key = |k: &str| format!("image_encoder.params.{k}");
        if self.head_width == 0 || self.width == 0 || !self.width.is_multiple_of(self.head_width) {
            return Err(config_error(
                &key("width"),
                format!(
                    "width {} must be a non-zero multiple of head_width {}",
                    self.width, self.head_width
                ),
            ));
        }
        if self.patch_size == 0 || !self.input_resolution.is_multiple_of(self.patch_size) {
            return Err(config_error(
                &key("input_resolution"),
                format!(
                    "input_resolution {} must be a multiple of patch_size {}",
                    self.input_resolution, self.patch_size
                ),
            ));
        }
        if self.is_proj && self.out_dim == 0 {
            return Err(config_error(&key("out_dim"), "must be > 0"));
        }
        Ok(ClipVisionConfig {
            hidden_size: self.width,
            intermediate_size: 4 * self.width,
            num_hidden_layers: self.layers,
            num_attention_heads: self.width / self.head_width,
            num_channels: 3,
            image_size: self.input_resolution,
            patch_size: self.patch_size,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        })
    }

    /// Width of one frame token.
    pub fn out_dim(&self) -> usize {
        if self.is_proj {
            self.out_dim
        } else {
            self.width
        }
    }
}

/// AntMMF's `pool_type`: adaptive average or max pooling of a feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PoolType {
    /// `nn.AdaptiveAvgPool2d`.
    #[default]
    Avg,
    /// `nn.AdaptiveMaxPool2d` (AntMMF takes any value but `avg` as max; here only `max`).
    Max,
}

/// The grid AntMMF's `num_output_features` pools a feature map to (`PVTImageEncoder`,
/// `EfficientNetImageEncoder`): `-1` keeps the map (`None`); 1, 2, 3, 5, 7 give `[n, 1]`; 4, 6,
/// 8, 9 give `[2, 2]`, `[3, 2]`, `[4, 2]`, `[3, 3]`; anything else is an error, as in AntMMF.
pub fn output_grid(num_output_features: i64) -> Result<Option<[usize; 2]>, String> {
    Ok(Some(match num_output_features {
        -1 => return Ok(None),
        n @ (1 | 2 | 3 | 5 | 7) => [n as usize, 1],
        4 => [2, 2],
        6 => [3, 2],
        8 => [4, 2],
        9 => [3, 3],
        n => {
            return Err(format!(
                "{n}: expected -1 (keep the feature map) or 1 to 9, as AntMMF"
            ));
        }
    }))
}

/// `image_encoder.params` of `BatchEfficientNetImageEncoder` (AntMMF's `EfficientNetImageEncoder`
/// arguments, which take no `**kwargs`: other keys are errors).
///
/// AntMMF builds lukemelas' EfficientNet-B0..B8 (squeeze-excitation, swish); antmmf-rs ports
/// EfficientNet-Lite0..4 ([`crate::efficientnet`]: no squeeze-excitation, ReLU6, the same
/// lukemelas checkpoint layout), so `model_name` takes `efficientnet-lite{0..4}` and the B-series
/// names are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EfficientNetParams {
    /// `efficientnet-lite0` (default) .. `efficientnet-lite4`.
    pub model_name: String,
    /// How the feature map is pooled to the `num_output_features` grid.
    pub pool_type: PoolType,
    /// `-1` (default): the whole `ceil(H/32) x ceil(W/32)` map is the grid; 1..=9: adaptive
    /// pooling to a fixed grid (see [`output_grid`]).
    pub num_output_features: i64,
    /// A lukemelas-layout checkpoint (`_conv_stem`, `_blocks.{i}.*`; `.pth`, `.safetensors`),
    /// e.g. `efficientnet-lite0-57934424.pth`; its classifier `_fc` is skipped.
    pub model_path: Option<PathBuf>,
    /// Load `model_path` (AntMMF downloads by name when it is null; here the backbone then starts
    /// from random weights, with a warning).
    pub pretrained: bool,
}

impl Default for EfficientNetParams {
    fn default() -> Self {
        Self {
            model_name: "efficientnet-lite0".into(),
            pool_type: PoolType::Avg,
            num_output_features: -1,
            model_path: None,
            pretrained: true,
        }
    }
}

impl EfficientNetParams {
    /// The backbone configuration (no classifier) `model_name` names.
    pub fn to_efficientnet_config(&self) -> Result<EfficientNetLiteConfig, UnivlError> {
        let index = self
            .model_name
            .strip_prefix("efficientnet-lite")
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i <= 4);
        let Some(index) = index else {
            let why = if self.model_name.starts_with("efficientnet-") {
                "the B-series EfficientNet (squeeze-excitation, swish) is not ported; \
                 antmmf-rs has EfficientNet-Lite"
            } else {
                "unknown model"
            };
            return Err(config_error(
                "image_encoder.params.model_name",
                format!(
                    "`{}`: {why}: expected efficientnet-lite0 .. efficientnet-lite4",
                    self.model_name
                ),
            ));
        };
        Ok(EfficientNetLiteConfig {
            num_classes: 0,
            ..EfficientNetLiteConfig::lite(index)
        })
    }

    /// The pooled grid `[rows, cols]`, or `None` to keep the feature map.
    pub fn output_grid(&self) -> Result<Option<[usize; 2]>, UnivlError> {
        output_grid(self.num_output_features)
            .map_err(|m| config_error("image_encoder.params.num_output_features", m))
    }
}

/// `image_encoder.params` of `DetrBatchPVTImageEncoder`: AntMMF's keys plus architecture
/// overrides (antmmf-rs, for small models).
///
/// AntMMF's `PVTImageEncoder(*args, **kwargs)` swallows keys it does not know (its own
/// `visual_encoder/pvt.yml` passes `freeze` and `replace_stride_with_dilation`, which therefore
/// do nothing there); so are they here: the two named ones silently, others with a warning, and a
/// key that looks like a misspelt parameter is an error. `pool_type` and `num_output_features`
/// are validated as AntMMF does at construction, but the DETR forward does not pool (AntMMF's
/// neither): the grid is the last stage's map after `output_proj`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PvtParams {
    /// `pvt_v2_b0` .. `pvt_v2_b5` (default `pvt_v2_b2`, as AntMMF's `visual_encoder/pvt.yml`;
    /// the linear-attention `pvt_v2_b2_li` is not ported).
    pub model_name: String,
    /// A whai362/PVT `pvt_v2_b*.pth` checkpoint (AntMMF's format) or a `transformers`
    /// `PvtV2Model` file; the classification head is skipped.
    pub model_path: Option<PathBuf>,
    /// Load `model_path` (AntMMF downloads by name when it is null; here the backbone then starts
    /// from random weights, with a warning).
    pub pretrained: bool,
    /// Width of the 1x1 `output_proj` after the last stage (required, as in AntMMF; the
    /// configs set `model_attributes.univl.hidden_size`).
    pub output_channels: Option<usize>,
    /// Validated, not used by the forward (see above).
    pub pool_type: Option<PoolType>,
    /// Validated (-1 or 1..=9), not used by the forward (see above).
    pub num_output_features: Option<i64>,
    /// Gradient checkpointing, once or per stage (any `true` turns on backend-wide
    /// checkpointing: see [`UnivlConfig::gradient_checkpointing`]).
    pub gradient_checkpointing: Option<StageFlags>,
    /// Swallowed by AntMMF's `**kwargs` (no effect there); freezing is the optimizer's business.
    pub freeze: Option<bool>,
    /// Swallowed by AntMMF's `**kwargs` (a ResNet argument; no effect there or here).
    pub replace_stride_with_dilation: Option<Vec<bool>>,
    /// antmmf-rs: width per stage (overrides the `model_name` preset).
    pub embed_dims: Option<Vec<usize>>,
    /// antmmf-rs: attention heads per stage.
    pub num_heads: Option<Vec<usize>>,
    /// antmmf-rs: MLP width multiple per stage.
    pub mlp_ratios: Option<Vec<usize>>,
    /// antmmf-rs: blocks per stage.
    pub depths: Option<Vec<usize>>,
    /// antmmf-rs: key/value spatial reduction per stage.
    pub sr_ratios: Option<Vec<usize>>,
    /// Other keys (see above).
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Default for PvtParams {
    fn default() -> Self {
        Self {
            model_name: "pvt_v2_b2".into(),
            model_path: None,
            pretrained: true,
            output_channels: None,
            pool_type: None,
            num_output_features: None,
            gradient_checkpointing: None,
            freeze: None,
            replace_stride_with_dilation: None,
            embed_dims: None,
            num_heads: None,
            mlp_ratios: None,
            depths: None,
            sr_ratios: None,
            other: BTreeMap::new(),
        }
    }
}

/// The parameters [`PvtParams`] reads.
const PVT_PARAMS: &[&str] = &[
    "model_name",
    "model_path",
    "pretrained",
    "output_channels",
    "pool_type",
    "num_output_features",
    "gradient_checkpointing",
    "freeze",
    "replace_stride_with_dilation",
    "embed_dims",
    "num_heads",
    "mlp_ratios",
    "depths",
    "sr_ratios",
];

impl PvtParams {
    /// Rejects unknown keys that look like a misspelt parameter; warns about the others.
    pub fn check_other_keys(&self) -> Result<(), UnivlError> {
        check_swallowed_keys("DetrBatchPVTImageEncoder", PVT_PARAMS, &self.other)
    }

    /// Width of the grid features (`output_channels`).
    pub fn out_dim(&self) -> Result<usize, UnivlError> {
        match self.output_channels {
            Some(c) if c > 0 => Ok(c),
            Some(_) => Err(config_error(
                "image_encoder.params.output_channels",
                "must be > 0",
            )),
            None => Err(config_error(
                "image_encoder.params.output_channels",
                "required (the width of DetrBatchPVTImageEncoder's output_proj; AntMMF's \
                 configs set it to model_attributes.univl.hidden_size)",
            )),
        }
    }

    /// The backbone configuration (no classification head) these parameters describe.
    pub fn to_pvt_config(&self) -> Result<PvtV2Config, UnivlError> {
        let key = |k: &str| format!("image_encoder.params.{k}");
        let mut config = match self.model_name.as_str() {
            "pvt_v2_b0" => PvtV2Config::b0(),
            "pvt_v2_b1" => PvtV2Config::b1(),
            "pvt_v2_b2" => PvtV2Config::b2(),
            "pvt_v2_b3" => PvtV2Config::b3(),
            "pvt_v2_b4" => PvtV2Config::b4(),
            "pvt_v2_b5" => PvtV2Config::b5(),
            other => {
                let why = if other == "pvt_v2_b2_li" {
                    "the linear-attention variant is not ported"
                } else {
                    "unknown model"
                };
                return Err(config_error(
                    &key("model_name"),
                    format!("`{other}`: {why}: expected pvt_v2_b0 .. pvt_v2_b5"),
                ));
            }
        };
        config.num_classes = 0;
        for (value, field) in [
            (&self.embed_dims, &mut config.embed_dims),
            (&self.num_heads, &mut config.num_heads),
            (&self.mlp_ratios, &mut config.mlp_ratios),
            (&self.depths, &mut config.depths),
            (&self.sr_ratios, &mut config.sr_ratios),
        ] {
            if let Some(v) = value {
                field.clone_from(v);
            }
        }
        let stages = config.embed_dims.len();
        if stages == 0 || config.embed_dims.contains(&0) {
            return Err(config_error(
                &key("embed_dims"),
                format!(
                    "{:?}: needs at least one stage, every width > 0",
                    config.embed_dims
                ),
            ));
        }
        for (name, list) in [
            ("num_heads", &config.num_heads),
            ("mlp_ratios", &config.mlp_ratios),
            ("depths", &config.depths),
            ("sr_ratios", &config.sr_ratios),
        ] {
            if list.len() != stages {
                return Err(config_error(
                    &key(name),
                    format!("{list:?}: needs one entry per stage ({stages}, as embed_dims)"),
                ));
            }
        }
        for (i, (&dim, &heads)) in config.embed_dims.iter().zip(&config.num_heads).enumerate() {
            if heads == 0 || !dim.is_multiple_of(heads) {
                return Err(config_error(
                    &key("num_heads"),
                    format!("stage {i} has width {dim}, not a multiple of {heads} heads"),
                ));
            }
        }
        if config.sr_ratios.contains(&0) || config.mlp_ratios.contains(&0) {
            let name = if config.sr_ratios.contains(&0) {
                "sr_ratios"
            } else {
                "mlp_ratios"
            };
            return Err(config_error(&key(name), "every entry must be > 0"));
        }
        if let Some(n) = self.num_output_features {
            output_grid(n).map_err(|m| config_error(&key("num_output_features"), m))?;
        }
        config
            .validate()
            .map_err(|e| config_error(&key("model_name"), e.to_string()))?;
        Ok(config)
    }
}

/// `image_encoder`: the visual backbone, by AntMMF type name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "params")]
pub enum ImageEncoderConfig {
    /// Video Swin over the whole `[T, H, W]` video (AntMMF `VideoSwinEncoder`).
    VideoSwinEncoder(VideoSwinParams),
    /// CLIP ViT per frame (AntMMF `VitImageEncoder`; `ClipVisualEncoder` accepted).
    #[serde(alias = "ClipVisualEncoder")]
    VitImageEncoder(ClipVisualParams),
    /// EfficientNet-Lite per frame, its (optionally pooled) last feature map as the grid
    /// (AntMMF `BatchEfficientNetImageEncoder`).
    BatchEfficientNetImageEncoder(EfficientNetParams),
    /// PVT v2 per frame, its last stage through a 1x1 `output_proj` as the grid (AntMMF
    /// `DetrBatchPVTImageEncoder`).
    DetrBatchPVTImageEncoder(PvtParams),
}

impl Default for ImageEncoderConfig {
    fn default() -> Self {
        Self::VideoSwinEncoder(VideoSwinParams::default())
    }
}

impl ImageEncoderConfig {
    /// Whether the backbone's `gradient_checkpointing` asks for it on any stage.
    pub fn gradient_checkpointing(&self) -> bool {
        let flags = match self {
            Self::VideoSwinEncoder(p) => p.gradient_checkpointing.as_ref(),
            Self::DetrBatchPVTImageEncoder(p) => p.gradient_checkpointing.as_ref(),
            Self::VitImageEncoder(_) | Self::BatchEfficientNetImageEncoder(_) => None,
        };
        flags.is_some_and(StageFlags::any)
    }

    /// The checkpoint [`UnivlConfig::init_pretrained`] loads into the backbone: `model_path`
    /// unless `pretrained` is false. For EfficientNet and PVT, asking for pretrained weights
    /// without a path logs a warning (AntMMF would download them).
    pub fn pretrained_model_path(&self) -> Option<PathBuf> {
        let (path, pretrained, name) = match self {
            Self::VideoSwinEncoder(p) => {
                return p.model_path.clone().filter(|_| p.pretrained != Some(false));
            }
            Self::VitImageEncoder(p) => return p.model_path.clone().filter(|_| p.pretrained),
            Self::BatchEfficientNetImageEncoder(p) => (&p.model_path, p.pretrained, &p.model_name),
            Self::DetrBatchPVTImageEncoder(p) => (&p.model_path, p.pretrained, &p.model_name),
        };
        if pretrained && path.is_none() {
            log::warn!(
                "{UNIVL_CONFIG_PATH}.image_encoder.params: pretrained without model_path: the \
                 visual encoder ({name}) starts from random weights"
            );
        }
        path.clone().filter(|_| pretrained)
    }
}

/// The typed view of `model_attributes.univl` (unknown keys of the view are left to the config
/// schema; the free-form `text_encoder.params` and `image_encoder.params` reject unknown keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UnivlConfig {
    /// `univl` (BERT pooler) is the only architecture ported; `clip` is rejected.
    pub arch_type: String,
    /// `video_pretraining`, `video_text_retrieval`, `video_text_classification`,
    /// `video_multi_choice_qa`.
    pub training_head_type: String,
    /// `stage1`, `stage2` or `stage1+stage2`.
    pub training_stage: String,
    /// Width of the cross-modal encoder (= the text encoder's).
    pub hidden_size: usize,
    /// The BERT text (and cross) encoder.
    pub text_encoder: TextEncoderSection,
    /// Read only to warn (see [`CrossEncoderParams`]).
    pub cross_encoder: CrossEncoderSection,
    /// The visual backbone.
    pub image_encoder: ImageEncoderConfig,
    /// Build MoCo key encoders and queues.
    pub with_moco: bool,
    /// Text queue length (`K`).
    #[serde(rename = "K")]
    pub queue_size: usize,
    /// Key encoder momentum (`M`).
    #[serde(rename = "M")]
    pub momentum: f64,
    /// MoCo softmax temperature (`T`).
    #[serde(rename = "T")]
    pub temperature: f64,
    /// L2 hard example mining.
    pub hard_example_mining: bool,
    /// Hard negative sampling (`nearliest` | `top_k`).
    #[serde(deserialize_with = "de_resample", serialize_with = "ser_resample")]
    pub re_sample_method: ResampleMethod,
    /// Hard example row weights (`median`; `None` for none).
    #[serde(deserialize_with = "de_reweight", serialize_with = "ser_reweight")]
    pub re_weight_method: Option<ReweightMethod>,
    /// CNVid hard-sample curriculum: iterations per rise of the mining probability (`None`: no
    /// curriculum, mining on every step).
    pub change_iter: Option<u64>,
    /// CNVid hard-sample curriculum: rise of the mining probability every `change_iter` steps.
    pub change_rate: f64,
    /// Answer classes of the open-QA classification head (none: no head).
    pub num_labels: Option<usize>,
    /// Clips of the clip-order head (read for compatibility).
    pub max_clip_len: usize,
    /// Video queue length: AntMMF hard-codes 16384 (not a config key there or here).
    #[serde(skip)]
    pub video_queue_size: usize,
    /// `[SEP]` id appended after the clip tokens (not a config key; AntMMF hard-codes 102).
    #[serde(skip)]
    pub sep_token_id: usize,
    /// L2 / MC-QA dropout before `similarity_dense` (AntMMF hard-codes 0.1).
    #[serde(skip)]
    pub similarity_dropout: f64,
}

impl Default for UnivlConfig {
    fn default() -> Self {
        Self {
            arch_type: "univl".into(),
            training_head_type: "video_pretraining".into(),
            training_stage: "stage1+stage2".into(),
            hidden_size: 768,
            text_encoder: TextEncoderSection::default(),
            cross_encoder: CrossEncoderSection::default(),
            image_encoder: ImageEncoderConfig::default(),
            with_moco: true,
            queue_size: 16384,
            momentum: 0.9999,
            temperature: 0.05,
            hard_example_mining: false,
            re_sample_method: ResampleMethod::Nearest,
            re_weight_method: Some(ReweightMethod::Median),
            change_iter: None,
            change_rate: 0.15,
            num_labels: None,
            max_clip_len: 16,
            video_queue_size: ANTMMF_VIDEO_QUEUE_SIZE,
            sep_token_id: ANTMMF_SEP_TOKEN_ID,
            similarity_dropout: 0.1,
        }
    }
}

impl UnivlConfig {
    /// Whether any encoder's `gradient_checkpointing` (text encoder or visual backbone, once or
    /// per stage) asks for it. Burn 0.21 checkpoints per autodiff backend, so the training
    /// binary then runs the whole model on `Autodiff<B, BalancedCheckpointing>`.
    pub fn gradient_checkpointing(&self) -> bool {
        self.text_encoder.params.gradient_checkpointing.any()
            || self.image_encoder.gradient_checkpointing()
    }

    /// Reads and validates `model_attributes.univl` of a merged AntMMF configuration.
    ///
    /// A relative `model_path` is taken relative to the config file's folder when it exists
    /// there (`../assets/minilm` in `configs/quickstart.yml`), else as given (working directory).
    pub fn from_config(config: &antmmf_core::Config) -> Result<Self, UnivlError> {
        let mut view: Self = config.view(UNIVL_CONFIG_PATH)?;
        if let Some(dir) = config.config_dir() {
            view.resolve_paths(dir);
        }
        view.validate()?;
        Ok(view)
    }

    /// Makes relative `model_path`s that exist under `dir` relative to `dir`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |path: &mut Option<PathBuf>| {
            if let Some(p) = path.as_ref()
                && p.is_relative()
                && dir.join(p).exists()
            {
                *path = Some(dir.join(p));
            }
        };
        resolve(&mut self.text_encoder.params.model_path);
        match &mut self.image_encoder {
            ImageEncoderConfig::VideoSwinEncoder(p) => resolve(&mut p.model_path),
            ImageEncoderConfig::VitImageEncoder(p) => resolve(&mut p.model_path),
            ImageEncoderConfig::BatchEfficientNetImageEncoder(p) => resolve(&mut p.model_path),
            ImageEncoderConfig::DetrBatchPVTImageEncoder(p) => resolve(&mut p.model_path),
        }
    }

    /// A small random-init configuration (for tests and examples): a BERT of `layers` layers,
    /// `heads` heads and width `hidden`, a tiny VIOLET Video Swin (embed 8, depths [1, 1]), MoCo
    /// queues of 8 keys and no classification head.
    pub fn small(hidden: usize, layers: usize, heads: usize, vocab: usize) -> Self {
        Self {
            hidden_size: hidden,
            text_encoder: TextEncoderSection {
                kind: "PretrainedTransformerEncoder".into(),
                params: TextEncoderParams {
                    pretrained: false,
                    hidden_size: hidden,
                    intermediate_size: Some(2 * hidden),
                    num_hidden_layers: layers,
                    num_attention_heads: Some(heads),
                    vocab_size: vocab,
                    max_position_embeddings: Some(64),
                    ..TextEncoderParams::default()
                },
            },
            image_encoder: ImageEncoderConfig::VideoSwinEncoder(VideoSwinParams {
                embed_dim: Some(8),
                depths: Some(vec![1, 1]),
                num_heads: Some(vec![1, 2]),
                window_size: Some([2, 2, 2]),
                patch_size: Some([1, 4, 4]),
                ..VideoSwinParams::default()
            }),
            queue_size: 8,
            video_queue_size: 8,
            ..Self::default()
        }
    }

    /// Whether `training_stage` includes the L1 (dual-encoder) stage.
    pub fn stage1(&self) -> bool {
        self.training_stage.contains("stage1")
    }

    /// Whether `training_stage` includes the L2 (cross-encoder) stage; AntMMF builds the cross
    /// pooler and `similarity_dense` only then (this port always builds them; unused, they get
    /// no gradients).
    pub fn stage2(&self) -> bool {
        self.training_stage.contains("stage2")
    }

    /// Sets the text encoder's checkpoint folder (and `pretrained: true`).
    pub fn with_text_model_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.text_encoder.params.model_path = Some(path.into());
        self.text_encoder.params.pretrained = true;
        self
    }

    /// Sets the visual backbone.
    pub fn with_image_encoder(mut self, encoder: ImageEncoderConfig) -> Self {
        self.image_encoder = encoder;
        self
    }

    /// Adds (Some) or removes (None) the classification head.
    pub fn with_num_labels(mut self, num_labels: Option<usize>) -> Self {
        self.num_labels = num_labels;
        self
    }

    /// Turns MoCo on with these queue lengths, or off (`None`).
    pub fn with_moco_queues(mut self, queues: Option<(usize, usize)>) -> Self {
        match queues {
            Some((text, video)) => {
                self.with_moco = true;
                self.queue_size = text;
                self.video_queue_size = video;
            }
            None => self.with_moco = false,
        }
        self
    }

    /// Checks what `init` relies on; errors name the key path.
    pub fn validate(&self) -> Result<(), UnivlError> {
        if self.arch_type != "univl" {
            return Err(config_error(
                "arch_type",
                format!(
                    "`{}` is not supported: only `univl` (BERT text encoder) is ported",
                    self.arch_type
                ),
            ));
        }
        let params = &self.text_encoder.params;
        if self.text_encoder.kind != "PretrainedTransformerEncoder" {
            return Err(config_error(
                "text_encoder.type",
                format!(
                    "`{}` is not supported: expected PretrainedTransformerEncoder",
                    self.text_encoder.kind
                ),
            ));
        }
        if params.model_type != "bert" {
            return Err(config_error(
                "text_encoder.params.model_type",
                format!("`{}` is not supported: expected bert", params.model_type),
            ));
        }
        if self.hidden_size == 0 {
            return Err(config_error("hidden_size", "must be > 0"));
        }
        if params.hidden_size != self.hidden_size {
            return Err(config_error(
                "text_encoder.params.hidden_size",
                format!(
                    "{} differs from model_attributes.univl.hidden_size {}: the cross encoder is the text encoder",
                    params.hidden_size, self.hidden_size
                ),
            ));
        }
        if params.num_hidden_layers == 0 {
            return Err(config_error(
                "text_encoder.params.num_hidden_layers",
                "must be > 0",
            ));
        }
        if let Some(n) = self.cross_encoder.params.num_hidden_layers
            && n != params.num_hidden_layers
        {
            log::warn!(
                "{UNIVL_CONFIG_PATH}.cross_encoder.params.num_hidden_layers = {n} is not used: as in \
                 AntMMF, the cross encoder is the text encoder with all its {} layers",
                params.num_hidden_layers
            );
        }
        if self.with_moco {
            for (key, size) in [
                ("K", self.queue_size),
                ("video queue", self.video_queue_size),
            ] {
                // The queue pointer is recorded as an f32 (see `Moco`): exact up to 2^24.
                if size == 0 || size > (1 << 24) {
                    return Err(config_error(key, format!("{size} must be in 1..=16777216")));
                }
            }
            if !(0.0..=1.0).contains(&self.momentum) {
                return Err(config_error(
                    "M",
                    format!("{} must be in [0, 1]", self.momentum),
                ));
            }
            if !(self.temperature.is_finite() && self.temperature > 0.0) {
                return Err(config_error(
                    "T",
                    format!("{} must be finite and > 0", self.temperature),
                ));
            }
        }
        if !self.stage1() && !self.stage2() {
            return Err(config_error(
                "training_stage",
                format!(
                    "`{}` names no stage: expected stage1, stage2 or stage1+stage2",
                    self.training_stage
                ),
            ));
        }
        if self.num_labels == Some(0) {
            return Err(config_error("num_labels", "must be > 0 (or null: no head)"));
        }
        if !(0.0..1.0).contains(&self.similarity_dropout) {
            return Err(config_error(
                "similarity_dropout",
                format!("{} must be in [0, 1)", self.similarity_dropout),
            ));
        }
        match &self.image_encoder {
            ImageEncoderConfig::VideoSwinEncoder(p) => {
                p.check_other_keys()?;
                p.to_swin_config().map(|_| ())
            }
            ImageEncoderConfig::VitImageEncoder(p) => p.to_clip_config().map(|_| ()),
            ImageEncoderConfig::BatchEfficientNetImageEncoder(p) => {
                p.to_efficientnet_config()?;
                p.output_grid().map(|_| ())
            }
            ImageEncoderConfig::DetrBatchPVTImageEncoder(p) => {
                p.check_other_keys()?;
                p.to_pvt_config()?;
                p.out_dim().map(|_| ())
            }
        }
    }

    /// The BERT configuration: the checkpoint's `config.json` when `model_path` is set (with
    /// `num_hidden_layers` from the AntMMF params, which must not exceed the checkpoint's),
    /// otherwise the AntMMF params (random init).
    pub fn bert_config(&self) -> Result<BertConfig, UnivlError> {
        let params = &self.text_encoder.params;
        let key = |k: &str| format!("text_encoder.params.{k}");
        let mut config = match text_config_file(params.model_path.as_deref()) {
            Some(file) => {
                let file_config = BertConfig::from_file(&file)?;
                let available = file_config
                    .num_hidden_layers
                    .saturating_sub(params.start_hidden_layer);
                if params.num_hidden_layers > available {
                    return Err(config_error(
                        &key("num_hidden_layers"),
                        format!(
                            "{} layers (from layer {}) asked, {} has {}",
                            params.num_hidden_layers,
                            params.start_hidden_layer,
                            file.display(),
                            file_config.num_hidden_layers
                        ),
                    ));
                }
                for (name, ours, theirs) in [
                    ("hidden_size", params.hidden_size, file_config.hidden_size),
                    ("vocab_size", params.vocab_size, file_config.vocab_size),
                ] {
                    if ours != theirs {
                        return Err(config_error(
                            &key(name),
                            format!("{ours} differs from {} ({theirs})", file.display()),
                        ));
                    }
                }
                file_config
            }
            None => {
                let mut c = BertConfig {
                    vocab_size: params.vocab_size,
                    hidden_size: params.hidden_size,
                    ..BertConfig::default()
                };
                c.num_attention_heads = params
                    .num_attention_heads
                    .unwrap_or((params.hidden_size / 64).max(1));
                c.intermediate_size = params.intermediate_size.unwrap_or(4 * params.hidden_size);
                if let Some(n) = params.max_position_embeddings {
                    c.max_position_embeddings = n;
                }
                if let Some(n) = params.type_vocab_size {
                    c.type_vocab_size = n;
                }
                c
            }
        };
        config.num_hidden_layers = params.num_hidden_layers;
        if let Some(n) = params.num_segments {
            if params.model_path.is_some() && n != config.type_vocab_size {
                return Err(config_error(
                    &key("num_segments"),
                    format!(
                        "{n} differs from the checkpoint's type_vocab_size {} (extending it is not ported)",
                        config.type_vocab_size
                    ),
                ));
            }
            config.type_vocab_size = n;
        }
        if config.type_vocab_size < 2 {
            return Err(config_error(
                &key("num_segments"),
                "the cross encoder needs 2 token types",
            ));
        }
        config.validate()?;
        Ok(config)
    }
}

/// The `config.json` of a text checkpoint folder (or of the folder holding a weights file).
pub(crate) fn text_config_file(model_path: Option<&Path>) -> Option<PathBuf> {
    let path = model_path?;
    let dir = if path.is_dir() { path } else { path.parent()? };
    Some(dir.join("config.json"))
}
