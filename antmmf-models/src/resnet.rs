//! ResNet (He et al., 2016, "Deep Residual Learning for Image Recognition") with bottleneck
//! blocks, in torchvision's v1.5 form (stride on the 3x3 convolution).
//!
//! Mirrors `torchvision/models/resnet.py` (`resnet50`, `resnet101`, `resnet152`), which AntMMF
//! uses as an image encoder. Parameter paths are torchvision's except `downsample.0/1` →
//! `downsample.conv/bn` (see [`crate::import::KeyMap::torchvision_resnet`]).
//!
//! Parity: `fixtures/resnet50_*` (torchvision's ResNet code with resnet50's block counts and
//! every width divided by 8, see [`ResNetConfig::base_width`]), every stage within 1e-4.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// Output channels per bottleneck width.
pub const BOTTLENECK_EXPANSION: usize = 4;

/// ResNet hyper-parameters (bottleneck variants).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResNetConfig {
    /// Bottleneck blocks in each of the four stages.
    pub layers: [usize; 4],
    /// Input channels.
    pub in_channels: usize,
    /// Classes of the linear head; 0 = no head.
    pub num_classes: usize,
    /// BatchNorm epsilon.
    pub batch_norm_epsilon: f64,
    /// Width of the stem and of the first stage's bottleneck (64 in every torchvision model);
    /// stage i is `base_width << i` wide and outputs 4x that. Smaller values give narrow test
    /// models of the same architecture.
    pub base_width: usize,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self::resnet50()
    }
}

impl ResNetConfig {
    /// torchvision `resnet50`: [3, 4, 6, 3].
    pub fn resnet50() -> Self {
        Self {
            layers: [3, 4, 6, 3],
            in_channels: 3,
            num_classes: 1000,
            batch_norm_epsilon: 1e-5,
            base_width: 64,
        }
    }

    /// torchvision `resnet101`: [3, 4, 23, 3].
    pub fn resnet101() -> Self {
        Self {
            layers: [3, 4, 23, 3],
            ..Self::resnet50()
        }
    }

    /// torchvision `resnet152`: [3, 8, 36, 3].
    pub fn resnet152() -> Self {
        Self {
            layers: [3, 8, 36, 3],
            ..Self::resnet50()
        }
    }

    /// Channels of the last stage (2048 at `base_width` 64).
    pub fn feature_dim(&self) -> usize {
        (self.base_width << 3) * BOTTLENECK_EXPANSION
    }

    /// Builds the model with freshly initialised weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let bn = |c: usize| {
            BatchNormConfig::new(c)
                .with_epsilon(self.batch_norm_epsilon)
                .init(device)
        };
        let conv = |i: usize, o: usize, k: usize, s: usize| {
            Conv2dConfig::new([i, o], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                .with_bias(false)
                .init(device)
        };
        let expansion = BOTTLENECK_EXPANSION;
        let base = self.base_width;
        let mut in_ch = base;
        let mut stages = Vec::with_capacity(4);
        for (i, &blocks) in self.layers.iter().enumerate() {
            let width = base << i;
            let stride = if i == 0 { 1 } else { 2 };
            let stage: Vec<Bottleneck<B>> = (0..blocks)
                .map(|j| {
                    let s = if j == 0 { stride } else { 1 };
                    let out = width * expansion;
                    let block = Bottleneck {
                        conv1: conv(in_ch, width, 1, 1),
                        bn1: bn(width),
                        conv2: conv(width, width, 3, s),
                        bn2: bn(width),
                        conv3: conv(width, out, 1, 1),
                        bn3: bn(out),
                        downsample: (j == 0 && (s != 1 || in_ch != out)).then(|| Downsample {
                            conv: conv(in_ch, out, 1, s),
                            bn: bn(out),
                        }),
                    };
                    in_ch = out;
                    block
                })
                .collect();
            stages.push(stage);
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        ResNet {
            conv1: conv(self.in_channels, base, 7, 2),
            bn1: bn(base),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            fc: (self.num_classes > 0)
                .then(|| LinearConfig::new(self.feature_dim(), self.num_classes).init(device)),
        }
    }
}

/// 1x1 strided convolution + BatchNorm on the residual path (torchvision `downsample.0/1`).
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    /// Projection.
    pub conv: Conv2d<B>,
    /// BatchNorm.
    pub bn: BatchNorm<B>,
}

/// 1x1 reduce → 3x3 (strided) → 1x1 expand, BatchNorm after each, ReLU, residual.
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    /// 1x1 reduction.
    pub conv1: Conv2d<B>,
    /// BatchNorm 1.
    pub bn1: BatchNorm<B>,
    /// 3x3 convolution (carries the stride).
    pub conv2: Conv2d<B>,
    /// BatchNorm 2.
    pub bn2: BatchNorm<B>,
    /// 1x1 expansion.
    pub conv3: Conv2d<B>,
    /// BatchNorm 3.
    pub bn3: BatchNorm<B>,
    /// Residual projection when the shape changes.
    pub downsample: Option<Downsample<B>>,
}

impl<B: Backend> Bottleneck<B> {
    /// # Shapes
    /// - `x`: `[batch, in, H, W]`
    /// - output: `[batch, 4 * width, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let y = relu(self.bn1.forward(self.conv1.forward(x)));
        let y = relu(self.bn2.forward(self.conv2.forward(y)));
        let y = self.bn3.forward(self.conv3.forward(y));
        relu(y + identity)
    }
}

/// ResNet with bottleneck blocks and an optional classifier.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    /// 7x7 stride-2 stem.
    pub conv1: Conv2d<B>,
    /// Stem BatchNorm.
    pub bn1: BatchNorm<B>,
    /// 3x3 stride-2 max pooling.
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 4).
    pub layer1: Vec<Bottleneck<B>>,
    /// Stage 2 (stride 8).
    pub layer2: Vec<Bottleneck<B>>,
    /// Stage 3 (stride 16).
    pub layer3: Vec<Bottleneck<B>>,
    /// Stage 4 (stride 32).
    pub layer4: Vec<Bottleneck<B>>,
    /// Classifier on the pooled features.
    pub fc: Option<Linear<B>>,
}

impl<B: Backend> ResNet<B> {
    /// Every stage's output.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, H, W]`
    /// - output: `[batch, (4 * base_width) << i, H / 2^(i+2), W / 2^(i+2)]` for stages i = 0..4
    pub fn forward_features(&self, images: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let mut x = self
            .maxpool
            .forward(relu(self.bn1.forward(self.conv1.forward(images))));
        let mut maps = Vec::with_capacity(4);
        for stage in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in stage {
                x = block.forward(x);
            }
            maps.push(x.clone());
        }
        maps
    }

    /// Global-average-pooled last stage and, with a classifier, logits.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, H, W]`
    /// - output: (`[batch, feature_dim]`, `[batch, num_classes]`)
    pub fn forward(&self, images: Tensor<B, 4>) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
        let [batch, channels, _, _] = images.dims();
        let device = images.device();
        let pooled = match self.forward_features(images).pop() {
            Some(map) => {
                let [b, c, h, w] = map.dims();
                map.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
            }
            None => Tensor::zeros([batch, channels], &device),
        };
        let logits = self.fc.as_ref().map(|fc| fc.forward(pooled.clone()));
        (pooled, logits)
    }
}
