//! Video Swin Transformer (Liu et al., 2022, "Video Swin Transformer"): 3D patch embedding,
//! shifted-window 3D attention with a relative position bias, patch merging on H and W.
//!
//! Mirrors `torchvision/models/video/swin_transformer.py` (`SwinTransformer3d`, `swin3d_t/s/b`)
//! exactly, including its edge cases: windows clipped to small feature maps keep the bias index
//! of the *full* window (sliced), clipped dimensions do not shift, inputs are zero-padded to window
//! multiples (padded tokens are not masked) and the shifted-window mask is -100. Parameter paths
//! follow the original Video-Swin code (`layers.{i}.blocks.{j}`, `layers.{i}.downsample`), which
//! VIOLET/AntMMF checkpoints use; [`crate::import::KeyMap::torchvision_swin3d`] maps
//! torchvision's `features.{k}` onto them.
//!
//! AntMMF's VIOLET-style variant ([`VideoSwinConfig::violet`]) embeds patches with temporal stride
//! 1 after one frame of end padding, so the number of frames is preserved.
//!
//! Gradient checkpointing: Burn 0.21 does it per backend, not per module. `antmmf-train` trains on
//! `Autodiff<B, burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing>` instead of
//! `Autodiff<B>` when an encoder's `gradient_checkpointing` is set, and the autodiff graph then
//! recomputes cheap ("memory-bound") activations in the backward pass instead of keeping them;
//! this module needs no change for it.

use crate::ops::linear_rows;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::ops::PadMode;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// An inconsistent [`VideoSwinConfig`].
#[derive(Debug, thiserror::Error)]
#[error("invalid Video Swin config: {0}")]
pub struct VideoSwinConfigError(pub String);

/// Video Swin hyper-parameters (torchvision's `SwinTransformer3d` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoSwinConfig {
    /// Patch size `[t, h, w]`.
    pub patch_size: [usize; 3],
    /// Temporal stride 1 with `patch_t - 1` frames of end padding (VIOLET/AntMMF), so T is kept.
    /// Off: stride = patch size after padding to a multiple of it (torchvision).
    pub temporal_stride_one: bool,
    /// Input channels.
    pub in_channels: usize,
    /// Width of the first stage (doubles at every merge).
    pub embed_dim: usize,
    /// Swin blocks per stage.
    pub depths: Vec<usize>,
    /// Attention heads per stage.
    pub num_heads: Vec<usize>,
    /// Attention window `[t, h, w]`.
    pub window_size: [usize; 3],
    /// MLP width as a multiple of the block width.
    pub mlp_ratio: f64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Classes of the linear head on the pooled features; 0 = no head.
    pub num_classes: usize,
}

impl Default for VideoSwinConfig {
    fn default() -> Self {
        Self::swin3d_t()
    }
}

impl VideoSwinConfig {
    /// torchvision `swin3d_t`: embed 96, depths [2,2,6,2], heads [3,6,12,24], Kinetics-400 head.
    pub fn swin3d_t() -> Self {
        Self {
            patch_size: [2, 4, 4],
            temporal_stride_one: false,
            in_channels: 3,
            embed_dim: 96,
            depths: vec![2, 2, 6, 2],
            num_heads: vec![3, 6, 12, 24],
            window_size: [8, 7, 7],
            mlp_ratio: 4.0,
            layer_norm_eps: 1e-5,
            num_classes: 400,
        }
    }

    /// torchvision `swin3d_s`: embed 96, depths [2,2,18,2], heads [3,6,12,24].
    pub fn swin3d_s() -> Self {
        Self {
            depths: vec![2, 2, 18, 2],
            ..Self::swin3d_t()
        }
    }

    /// torchvision `swin3d_b`: embed 128, depths [2,2,18,2], heads [4,8,16,32].
    pub fn swin3d_b() -> Self {
        Self {
            embed_dim: 128,
            depths: vec![2, 2, 18, 2],
            num_heads: vec![4, 8, 16, 32],
            ..Self::swin3d_t()
        }
    }

    /// AntMMF's VIOLET-style backbone: embed 96, depths [2,2,18,2], heads [3,6,12,24], window
    /// (8,7,7), temporal stride 1 (T kept), 768 channels at H/32, no head.
    pub fn violet() -> Self {
        Self {
            temporal_stride_one: true,
            num_classes: 0,
            ..Self::swin3d_s()
        }
    }

    /// Checks what `init` and `forward` rely on: one head count per stage dividing its width,
    /// non-zero patch and window sizes.
    pub fn validate(&self) -> Result<(), VideoSwinConfigError> {
        let fail = |m: String| Err(VideoSwinConfigError(m));
        if self.depths.is_empty() || self.depths.len() != self.num_heads.len() {
            return fail(format!(
                "depths {:?} and num_heads {:?} must be non-empty and of equal length",
                self.depths, self.num_heads
            ));
        }
        if self.patch_size.contains(&0) || self.window_size.contains(&0) || self.embed_dim == 0 {
            return fail("patch_size, window_size and embed_dim must be non-zero".into());
        }
        for (i, &heads) in self.num_heads.iter().enumerate() {
            let dim = self.embed_dim << i;
            if heads == 0 || !dim.is_multiple_of(heads) {
                return fail(format!(
                    "stage {i}: width {dim} is not a multiple of {heads} heads"
                ));
            }
        }
        Ok(())
    }

    /// Width of the last stage's output.
    pub fn out_dim(&self) -> usize {
        self.embed_dim << self.depths.len().saturating_sub(1)
    }

    /// Builds the model with freshly initialised weights (call [`Self::validate`] first on
    /// configs read from files).
    pub fn init<B: Backend>(&self, device: &B::Device) -> VideoSwin<B> {
        let n_stages = self.depths.len();
        let ln = |d: usize| {
            LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let [_, ph, pw] = self.patch_size;
        let stride = if self.temporal_stride_one {
            [1, ph, pw]
        } else {
            self.patch_size
        };
        let index = relative_position_index(self.window_size);
        let table_len = self
            .window_size
            .iter()
            .map(|w| 2 * w - 1)
            .product::<usize>();
        let layers = (0..n_stages)
            .map(|i| {
                let dim = self.embed_dim << i;
                let heads = self.num_heads.get(i).copied().unwrap_or(1).max(1);
                let blocks = (0..self.depths[i])
                    .map(|j| SwinBlock3d {
                        norm1: ln(dim),
                        attn: WindowAttention3d {
                            qkv: LinearConfig::new(dim, 3 * dim).init(device),
                            proj: LinearConfig::new(dim, dim).init(device),
                            relative_position_bias_table: Param::from_tensor(Tensor::random(
                                [table_len, heads],
                                burn::tensor::Distribution::Normal(0.0, 0.02),
                                device,
                            )),
                            num_heads: heads,
                            window_size: self.window_size,
                            shift_size: if j % 2 == 0 {
                                [0; 3]
                            } else {
                                self.window_size.map(|w| w / 2)
                            },
                            relative_position_index: index.clone(),
                        },
                        norm2: ln(dim),
                        mlp: SwinMlp {
                            fc1: LinearConfig::new(dim, (dim as f64 * self.mlp_ratio) as usize)
                                .init(device),
                            fc2: LinearConfig::new((dim as f64 * self.mlp_ratio) as usize, dim)
                                .init(device),
                        },
                    })
                    .collect();
                SwinStage3d {
                    blocks,
                    downsample: (i + 1 < n_stages).then(|| PatchMerging3d {
                        norm: ln(4 * dim),
                        reduction: LinearConfig::new(4 * dim, 2 * dim)
                            .with_bias(false)
                            .init(device),
                    }),
                }
            })
            .collect();
        VideoSwin {
            patch_embed: PatchEmbed3d {
                proj: Conv3dConfig::new([self.in_channels, self.embed_dim], self.patch_size)
                    .with_stride(stride)
                    .init(device),
                norm: ln(self.embed_dim),
                patch_size: self.patch_size,
                temporal_stride_one: self.temporal_stride_one,
            },
            layers,
            norm: ln(self.out_dim()),
            head: (self.num_classes > 0)
                .then(|| LinearConfig::new(self.out_dim(), self.num_classes).init(device)),
        }
    }
}

/// The relative position index of a full window, row-major `[N, N]` with `N = wt*wh*ww`
/// (torchvision's `define_relative_position_index`).
pub fn relative_position_index(window: [usize; 3]) -> Vec<i64> {
    let [wt, wh, ww] = window.map(|w| w as i64);
    let coords: Vec<[i64; 3]> = (0..wt)
        .flat_map(|t| (0..wh).flat_map(move |h| (0..ww).map(move |w| [t, h, w])))
        .collect();
    let mut index = Vec::with_capacity(coords.len() * coords.len());
    for a in &coords {
        for b in &coords {
            let dt = a[0] - b[0] + wt - 1;
            let dh = a[1] - b[1] + wh - 1;
            let dw = a[2] - b[2] + ww - 1;
            index.push(dt * (2 * wh - 1) * (2 * ww - 1) + dh * (2 * ww - 1) + dw);
        }
    }
    index
}

/// Rounds `size` up to a multiple of `step`: the end padding needed.
fn pad_to(size: usize, step: usize) -> usize {
    (step - size % step) % step
}

/// Conv3d patch embedding (stride = patch, or temporal stride 1) with end padding, then
/// LayerNorm; output channels-last.
#[derive(Module, Debug)]
pub struct PatchEmbed3d<B: Backend> {
    /// The patch projection.
    pub proj: Conv3d<B>,
    /// LayerNorm over channels.
    pub norm: LayerNorm<B>,
    patch_size: [usize; 3],
    temporal_stride_one: bool,
}

impl<B: Backend> PatchEmbed3d<B> {
    /// # Shapes
    /// - `video`: `[batch, channels, T, H, W]`
    /// - output: `[batch, T', H', W', embed_dim]` with `T' = ceil(T / pt)` (or `T` with temporal
    ///   stride 1), `H' = ceil(H / ph)`, `W' = ceil(W / pw)`
    pub fn forward(&self, video: Tensor<B, 5>) -> Tensor<B, 5> {
        let [_, _, t, h, w] = video.dims();
        let [pt, ph, pw] = self.patch_size;
        let pad_t = if self.temporal_stride_one {
            pt - 1
        } else {
            pad_to(t, pt)
        };
        let (pad_h, pad_w) = (pad_to(h, ph), pad_to(w, pw));
        let x = if pad_t + pad_h + pad_w > 0 {
            video.pad([(0, pad_t), (0, pad_h), (0, pad_w)], PadMode::Constant(0.0))
        } else {
            video
        };
        let x = self.proj.forward(x).permute([0, 2, 3, 4, 1]);
        self.norm.forward(x)
    }
}

/// Shifted-window multi-head self-attention with a relative position bias.
#[derive(Module, Debug)]
pub struct WindowAttention3d<B: Backend> {
    /// Joint q/k/v projection.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    /// Bias per relative offset and head `[(2wt-1)(2wh-1)(2ww-1), heads]`.
    pub relative_position_bias_table: Param<Tensor<B, 2>>,
    num_heads: usize,
    window_size: [usize; 3],
    shift_size: [usize; 3],
    relative_position_index: Vec<i64>,
}

impl<B: Backend> WindowAttention3d<B> {
    /// # Shapes
    /// - `x`: `[batch, T, H, W, C]` (after norm1)
    /// - output: `[batch, T, H, W, C]`
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, t, h, w, c] = x.dims();
        let device = x.device();
        let size = [t, h, w];
        // Windows larger than the feature map shrink to it, and do not shift there.
        let mut window = self.window_size;
        let mut shift = self.shift_size;
        for i in 0..3 {
            if size[i] <= window[i] {
                window[i] = size[i];
                shift[i] = 0;
            }
        }
        let pads = [0, 1, 2].map(|i| pad_to(size[i], window[i]));
        let x = if pads.iter().sum::<usize>() > 0 {
            x.pad(
                [(0, pads[0]), (0, pads[1]), (0, pads[2]), (0, 0)],
                PadMode::Constant(0.0),
            )
        } else {
            x
        };
        let padded = [t + pads[0], h + pads[1], w + pads[2]];
        let shifted = shift.iter().sum::<usize>() > 0;
        // Burn's `roll(k)` moves element i+k to i, i.e. torch's `roll(-k)`: the signs below are
        // torchvision's negated (torch.roll(x, -shift) here, torch.roll(x, +shift) after).
        let x = if shifted {
            x.roll(&shift.map(|s| s as i64), &[1, 2, 3])
        } else {
            x
        };
        let counts = [0, 1, 2].map(|i| padded[i] / window[i]);
        let n_windows = counts.iter().product::<usize>();
        let n = window.iter().product::<usize>();
        let windows = window_partition(x, counts, window);

        let heads = self.num_heads;
        let head_dim = c / heads;
        let qkv = linear_rows(&self.qkv, windows)
            .reshape([b * n_windows, n, 3, heads, head_dim])
            .permute([2, 0, 3, 1, 4]);
        let part = |i: usize| {
            qkv.clone()
                .narrow(0, i, 1)
                .reshape([b * n_windows, heads, n, head_dim])
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let q = q * (head_dim as f64).powf(-0.5);
        // The bias (and in shifted blocks the per-window mask) is added as one row broadcast
        // over the flattened scores: Flex's general (middle-dimension) broadcast is several
        // times slower, and the scores are the largest tensors here. Bias and mask are summed
        // first on the small `[windows, heads, N, N]` grid, so no layout copy of the scores is
        // needed.
        let nn = n * n;
        let bias = self.bias(n, &device);
        let bias = if shifted {
            let mask = shift_mask::<B>(padded, window, shift, &device);
            (bias.reshape([1, heads, nn]) + mask.reshape([n_windows, 1, nn]))
                .reshape([1, n_windows * heads * nn])
        } else {
            bias.reshape([1, heads * nn])
        };
        let rows = if shifted { b } else { b * n_windows };
        let scores = q.matmul(k.transpose()).reshape([rows, bias.dims()[1]]) + bias;
        let out = softmax(scores.reshape([b * n_windows, heads, n, n]), 3).matmul(v);
        let out = out.swap_dims(1, 2).reshape([b * n_windows, n, c]);
        let out = linear_rows(&self.proj, out);
        let x = window_reverse(out, b, counts, window);
        let x = if shifted {
            x.roll(&shift.map(|s| -(s as i64)), &[1, 2, 3])
        } else {
            x
        };
        if pads.iter().sum::<usize>() > 0 {
            x.slice([0..b, 0..t, 0..h, 0..w, 0..c])
        } else {
            x
        }
    }

    /// The bias for an effective window of `n` tokens: the full window's index, sliced
    /// `[:n, :n]` (torchvision does not recompute it for clipped windows).
    fn bias(&self, n: usize, device: &B::Device) -> Tensor<B, 4> {
        let full = (self.relative_position_index.len() as f64).sqrt() as usize;
        let index: Vec<i64> = (0..n)
            .flat_map(|i| {
                self.relative_position_index[i * full..i * full + n]
                    .iter()
                    .copied()
            })
            .collect();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [n * n]), device);
        let heads = self.num_heads;
        self.relative_position_bias_table
            .val()
            .select(0, index)
            .reshape([n, n, heads])
            .permute([2, 0, 1])
            .reshape([1, heads, n, n])
    }
}

/// The shifted-window mask `[windows, N, N]`: 0 within a region, -100 across regions
/// (torchvision's `shifted_window_attention_3d`, computed on the padded grid).
fn shift_mask<B: Backend>(
    padded: [usize; 3],
    window: [usize; 3],
    shift: [usize; 3],
    device: &B::Device,
) -> Tensor<B, 3> {
    // Region label per coordinate and dimension; torchvision's slices
    // (0,-w), (-w,-s), (-s,None) assign 0/1/2, and with s = 0 the last slice covers everything.
    let label = |dim: usize, pos: usize| -> usize {
        let (p, w, s) = (padded[dim], window[dim], shift[dim]);
        if s == 0 {
            2
        } else if pos < p - w {
            0
        } else if pos < p - s {
            1
        } else {
            2
        }
    };
    let counts = [0, 1, 2].map(|i| padded[i] / window[i]);
    let n = window.iter().product::<usize>();
    let n_windows = counts.iter().product::<usize>();
    let mut regions = Vec::with_capacity(n_windows * n);
    for ct in 0..counts[0] {
        for ch in 0..counts[1] {
            for cw in 0..counts[2] {
                for t in 0..window[0] {
                    for h in 0..window[1] {
                        for w in 0..window[2] {
                            regions.push(
                                label(0, ct * window[0] + t) * 9
                                    + label(1, ch * window[1] + h) * 3
                                    + label(2, cw * window[2] + w),
                            );
                        }
                    }
                }
            }
        }
    }
    let mut mask = Vec::with_capacity(n_windows * n * n);
    for win in regions.chunks(n) {
        for a in win {
            for bb in win {
                mask.push(if a == bb { 0.0f32 } else { -100.0 });
            }
        }
    }
    Tensor::from_data(TensorData::new(mask, [n_windows, n, n]), device)
}

/// Linear → exact GELU → Linear.
#[derive(Module, Debug)]
pub struct SwinMlp<B: Backend> {
    /// Up-projection.
    pub fc1: Linear<B>,
    /// Down-projection.
    pub fc2: Linear<B>,
}

/// One Swin block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Module, Debug)]
pub struct SwinBlock3d<B: Backend> {
    /// Norm before attention.
    pub norm1: LayerNorm<B>,
    /// (Shifted) window attention.
    pub attn: WindowAttention3d<B>,
    /// Norm before the MLP.
    pub norm2: LayerNorm<B>,
    /// The MLP.
    pub mlp: SwinMlp<B>,
}

impl<B: Backend> SwinBlock3d<B> {
    /// # Shapes
    /// - `x`, output: `[batch, T, H, W, C]`
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x));
        let hidden = gelu(linear_rows(&self.mlp.fc1, self.norm2.forward(x.clone())));
        let y = linear_rows(&self.mlp.fc2, hidden);
        x + y
    }
}

/// Patch merging on H and W: 2x2 neighbours concatenated (h-index first), LayerNorm(4C),
/// Linear(4C → 2C, no bias). T is unchanged.
#[derive(Module, Debug)]
pub struct PatchMerging3d<B: Backend> {
    /// LayerNorm over the concatenated 4C channels.
    pub norm: LayerNorm<B>,
    /// Reduction 4C → 2C.
    pub reduction: Linear<B>,
}

impl<B: Backend> PatchMerging3d<B> {
    /// # Shapes
    /// - `x`: `[batch, T, H, W, C]`
    /// - output: `[batch, T, ceil(H/2), ceil(W/2), 2C]`
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, t, h, w, c] = x.dims();
        let (ph, pw) = (h % 2, w % 2);
        let x = if ph + pw > 0 {
            x.pad([(0, ph), (0, pw), (0, 0)], PadMode::Constant(0.0))
        } else {
            x
        };
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        // [.., h2, dh, w2, dw, C] -> [.., h2, w2, dw, dh, C]: channel blocks ordered
        // (dh,dw) = (0,0), (1,0), (0,1), (1,1), torchvision's x0, x1, x2, x3.
        let x = x
            .reshape([b * t, h2, 2, w2, 2, c])
            .permute([0, 1, 3, 4, 2, 5])
            .reshape([b, t, h2, w2, 4 * c]);
        linear_rows(&self.reduction, self.norm.forward(x))
    }
}

/// Cuts `[B, T, H, W, C]` (each of T, H, W a multiple of its window size) into windows
/// `[B * nT * nH * nW, wT * wH * wW, C]`, windows in (t, h, w) order and tokens in (t, h, w)
/// order inside each window. Tensors stay at most 5-dimensional (NdArray's limit is 6).
fn window_partition<B: Backend>(
    x: Tensor<B, 5>,
    counts: [usize; 3],
    window: [usize; 3],
) -> Tensor<B, 3> {
    let [b, _, _, w, c] = x.dims();
    let [ct, ch, cw] = counts;
    let [wt, wh, ww] = window;
    x.reshape([b * ct, wt, ch, wh, w * c])
        .swap_dims(1, 2)
        .reshape([b * ct * ch, wt * wh, cw, ww, c])
        .swap_dims(1, 2)
        .reshape([b * ct * ch * cw, wt * wh * ww, c])
}

/// The inverse of [`window_partition`]: windows `[B * nT * nH * nW, wT * wH * wW, C]` back to
/// `[B, T, H, W, C]`.
fn window_reverse<B: Backend>(
    windows: Tensor<B, 3>,
    b: usize,
    counts: [usize; 3],
    window: [usize; 3],
) -> Tensor<B, 5> {
    let [_, _, c] = windows.dims();
    let [ct, ch, cw] = counts;
    let [wt, wh, ww] = window;
    windows
        .reshape([b * ct * ch, cw, wt * wh, ww, c])
        .swap_dims(1, 2)
        .reshape([b * ct, ch, wt, wh, cw * ww * c])
        .swap_dims(1, 2)
        .reshape([b, ct * wt, ch * wh, cw * ww, c])
}

/// One stage: Swin blocks, then (except in the last stage) patch merging.
#[derive(Module, Debug)]
pub struct SwinStage3d<B: Backend> {
    /// Blocks; odd ones shift their windows.
    pub blocks: Vec<SwinBlock3d<B>>,
    /// Patch merging after the blocks.
    pub downsample: Option<PatchMerging3d<B>>,
}

/// Every intermediate output of [`VideoSwin::forward_features`], layout `[B, T, H, W, C]`.
#[derive(Debug, Clone)]
pub struct VideoSwinFeatures<B: Backend> {
    /// Patch embedding output (after its LayerNorm).
    pub patch_embed: Tensor<B, 5>,
    /// Output of each stage's blocks (torchvision `features.{0,2,4,6}`).
    pub stages: Vec<Tensor<B, 5>>,
    /// Output of each patch merging (torchvision `features.{1,3,5}`).
    pub merged: Vec<Tensor<B, 5>>,
    /// The last stage after the final LayerNorm.
    pub norm: Tensor<B, 5>,
}

/// The Video Swin Transformer backbone with an optional classification head.
#[derive(Module, Debug)]
pub struct VideoSwin<B: Backend> {
    /// 3D patch embedding.
    pub patch_embed: PatchEmbed3d<B>,
    /// Stages.
    pub layers: Vec<SwinStage3d<B>>,
    /// Final LayerNorm.
    pub norm: LayerNorm<B>,
    /// Linear head on the pooled features.
    pub head: Option<Linear<B>>,
}

impl<B: Backend> VideoSwin<B> {
    /// All intermediate feature maps.
    ///
    /// # Shapes
    /// - `video`: `[batch, channels, T, H, W]`
    /// - output: see [`VideoSwinFeatures`]; the last stage is `[batch, T', H/32, W/32, out_dim]`
    pub fn forward_features(&self, video: Tensor<B, 5>) -> VideoSwinFeatures<B> {
        let patch_embed = self.patch_embed.forward(video);
        let mut x = patch_embed.clone();
        let mut stages = Vec::with_capacity(self.layers.len());
        let mut merged = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            for block in &layer.blocks {
                x = block.forward(x);
            }
            stages.push(x.clone());
            if let Some(down) = &layer.downsample {
                x = down.forward(x);
                merged.push(x.clone());
            }
        }
        let norm = self.norm.forward(x);
        VideoSwinFeatures {
            patch_embed,
            stages,
            merged,
            norm,
        }
    }

    /// Mean over T, H, W of the normalised last stage.
    ///
    /// # Shapes
    /// - `norm`: `[batch, T, H, W, C]`
    /// - output: `[batch, C]`
    pub fn pool(norm: Tensor<B, 5>) -> Tensor<B, 2> {
        let [b, t, h, w, c] = norm.dims();
        norm.reshape([b, t * h * w, c]).mean_dim(1).reshape([b, c])
    }

    /// Pooled features and, with a head, class logits.
    ///
    /// # Shapes
    /// - `video`: `[batch, channels, T, H, W]`
    /// - output: (`[batch, out_dim]`, `[batch, num_classes]`)
    pub fn forward(&self, video: Tensor<B, 5>) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
        let pooled = Self::pool(self.forward_features(video).norm);
        let logits = self.head.as_ref().map(|h| h.forward(pooled.clone()));
        (pooled, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn windows_are_cut_in_order_and_put_back() {
        let device = Default::default();
        let (b, t, h, w, c) = (2, 4, 4, 6, 3);
        let len = b * t * h * w * c;
        let values: Vec<f32> = (0..len).map(|v| v as f32).collect();
        let x = Tensor::<Flex, 1>::from_data(TensorData::new(values.clone(), [len]), &device)
            .reshape([b, t, h, w, c]);
        let (counts, window) = ([2, 2, 3], [2, 2, 2]);
        let windows = window_partition(x.clone(), counts, window);
        assert_eq!(windows.dims(), [b * 12, 8, c]);
        let got: Vec<f32> = windows.clone().into_data().to_vec().unwrap();
        let at = |bi: usize, ti: usize, hi: usize, wi: usize, ci: usize| {
            values[(((bi * t + ti) * h + hi) * w + wi) * c + ci]
        };
        // Batch 1, window (t 1, h 0, w 2), token (t 1, h 1, w 0), channel 2.
        let (wt, wh, ww) = (1, 0, 2);
        let (tt, th, tw) = (1, 1, 0);
        let win = 12 + (wt * counts[1] + wh) * counts[2] + ww;
        let tok = (tt * window[1] + th) * window[2] + tw;
        assert_eq!(got[(win * 8 + tok) * c + 2], at(1, 3, 1, 4, 2));
        let back: Vec<f32> = window_reverse(windows, b, counts, window)
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(back, values);
    }
}
