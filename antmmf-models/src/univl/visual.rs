//! The UniVL visual side: a backbone producing per-frame grid features, masked mean pooling of
//! each clip's frames and grid cells into one clip token, and `img_fc` for the L1 embedding.
//!
//! Mirrors `UnivlVideoBase.forward_img_encoder` (`prj/base_vtp/roi_univl/univl/model/
//! univl_video_base.py`) over AntMMF's encoders:
//! - `VideoSwinEncoder` (`antmmf/modules/encoders/visual_encoder.py`): the whole `[T, H, W]`
//!   video through one Swin, grid `[B, T', C, h, w]`;
//! - `VitImageEncoder` (`prj/.../clip_visual_encoder.py`): CLIP ViT per frame, one 1x1 "grid"
//!   cell;
//! - `DetrBatchPVTImageEncoder` (`visual_encoder.py`): PVT v2 per frame, the last stage's map
//!   `[C_4, ceil(H/32), ceil(W/32)]` (PVT's convolutions round odd sizes up) through a 1x1
//!   `output_proj` convolution to `output_channels`;
//! - `BatchEfficientNetImageEncoder` (`antmmf/modules/vision/backbone/efficientnet.py`):
//!   EfficientNet-Lite per frame, the head's map `[1280, ceil(H/32), ceil(W/32)]`, adaptively
//!   pooled to the `num_output_features` grid (`[rows, cols]`) unless that is -1. AntMMF's encoder
//!   returns flat pooled tokens `[B, N, cells, C]`, not the `grid_feature` dict UniVL reads;
//!   here its pooled map is the grid, so it plugs into the same clip pooling.
//!
//! Every backbone's grid is channels last, `[B, T', h, w, C]` ([`VisualBackbone::grid`]); the
//! pixel padding mask is resized onto it with nearest sampling, each clip's frames and cells are
//! mean-pooled into one token `[B, n_clips, C]` ([`pool_clips`]), and `img_proj` maps `C` to the
//! BERT width when they differ. For PVT, `C` is `output_channels` (AntMMF sizes `img_proj` from
//! the PVT width though its grid has `output_channels`, which fails when they differ; its configs
//! set `output_channels` to `hidden_size`, so no `img_proj` is built).

use crate::ops::linear_rows;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::clip::ClipVision;
use crate::efficientnet::EfficientNetLite;
use crate::import::{KeyMap, LoadOptions, LoadReport, WeightFile};
use crate::losses::l2_normalize;
use crate::pvt_v2::PvtV2;
use crate::video_swin::VideoSwin;

use super::UnivlError;
use super::config::{ImageEncoderConfig, PoolType, UnivlConfig};

/// CLIP ViT applied frame by frame, with OpenAI CLIP's optional output projection.
#[derive(Module, Debug)]
pub struct ClipFrameEncoder<B: Backend> {
    /// The vision tower (its pooled output is `post_layernorm(CLS)`).
    pub vision: ClipVision<B>,
    /// `proj` (no bias), `[width, out_dim]`, when `is_proj`.
    pub proj: Option<Linear<B>>,
    image_size: usize,
}

/// The visual backbone, by AntMMF encoder type.
// One backbone per model: the variants' size difference costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum VisualBackbone<B: Backend> {
    /// `VideoSwinEncoder`.
    Swin(VideoSwin<B>),
    /// `VitImageEncoder`.
    Clip(ClipFrameEncoder<B>),
    /// `BatchEfficientNetImageEncoder`.
    EfficientNet(EfficientNetFrameEncoder<B>),
    /// `DetrBatchPVTImageEncoder`.
    Pvt(PvtFrameEncoder<B>),
}

/// EfficientNet-Lite applied frame by frame, with AntMMF's `num_output_features` pooling.
#[derive(Module, Debug)]
pub struct EfficientNetFrameEncoder<B: Backend> {
    /// The backbone (no classifier).
    pub net: EfficientNetLite<B>,
    /// Pooled grid rows (0: the map is kept).
    pool_rows: usize,
    /// Pooled grid columns.
    pool_cols: usize,
    /// Max instead of average pooling.
    pool_max: bool,
}

impl<B: Backend> EfficientNetFrameEncoder<B> {
    /// The per-frame grid: the head's map, pooled when a grid size is set.
    ///
    /// # Shapes
    /// - `frames`: `[N, 3, H, W]`
    /// - output: `[N, 1280, h, w]` (`ceil(H/32) x ceil(W/32)`, or the pooled `rows x cols`)
    pub fn forward(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let map = self.net.forward_features(frames);
        if self.pool_rows == 0 {
            map
        } else {
            adaptive_pool2d(map, [self.pool_rows, self.pool_cols], self.pool_max)
        }
    }

    /// Loads a lukemelas-layout EfficientNet(-Lite) checkpoint (its classifier is skipped).
    pub fn load(mut self, file: &WeightFile) -> Result<(Self, LoadReport), UnivlError> {
        let keys = KeyMap::lukemelas_efficientnet().with_ignored(r"^fc\.");
        let (net, report) = file.load_into(self.net, &keys, &LoadOptions::default())?;
        self.net = net;
        Ok((self, report))
    }
}

/// PVT v2 applied frame by frame, its last stage projected by AntMMF's `output_proj`.
#[derive(Module, Debug)]
pub struct PvtFrameEncoder<B: Backend> {
    /// The backbone (no classification head).
    pub pvt: PvtV2<B>,
    /// 1x1 convolution (with bias) from the last stage's width to `output_channels`.
    pub output_proj: Conv2d<B>,
}

impl<B: Backend> PvtFrameEncoder<B> {
    /// The per-frame grid: `output_proj` of the last stage's map.
    ///
    /// # Shapes
    /// - `frames`: `[N, 3, H, W]`
    /// - output: `[N, output_channels, h, w]` (the last stage's size, `ceil(H/32)` for four
    ///   stages)
    pub fn forward(&self, frames: Tensor<B, 4>) -> Result<Tensor<B, 4>, UnivlError> {
        // Stage maps are ceil(H/4), then halved (rounding up) per stage; a stage smaller than its
        // key/value reduction cannot be reduced (PyTorch fails there too).
        let [_, _, h, w] = frames.dims();
        let (mut sh, mut sw) = (h.div_ceil(4), w.div_ceil(4));
        for (i, stage) in self.pvt.stages.iter().enumerate() {
            if i > 0 {
                (sh, sw) = (sh.div_ceil(2), sw.div_ceil(2));
            }
            let sr = stage
                .blocks
                .first()
                .and_then(|b| b.attn.sr.as_ref())
                .map_or(1, |conv| conv.weight.dims()[2]);
            if sh < sr || sw < sr {
                return Err(UnivlError::Shape(format!(
                    "{h}x{w} frames are too small for the PVT encoder: stage {} is {sh}x{sw}, \
                     below its spatial reduction {sr}",
                    i + 1
                )));
            }
        }
        let last = self
            .pvt
            .forward_features(frames)
            .pop()
            .ok_or_else(|| UnivlError::Shape("the PVT backbone has no stage".into()))?;
        Ok(self.output_proj.forward(last))
    }

    /// Loads a whai362/PVT checkpoint (`patch_embed1`, `block1.*`; AntMMF's format) or a
    /// `transformers` `PvtV2Model` file into the backbone (the classification head is skipped;
    /// `output_proj` keeps its weights).
    pub fn load(mut self, file: &WeightFile) -> Result<(Self, LoadReport), UnivlError> {
        let hf = file
            .keys()
            .any(|k| k.starts_with("encoder.layers.") || k.starts_with("pvt_v2."));
        let keys = if hf {
            KeyMap::hf_pvt_v2()
        } else {
            KeyMap::pvt_v2()
        };
        let keys = keys.with_ignored(r"^head\.");
        let (pvt, report) = file.load_into(self.pvt, &keys, &LoadOptions::default())?;
        self.pvt = pvt;
        Ok((self, report))
    }
}

/// Adaptive average or max pooling to `[rows, cols]` (torch's `AdaptiveAvgPool2d` /
/// `AdaptiveMaxPool2d` bins: `floor(i * in / out) .. ceil((i + 1) * in / out)`).
///
/// # Shapes
/// - `x`: `[N, C, H, W]`
/// - output: `[N, C, rows, cols]`
pub fn adaptive_pool2d<B: Backend>(x: Tensor<B, 4>, size: [usize; 2], max: bool) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let [rows, cols] = size;
    let bin =
        |i: usize, input: usize, out: usize| (i * input / out, ((i + 1) * input).div_ceil(out));
    let mut cells = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        let (h0, h1) = bin(i, h, rows);
        for j in 0..cols {
            let (w0, w1) = bin(j, w, cols);
            let cell = x.clone().slice([0..n, 0..c, h0..h1, w0..w1]).reshape([
                n,
                c,
                (h1 - h0) * (w1 - w0),
            ]);
            cells.push(if max {
                cell.max_dim(2)
            } else {
                cell.mean_dim(2)
            });
        }
    }
    Tensor::cat(cells, 2).reshape([n, c, rows, cols])
}

/// Runs a per-frame backbone over `[B, T, 3, H, W]` and returns its grid channels last.
fn per_frame<B: Backend>(
    video: Tensor<B, 5>,
    f: impl FnOnce(Tensor<B, 4>) -> Result<Tensor<B, 4>, UnivlError>,
) -> Result<Tensor<B, 5>, UnivlError> {
    let [b, t, c, h, w] = video.dims();
    let maps = f(video.reshape([b * t, c, h, w]))?;
    let [_, d, gh, gw] = maps.dims();
    Ok(maps.reshape([b, t, d, gh, gw]).permute([0, 1, 3, 4, 2]))
}

impl<B: Backend> VisualBackbone<B> {
    /// Grid features of a batch of videos, channels last.
    ///
    /// # Shapes
    /// - `video`: `[batch, frames, 3, height, width]`
    /// - output: `[batch, T', h, w, out_dim]` (Swin VIOLET: `T' = frames`, `h = ceil(H/32)`;
    ///   torchvision: `T' = ceil(frames / patch_t)`; CLIP: `T' = frames`, `h = w = 1`; PVT:
    ///   `T' = frames`, `h = ceil(H/32)`, `out_dim = output_channels`; EfficientNet: `T' =
    ///   frames`, `h = ceil(H/32)` or the pooled rows, `out_dim = 1280`)
    pub fn grid(&self, video: Tensor<B, 5>) -> Result<Tensor<B, 5>, UnivlError> {
        match self {
            Self::Swin(swin) => {
                let video = video.permute([0, 2, 1, 3, 4]);
                Ok(swin.forward_features(video).norm)
            }
            Self::Clip(clip) => {
                let [b, t, c, h, w] = video.dims();
                if h != clip.image_size || w != clip.image_size {
                    return Err(UnivlError::Shape(format!(
                        "the CLIP visual encoder takes {0}x{0} frames, got {h}x{w}",
                        clip.image_size
                    )));
                }
                let frames = video.reshape([b * t, c, h, w]);
                let mut tokens = clip.vision.forward(frames, false).pooled;
                if let Some(proj) = &clip.proj {
                    tokens = proj.forward(tokens);
                }
                let d = tokens.dims()[1];
                Ok(tokens.reshape([b, t, 1, 1, d]))
            }
            Self::EfficientNet(net) => per_frame(video, |frames| Ok(net.forward(frames))),
            Self::Pvt(pvt) => per_frame(video, |frames| pvt.forward(frames)),
        }
    }
}

/// `img_fc`: `Linear(H, H) -> ReLU -> Linear(H, H)` (AntMMF `img_fc.0`, `img_fc.2`).
#[derive(Module, Debug)]
pub struct ImgFc<B: Backend> {
    /// First projection.
    pub fc1: Linear<B>,
    /// Second projection.
    pub fc2: Linear<B>,
}

impl<B: Backend> ImgFc<B> {
    /// # Shapes
    /// - `x`: `[..., hidden]`; output: the same shape
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        linear_rows(&self.fc2, relu(linear_rows(&self.fc1, x)))
    }
}

/// AntMMF's `img_encoder` module: the backbone plus `img_fc` (which AntMMF registers inside the
/// image encoder, so the MoCo video key encoder copies both).
#[derive(Module, Debug)]
pub struct VisualEncoder<B: Backend> {
    /// Per-frame grid features.
    pub backbone: VisualBackbone<B>,
    /// The L1 projection of clip tokens.
    pub img_fc: ImgFc<B>,
}

/// Builds the visual encoder of `config` and returns it with the backbone's output width.
pub(crate) fn init_visual<B: Backend>(
    config: &UnivlConfig,
    device: &B::Device,
) -> Result<(VisualEncoder<B>, usize), UnivlError> {
    let h = config.hidden_size;
    let (backbone, out_dim) = match &config.image_encoder {
        ImageEncoderConfig::VideoSwinEncoder(params) => {
            let swin = params.to_swin_config()?;
            let out = swin.out_dim();
            (VisualBackbone::Swin(swin.init(device)), out)
        }
        ImageEncoderConfig::VitImageEncoder(params) => {
            let clip = params.to_clip_config()?;
            let proj = params.is_proj.then(|| {
                LinearConfig::new(params.width, params.out_dim)
                    .with_bias(false)
                    .init(device)
            });
            (
                VisualBackbone::Clip(ClipFrameEncoder {
                    vision: clip.init(device),
                    proj,
                    image_size: params.input_resolution,
                }),
                params.out_dim(),
            )
        }
        ImageEncoderConfig::BatchEfficientNetImageEncoder(params) => {
            let net = params.to_efficientnet_config()?;
            let out = net.feature_dim();
            let [pool_rows, pool_cols] = params.output_grid()?.unwrap_or([0, 0]);
            (
                VisualBackbone::EfficientNet(EfficientNetFrameEncoder {
                    net: net.init(device),
                    pool_rows,
                    pool_cols,
                    pool_max: params.pool_type == PoolType::Max,
                }),
                out,
            )
        }
        ImageEncoderConfig::DetrBatchPVTImageEncoder(params) => {
            let pvt = params.to_pvt_config()?;
            let out = params.out_dim()?;
            let width = pvt.embed_dims.last().copied().unwrap_or(pvt.in_channels);
            (
                VisualBackbone::Pvt(PvtFrameEncoder {
                    pvt: pvt.init(device),
                    output_proj: Conv2dConfig::new([width, out], [1, 1]).init(device),
                }),
                out,
            )
        }
    };
    let encoder = VisualEncoder {
        backbone,
        img_fc: ImgFc {
            fc1: LinearConfig::new(h, h).init(device),
            fc2: LinearConfig::new(h, h).init(device),
        },
    };
    Ok((encoder, out_dim))
}

/// Nearest-neighbour resampling of a padding mask onto a `[T', h, w]` grid (torch's
/// `F.interpolate(mode="nearest")`: source index `floor(i * in / out)`).
///
/// # Shapes
/// - `mask`: `[batch, frames, height, width]`, true on padding
/// - output: `[batch, T', h, w]`
pub fn resize_mask_nearest<B: Backend>(
    mask: Tensor<B, 4, Bool>,
    size: [usize; 3],
) -> Tensor<B, 4, Bool> {
    let device = mask.device();
    let dims = mask.dims();
    let mut m: Tensor<B, 4, Int> = mask.int();
    for (axis, &out) in size.iter().enumerate() {
        let input = dims[axis + 1];
        if input == out {
            continue;
        }
        let index: Vec<i64> = (0..out).map(|i| (i * input / out) as i64).collect();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [out]), &device);
        m = m.select(axis + 1, index);
    }
    m.equal_elem(1)
}

/// Masked mean of each clip's frames and grid cells (`forward_img_encoder`'s clip feature).
///
/// The `T'` grid frames are split into `n_clips` consecutive groups. Cells marked as padding in
/// `grid_mask` are left out of the mean; a clip with no valid cell pools to zeros (AntMMF divides
/// by zero there).
///
/// # Shapes
/// - `grid`: `[batch, T', h, w, dim]`; `grid_mask`: `[batch, T', h, w]`, true on padding
/// - output: `[batch, n_clips, dim]`
pub fn pool_clips<B: Backend>(
    grid: Tensor<B, 5>,
    grid_mask: Option<Tensor<B, 4, Bool>>,
    n_clips: usize,
) -> Result<Tensor<B, 3>, UnivlError> {
    let [b, t, h, w, d] = grid.dims();
    if n_clips == 0 || !t.is_multiple_of(n_clips) {
        return Err(UnivlError::Shape(format!(
            "the visual encoder produced {t} frames, which do not split into {n_clips} clips \
             (frames = n_clips * num_frm, and a multiple of the temporal patch for torchvision Swin)"
        )));
    }
    let cells = (t / n_clips) * h * w;
    let g = grid.reshape([b, n_clips, cells, d]);
    Ok(match grid_mask {
        None => g.mean_dim(2).reshape([b, n_clips, d]),
        Some(mask) => {
            let keep = mask.bool_not().float().reshape([b, n_clips, cells, 1]);
            let count = keep.clone().sum_dim(2).clamp_min(1.0);
            (g * keep).sum_dim(2).div(count).reshape([b, n_clips, d])
        }
    })
}

/// What [`super::Univl::encode_video`] returns.
#[derive(Debug, Clone)]
pub struct VideoOutput<B: Backend> {
    /// Clip tokens (projected to `hidden_size`), the cross encoder's visual input `[B, C, H]`.
    pub clip_tokens: Tensor<B, 3>,
    /// L2-normalised `img_fc(clip_tokens)`, the L1 video embedding `[B, C, H]`.
    pub l1: Tensor<B, 3>,
}

/// Runs a visual encoder (query or key) and the shared `img_proj`.
pub(crate) fn encode_clips<B: Backend>(
    visual: &VisualEncoder<B>,
    img_proj: Option<Tensor<B, 2>>,
    video: Tensor<B, 5>,
    pixel_mask: Option<Tensor<B, 4, Bool>>,
    n_clips: usize,
) -> Result<VideoOutput<B>, UnivlError> {
    let [b, t, _, vh, vw] = video.dims();
    if let Some(mask) = &pixel_mask
        && mask.dims() != [b, t, vh, vw]
    {
        return Err(UnivlError::Shape(format!(
            "pixel mask {:?} does not match video [{b}, {t}, _, {vh}, {vw}]",
            mask.dims()
        )));
    }
    let grid = visual.backbone.grid(video)?;
    let [_, gt, gh, gw, _] = grid.dims();
    let grid_mask = pixel_mask.map(|m| resize_mask_nearest(m, [gt, gh, gw]));
    let mut clip_tokens = pool_clips(grid, grid_mask, n_clips)?;
    // AntMMF projects every grid cell (`einsum("bnchw,cj->bnjhw")`) before pooling; the mean is
    // linear, so projecting the pooled token is the same and cheaper.
    if let Some(proj) = img_proj {
        let [b, c, d] = clip_tokens.dims();
        let hidden = proj.dims()[1];
        clip_tokens = clip_tokens
            .reshape([b * c, d])
            .matmul(proj)
            .reshape([b, c, hidden]);
    }
    let l1 = l2_normalize(visual.img_fc.forward(clip_tokens.clone()), 2);
    Ok(VideoOutput { clip_tokens, l1 })
}
