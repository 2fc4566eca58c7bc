//! PVT v2 (Wang et al., 2022, "PVT v2: Improved Baselines with Pyramid Vision Transformer"):
//! overlapping patch embeddings, spatial-reduction attention and a depthwise-conv MLP in four
//! stages.
//!
//! Mirrors `classification/pvt_v2.py` of whai362/PVT (`PyramidVisionTransformerV2`, the
//! non-linear variants `pvt_v2_b0`..`b5`), which AntMMF uses as an image encoder. Checkpoints load
//! through [`crate::import::KeyMap::pvt_v2`] (`patch_embed{i}` / `block{i}` / `norm{i}` →
//! `stages.{i-1}.*`).
//!
//! transformers' `PvtV2Model` files load through [`crate::import::KeyMap::hf_pvt_v2`] (its
//! separate key/value projections are fused into `kv`). Parity: `fixtures/pvt_v2_*`
//! (transformers `PvtV2Model` with b2's structure at 1/8 width), every stage within 1e-4.

use crate::ops::linear_rows;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::transformer::multi_head_attention;

/// An inconsistent [`PvtV2Config`].
#[derive(Debug, thiserror::Error)]
#[error("invalid PVT v2 config: {0}")]
pub struct PvtV2ConfigError(pub String);

/// PVT v2 hyper-parameters (`PyramidVisionTransformerV2` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PvtV2Config {
    /// Input channels.
    pub in_channels: usize,
    /// Width per stage.
    pub embed_dims: Vec<usize>,
    /// Attention heads per stage.
    pub num_heads: Vec<usize>,
    /// MLP width multiple per stage.
    pub mlp_ratios: Vec<usize>,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Key/value spatial reduction per stage (1 = none).
    pub sr_ratios: Vec<usize>,
    /// Bias on the q and kv projections.
    pub qkv_bias: bool,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Classes of the linear head; 0 = no head.
    pub num_classes: usize,
}

impl Default for PvtV2Config {
    fn default() -> Self {
        Self::b2()
    }
}

impl PvtV2Config {
    fn preset(embed_dims: [usize; 4], mlp: [usize; 4], depths: [usize; 4]) -> Self {
        Self {
            in_channels: 3,
            embed_dims: embed_dims.to_vec(),
            num_heads: vec![1, 2, 5, 8],
            mlp_ratios: mlp.to_vec(),
            depths: depths.to_vec(),
            sr_ratios: vec![8, 4, 2, 1],
            qkv_bias: true,
            layer_norm_eps: 1e-6,
            num_classes: 1000,
        }
    }

    /// `pvt_v2_b0`.
    pub fn b0() -> Self {
        Self::preset([32, 64, 160, 256], [8, 8, 4, 4], [2, 2, 2, 2])
    }

    /// `pvt_v2_b1`.
    pub fn b1() -> Self {
        Self::preset([64, 128, 320, 512], [8, 8, 4, 4], [2, 2, 2, 2])
    }

    /// `pvt_v2_b2`.
    pub fn b2() -> Self {
        Self::preset([64, 128, 320, 512], [8, 8, 4, 4], [3, 4, 6, 3])
    }

    /// `pvt_v2_b3`.
    pub fn b3() -> Self {
        Self::preset([64, 128, 320, 512], [8, 8, 4, 4], [3, 4, 18, 3])
    }

    /// `pvt_v2_b4`.
    pub fn b4() -> Self {
        Self::preset([64, 128, 320, 512], [8, 8, 4, 4], [3, 8, 27, 3])
    }

    /// `pvt_v2_b5`.
    pub fn b5() -> Self {
        Self::preset([64, 128, 320, 512], [4, 4, 4, 4], [3, 6, 40, 3])
    }

    /// Checks that the per-stage lists agree and every width divides into its heads.
    pub fn validate(&self) -> Result<(), PvtV2ConfigError> {
        let n = self.embed_dims.len();
        let lens = [
            self.num_heads.len(),
            self.mlp_ratios.len(),
            self.depths.len(),
            self.sr_ratios.len(),
        ];
        if n == 0 || lens.iter().any(|&l| l != n) {
            return Err(PvtV2ConfigError(format!(
                "embed_dims, num_heads, mlp_ratios, depths and sr_ratios need one entry per \
                 stage (got {n} and {lens:?})"
            )));
        }
        for i in 0..n {
            let (dim, heads) = (self.embed_dims[i], self.num_heads[i]);
            if heads == 0 || !dim.is_multiple_of(heads) || self.sr_ratios[i] == 0 {
                return Err(PvtV2ConfigError(format!(
                    "stage {i}: width {dim}, {heads} heads, sr ratio {}",
                    self.sr_ratios[i]
                )));
            }
        }
        Ok(())
    }

    /// Builds the model with freshly initialised weights (call [`Self::validate`] first on
    /// configs read from files).
    pub fn init<B: Backend>(&self, device: &B::Device) -> PvtV2<B> {
        let ln = |d: usize| {
            LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let stages = (0..self.embed_dims.len())
            .map(|i| {
                let dim = self.embed_dims[i];
                let (k, stride, in_ch) = if i == 0 {
                    (7, 4, self.in_channels)
                } else {
                    (3, 2, self.embed_dims[i - 1])
                };
                let sr = self.sr_ratios[i];
                let hidden = dim * self.mlp_ratios[i];
                PvtStage {
                    patch_embed: OverlapPatchEmbed {
                        proj: Conv2dConfig::new([in_ch, dim], [k, k])
                            .with_stride([stride, stride])
                            .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                            .init(device),
                        norm: ln(dim),
                    },
                    blocks: (0..self.depths[i])
                        .map(|_| PvtBlock {
                            norm1: ln(dim),
                            attn: PvtAttention {
                                q: LinearConfig::new(dim, dim)
                                    .with_bias(self.qkv_bias)
                                    .init(device),
                                kv: LinearConfig::new(dim, 2 * dim)
                                    .with_bias(self.qkv_bias)
                                    .init(device),
                                proj: LinearConfig::new(dim, dim).init(device),
                                sr: (sr > 1).then(|| {
                                    Conv2dConfig::new([dim, dim], [sr, sr])
                                        .with_stride([sr, sr])
                                        .init(device)
                                }),
                                norm: (sr > 1).then(|| ln(dim)),
                                num_heads: self.num_heads[i],
                            },
                            norm2: ln(dim),
                            mlp: PvtMlp {
                                fc1: LinearConfig::new(dim, hidden).init(device),
                                dwconv: Conv2dConfig::new([hidden, hidden], [3, 3])
                                    .with_groups(hidden)
                                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                                    .init(device),
                                fc2: LinearConfig::new(hidden, dim).init(device),
                            },
                        })
                        .collect(),
                    norm: ln(dim),
                }
            })
            .collect();
        let last = self.embed_dims.last().copied().unwrap_or(1);
        PvtV2 {
            stages,
            head: (self.num_classes > 0)
                .then(|| LinearConfig::new(last, self.num_classes).init(device)),
        }
    }
}

/// Tokens `[B, H*W, C]` back to a map `[B, C, H, W]`.
fn to_map<B: Backend>(x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 4> {
    let [b, _, c] = x.dims();
    x.swap_dims(1, 2).reshape([b, c, h, w])
}

/// A map `[B, C, H, W]` to tokens `[B, H*W, C]`.
fn to_tokens<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).swap_dims(1, 2)
}

/// Overlapping patch embedding: strided Conv2d with `k/2` padding, then LayerNorm.
#[derive(Module, Debug)]
pub struct OverlapPatchEmbed<B: Backend> {
    /// The projection (7x7 stride 4 in stage 1, 3x3 stride 2 after).
    pub proj: Conv2d<B>,
    /// LayerNorm over channels.
    pub norm: LayerNorm<B>,
}

/// Attention whose keys and values come from a spatially reduced map (strided conv + LayerNorm).
#[derive(Module, Debug)]
pub struct PvtAttention<B: Backend> {
    /// Query projection.
    pub q: Linear<B>,
    /// Joint key/value projection.
    pub kv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    /// Spatial reduction (absent when the ratio is 1).
    pub sr: Option<Conv2d<B>>,
    /// LayerNorm after the reduction.
    pub norm: Option<LayerNorm<B>>,
    num_heads: usize,
}

impl<B: Backend> PvtAttention<B> {
    /// # Shapes
    /// - `x`: `[batch, H*W, C]`
    /// - output: `[batch, H*W, C]`
    pub fn forward(&self, x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 3> {
        let c = x.dims()[2];
        let q = linear_rows(&self.q, x.clone());
        let reduced = match (&self.sr, &self.norm) {
            (Some(sr), Some(norm)) => norm.forward(to_tokens(sr.forward(to_map(x, h, w)))),
            _ => x,
        };
        let kv = linear_rows(&self.kv, reduced);
        // kv's channels are [k heads..., v heads...] (reshape(B, N, 2, heads, hd)).
        let k = kv.clone().narrow(2, 0, c);
        let v = kv.narrow(2, c, c);
        linear_rows(
            &self.proj,
            multi_head_attention(q, k, v, self.num_heads, None, None),
        )
    }
}

/// fc1 → depthwise 3x3 conv on the token map → GELU → fc2.
#[derive(Module, Debug)]
pub struct PvtMlp<B: Backend> {
    /// Up-projection.
    pub fc1: Linear<B>,
    /// Depthwise 3x3 convolution (upstream `dwconv.dwconv`).
    pub dwconv: Conv2d<B>,
    /// Down-projection.
    pub fc2: Linear<B>,
}

/// One block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Module, Debug)]
pub struct PvtBlock<B: Backend> {
    /// Norm before attention.
    pub norm1: LayerNorm<B>,
    /// Spatial-reduction attention.
    pub attn: PvtAttention<B>,
    /// Norm before the MLP.
    pub norm2: LayerNorm<B>,
    /// The MLP.
    pub mlp: PvtMlp<B>,
}

impl<B: Backend> PvtBlock<B> {
    /// # Shapes
    /// - `x`, output: `[batch, H*W, C]`
    pub fn forward(&self, x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), h, w);
        let m = &self.mlp;
        let y = linear_rows(&m.fc1, self.norm2.forward(x.clone()));
        let y = to_tokens(m.dwconv.forward(to_map(y, h, w)));
        x + linear_rows(&m.fc2, gelu(y))
    }
}

/// One stage: patch embedding, blocks, LayerNorm.
#[derive(Module, Debug)]
pub struct PvtStage<B: Backend> {
    /// Patch embedding (downsamples).
    pub patch_embed: OverlapPatchEmbed<B>,
    /// Blocks.
    pub blocks: Vec<PvtBlock<B>>,
    /// LayerNorm after the blocks.
    pub norm: LayerNorm<B>,
}

/// PVT v2 backbone with an optional classification head.
#[derive(Module, Debug)]
pub struct PvtV2<B: Backend> {
    /// Four stages.
    pub stages: Vec<PvtStage<B>>,
    /// Linear head on the mean token of the last stage.
    pub head: Option<Linear<B>>,
}

impl<B: Backend> PvtV2<B> {
    /// Every stage's normalised output as a map.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, H, W]`
    /// - output: one `[batch, C_i, H_i, W_i]` per stage (strides 4, 8, 16, 32)
    pub fn forward_features(&self, images: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let mut x = images;
        let mut maps = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let embedded = stage.patch_embed.proj.forward(x);
            let [_, _, h, w] = embedded.dims();
            let mut tokens = stage.patch_embed.norm.forward(to_tokens(embedded));
            for block in &stage.blocks {
                tokens = block.forward(tokens, h, w);
            }
            x = to_map(stage.norm.forward(tokens), h, w);
            maps.push(x.clone());
        }
        maps
    }

    /// Mean token of the last stage, and class logits with a head.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, H, W]`
    /// - output: (`[batch, C_last]`, `[batch, num_classes]`)
    pub fn forward(&self, images: Tensor<B, 4>) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
        let [batch, channels, _, _] = images.dims();
        let device = images.device();
        let pooled = match self.forward_features(images).pop() {
            Some(map) => {
                let [b, c, h, w] = map.dims();
                map.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
            }
            // A stage-less model (empty config) passes the channel means through.
            None => Tensor::zeros([batch, channels], &device),
        };
        let logits = self.head.as_ref().map(|h| h.forward(pooled.clone()));
        (pooled, logits)
    }
}
