//! CLIP towers (Radford et al., 2021, "Learning Transferable Visual Models From Natural Language
//! Supervision"): the ViT image encoder and the causal text transformer.
//!
//! Mirrors `transformers/models/clip/modeling_clip.py` (`CLIPVisionTransformer`,
//! `CLIPTextTransformer`, eager attention). Parameter paths are HF's (`CLIPVisionModel` /
//! `CLIPTextModel` keys; a full `CLIPModel` file's `vision_model.` / `text_model.` subtrees via
//! [`crate::import::KeyMap::hf_clip_vision`] / [`crate::import::KeyMap::hf_clip_text`]).

use crate::ops::linear_rows;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::import::{ImportError, KeyMap, LoadOptions, LoadReport, WeightFile, find_weights_file};
use crate::transformer::{Activation, bool_to_additive, multi_head_attention};

/// Errors raised while reading a CLIP configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClipConfigError {
    /// The file could not be read.
    #[error("cannot read CLIP config {path}: {source}")]
    Io {
        /// The config file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid HF CLIP `config.json`.
    #[error("invalid CLIP config {path}: {source}")]
    Parse {
        /// The config file.
        path: std::path::PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The values are inconsistent.
    #[error("invalid CLIP config: {0}")]
    Invalid(String),
}

/// Errors raised by the towers' `from_pretrained`.
#[derive(Debug, thiserror::Error)]
pub enum ClipLoadError {
    /// The folder's `config.json` is missing or invalid.
    #[error(transparent)]
    Config(#[from] ClipConfigError),
    /// The weights could not be found, read or applied.
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// Reads a tower config from either a tower `config.json` or a full `CLIPModel` one (`key`).
fn read_config<T: DeserializeOwned>(path: &Path, key: &str) -> Result<T, ClipConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClipConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let parse = |source| ClipConfigError::Parse {
        path: path.to_path_buf(),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(parse)?;
    let tower = value.get(key).cloned().unwrap_or(value);
    serde_json::from_value(tower).map_err(parse)
}

fn check_heads(hidden: usize, heads: usize) -> Result<(), ClipConfigError> {
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(ClipConfigError::Invalid(format!(
            "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
        )));
    }
    Ok(())
}

/// Vision tower hyper-parameters; deserializes HF `CLIPVisionConfig` (defaults: ViT-B/32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    /// Token width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Input side in pixels (sets the number of position embeddings).
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// MLP activation.
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

impl ClipVisionConfig {
    /// Reads a `CLIPVisionConfig` JSON, or the `vision_config` of a `CLIPModel` one.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ClipConfigError> {
        let config: Self = read_config(path.as_ref(), "vision_config")?;
        check_heads(config.hidden_size, config.num_attention_heads)?;
        Ok(config)
    }

    /// Builds the tower with freshly initialised weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipVision<B> {
        let h = self.hidden_size;
        let num_patches = (self.image_size / self.patch_size).pow(2);
        let ln = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        ClipVision {
            embeddings: ClipVisionEmbeddings {
                class_embedding: Param::from_tensor(Tensor::random(
                    [h],
                    burn::tensor::Distribution::Normal(0.0, 0.02),
                    device,
                )),
                patch_embedding: Conv2dConfig::new(
                    [self.num_channels, h],
                    [self.patch_size, self.patch_size],
                )
                .with_stride([self.patch_size, self.patch_size])
                .with_bias(false)
                .init(device),
                position_embedding: EmbeddingConfig::new(num_patches + 1, h).init(device),
            },
            pre_layrnorm: ln(),
            encoder: ClipEncoder::new(
                h,
                self.intermediate_size,
                self.num_hidden_layers,
                self.num_attention_heads,
                self.hidden_act,
                self.layer_norm_eps,
                device,
            ),
            post_layernorm: ln(),
        }
    }
}

/// Text tower hyper-parameters; deserializes HF `CLIPTextConfig` (defaults: ViT-B/32's text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Token width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Number of learned positions (maximum sequence length).
    pub max_position_embeddings: usize,
    /// MLP activation.
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// End-of-text id; the pooled output is the hidden state at its first occurrence.
    pub eos_token_id: i64,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            eos_token_id: 49407,
        }
    }
}

impl ClipTextConfig {
    /// Reads a `CLIPTextConfig` JSON, or the `text_config` of a `CLIPModel` one.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ClipConfigError> {
        let config: Self = read_config(path.as_ref(), "text_config")?;
        check_heads(config.hidden_size, config.num_attention_heads)?;
        Ok(config)
    }

    /// Builds the tower with freshly initialised weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipText<B> {
        let h = self.hidden_size;
        ClipText {
            embeddings: ClipTextEmbeddings {
                token_embedding: EmbeddingConfig::new(self.vocab_size, h).init(device),
                position_embedding: EmbeddingConfig::new(self.max_position_embeddings, h)
                    .init(device),
            },
            encoder: ClipEncoder::new(
                h,
                self.intermediate_size,
                self.num_hidden_layers,
                self.num_attention_heads,
                self.hidden_act,
                self.layer_norm_eps,
                device,
            ),
            final_layer_norm: LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            eos_token_id: self.eos_token_id,
        }
    }
}

/// Multi-head self-attention with separate q/k/v/out projections.
#[derive(Module, Debug)]
pub struct ClipAttention<B: Backend> {
    /// Query projection.
    pub q_proj: Linear<B>,
    /// Key projection.
    pub k_proj: Linear<B>,
    /// Value projection.
    pub v_proj: Linear<B>,
    /// Output projection.
    pub out_proj: Linear<B>,
    num_heads: usize,
}

/// fc1 → activation → fc2.
#[derive(Module, Debug)]
pub struct ClipMlp<B: Backend> {
    /// Up-projection.
    pub fc1: Linear<B>,
    /// Down-projection.
    pub fc2: Linear<B>,
    activation: Activation,
}

/// One pre-LN encoder layer.
#[derive(Module, Debug)]
pub struct ClipEncoderLayer<B: Backend> {
    /// Norm before attention.
    pub layer_norm1: LayerNorm<B>,
    /// Self-attention.
    pub self_attn: ClipAttention<B>,
    /// Norm before the MLP.
    pub layer_norm2: LayerNorm<B>,
    /// The MLP.
    pub mlp: ClipMlp<B>,
}

impl<B: Backend> ClipEncoderLayer<B> {
    /// `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; `mask`: broadcastable to `[batch, heads, seq, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let h = self.layer_norm1.forward(x.clone());
        let a = &self.self_attn;
        let attended = multi_head_attention(
            linear_rows(&a.q_proj, h.clone()),
            linear_rows(&a.k_proj, h.clone()),
            linear_rows(&a.v_proj, h),
            a.num_heads,
            mask,
            None,
        );
        let x = x + linear_rows(&a.out_proj, attended);
        let m = &self.mlp;
        let y = linear_rows(
            &m.fc2,
            m.activation
                .forward(linear_rows(&m.fc1, self.layer_norm2.forward(x.clone()))),
        );
        x + y
    }
}

/// The encoder layer stack shared by both towers.
#[derive(Module, Debug)]
pub struct ClipEncoder<B: Backend> {
    /// Layers, in order.
    pub layers: Vec<ClipEncoderLayer<B>>,
}

impl<B: Backend> ClipEncoder<B> {
    fn new(
        hidden: usize,
        intermediate: usize,
        num_layers: usize,
        heads: usize,
        activation: Activation,
        eps: f64,
        device: &B::Device,
    ) -> Self {
        let ln = || LayerNormConfig::new(hidden).with_epsilon(eps).init(device);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        Self {
            layers: (0..num_layers)
                .map(|_| ClipEncoderLayer {
                    layer_norm1: ln(),
                    self_attn: ClipAttention {
                        q_proj: linear(hidden, hidden),
                        k_proj: linear(hidden, hidden),
                        v_proj: linear(hidden, hidden),
                        out_proj: linear(hidden, hidden),
                        num_heads: heads,
                    },
                    layer_norm2: ln(),
                    mlp: ClipMlp {
                        fc1: linear(hidden, intermediate),
                        fc2: linear(intermediate, hidden),
                        activation,
                    },
                })
                .collect(),
        }
    }

    /// Runs every layer; with `hidden_states`, returns the input then each layer's output.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; output: (`[batch, seq, hidden]`, `layers + 1` tensors or none)
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        mask: Option<Tensor<B, 4>>,
        hidden_states: bool,
    ) -> (Tensor<B, 3>, Vec<Tensor<B, 3>>) {
        let mut states = Vec::new();
        let mut x = x;
        for layer in &self.layers {
            if hidden_states {
                states.push(x.clone());
            }
            x = layer.forward(x, mask.clone());
        }
        if hidden_states {
            states.push(x.clone());
        }
        (x, states)
    }
}

/// What the CLIP towers return.
#[derive(Debug, Clone)]
pub struct ClipOutput<B: Backend> {
    /// Vision: encoder output (no post-LN). Text: after `final_layer_norm`. `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// Vision: `post_layernorm(CLS)`. Text: the state at the first EOS. `[batch, hidden]`.
    pub pooled: Tensor<B, 2>,
    /// Encoder input then each layer's output (`layers + 1`), when requested.
    pub hidden_states: Vec<Tensor<B, 3>>,
}

/// Class token, conv patch embedding (no bias) and learned positions.
#[derive(Module, Debug)]
pub struct ClipVisionEmbeddings<B: Backend> {
    /// The class token `[hidden]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// Patch projection (stride = patch, no bias).
    pub patch_embedding: Conv2d<B>,
    /// Positions `[patches + 1, hidden]`.
    pub position_embedding: Embedding<B>,
}

/// The CLIP ViT image encoder.
#[derive(Module, Debug)]
pub struct ClipVision<B: Backend> {
    /// Token embeddings.
    pub embeddings: ClipVisionEmbeddings<B>,
    /// LayerNorm before the encoder (HF's spelling).
    pub pre_layrnorm: LayerNorm<B>,
    /// Pre-LN encoder.
    pub encoder: ClipEncoder<B>,
    /// LayerNorm on the pooled CLS token.
    pub post_layernorm: LayerNorm<B>,
}

impl<B: Backend> ClipVision<B> {
    /// Loads the vision tower of an HF folder (`CLIPVisionModel` or full `CLIPModel`:
    /// `config.json` + `model.safetensors` or `pytorch_model.bin`).
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<(Self, ClipVisionConfig, LoadReport), ClipLoadError> {
        let dir = dir.as_ref();
        let config = ClipVisionConfig::from_file(dir.join("config.json"))?;
        let (model, report) = WeightFile::open(find_weights_file(dir)?)?.load_into(
            config.init(device),
            &KeyMap::hf_clip_vision(),
            &LoadOptions::default(),
        )?;
        Ok((model, config, report))
    }

    /// Encodes normalised images.
    ///
    /// # Panics
    /// When the image yields more patches than the config's `image_size` has position embeddings.
    ///
    /// # Shapes
    /// - `pixel_values`: `[batch, channels, image, image]`
    /// - output: see [`ClipOutput`]; `seq = (image / patch)^2 + 1`
    pub fn forward(&self, pixel_values: Tensor<B, 4>, output_hidden_states: bool) -> ClipOutput<B> {
        let e = &self.embeddings;
        let patches = e.patch_embedding.forward(pixel_values);
        let [b, h, gh, gw] = patches.dims();
        let patches = patches.reshape([b, h, gh * gw]).swap_dims(1, 2);
        let cls = e.class_embedding.val().reshape([1, 1, h]).expand([b, 1, h]);
        let tokens = Tensor::cat(vec![cls, patches], 1);
        let seq = gh * gw + 1;
        let positions = e
            .position_embedding
            .weight
            .val()
            .narrow(0, 0, seq)
            .unsqueeze::<3>();
        let x = self.pre_layrnorm.forward(tokens + positions);
        let (last, hidden_states) = self.encoder.forward(x, None, output_hidden_states);
        let cls_out = last.clone().narrow(1, 0, 1).reshape([b, h]);
        ClipOutput {
            pooled: self.post_layernorm.forward(cls_out),
            last_hidden_state: last,
            hidden_states,
        }
    }
}

/// Token and learned position embeddings.
#[derive(Module, Debug)]
pub struct ClipTextEmbeddings<B: Backend> {
    /// Tokens `[vocab, hidden]`.
    pub token_embedding: Embedding<B>,
    /// Positions `[max_positions, hidden]`.
    pub position_embedding: Embedding<B>,
}

/// The CLIP causal text encoder.
#[derive(Module, Debug)]
pub struct ClipText<B: Backend> {
    /// Token embeddings.
    pub embeddings: ClipTextEmbeddings<B>,
    /// Pre-LN encoder with a causal mask.
    pub encoder: ClipEncoder<B>,
    /// LayerNorm after the encoder.
    pub final_layer_norm: LayerNorm<B>,
    eos_token_id: i64,
}

impl<B: Backend> ClipText<B> {
    /// Loads the text tower of an HF folder (`CLIPTextModel` or full `CLIPModel`).
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<(Self, ClipTextConfig, LoadReport), ClipLoadError> {
        let dir = dir.as_ref();
        let config = ClipTextConfig::from_file(dir.join("config.json"))?;
        let (model, report) = WeightFile::open(find_weights_file(dir)?)?.load_into(
            config.init(device),
            &KeyMap::hf_clip_text(),
            &LoadOptions::default(),
        )?;
        Ok((model, config, report))
    }

    /// Encodes token ids with the causal mask (query i sees keys j ≤ i); `attention_mask`
    /// (1 = token, 0 = padding) additionally masks padded keys, which only changes pad rows.
    /// The pooled output is the state at each row's first EOS (position 0 if a row has none).
    ///
    /// # Shapes
    /// - `input_ids`, `attention_mask`: `[batch, seq]`
    /// - output: see [`ClipOutput`]
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> ClipOutput<B> {
        let [b, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
            .reshape([1, seq])
            .expand([b, seq]);
        let x = self.embeddings.token_embedding.forward(input_ids.clone())
            + self.embeddings.position_embedding.forward(positions);
        // Masked = key after the query, or (with a padding mask) a padded key. Burn's
        // `tril_mask` is true *outside* the lower triangle, i.e. exactly on keys j > i.
        let mut masked: Tensor<B, 4, Bool> =
            Tensor::<B, 2, Bool>::tril_mask([seq, seq], 0, &device).reshape([1, 1, seq, seq]);
        if let Some(mask) = attention_mask {
            let padded = mask.equal_elem(0).reshape([b, 1, 1, seq]);
            masked = masked
                .expand([b, 1, seq, seq])
                .bool_or(padded.expand([b, 1, seq, seq]));
        }
        let (last, hidden_states) =
            self.encoder
                .forward(x, Some(bool_to_additive(masked)), output_hidden_states);
        let last = self.final_layer_norm.forward(last);
        let [_, _, h] = last.dims();
        // First EOS: the EOS position with the largest (seq - position) score.
        let rank = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
            .neg()
            .add_scalar(seq as i64)
            .reshape([1, seq]);
        let eos = input_ids.equal_elem(self.eos_token_id).int() * rank;
        let index = eos.argmax(1).reshape([b, 1, 1]).expand([b, 1, h]);
        let pooled = last.clone().gather(1, index).reshape([b, h]);
        ClipOutput {
            last_hidden_state: last,
            pooled,
            hidden_states,
        }
    }
}
