//! The UniVL visual side: a backbone producing per-frame grid features, masked mean pooling of
//! each clip's frames and grid cells into one clip token, and `img_fc` for the L1 embedding.
//!
//! Mirrors `UnivlVideoBase.forward_img_encoder` (`prj/base_vtp/roi_univl/univl/model/
//! univl_video_base.py`) over AntMMF's `VideoSwinEncoder` (`antmmf/modules/encoders/
//! visual_encoder.py`: the whole `[T, H, W]` video through one Swin, grid `[B, T', C, h, w]`) and
//! `VitImageEncoder` (`prj/.../clip_visual_encoder.py`: CLIP ViT per frame, one 1x1 "grid" cell).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::clip::ClipVision;
use crate::losses::l2_normalize;
use crate::video_swin::VideoSwin;

use super::UnivlError;
use super::config::{ImageEncoderConfig, UnivlConfig};

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
}

impl<B: Backend> VisualBackbone<B> {
    /// Grid features of a batch of videos, channels last.
    ///
    /// # Shapes
    /// - `video`: `[batch, frames, 3, height, width]`
    /// - output: `[batch, T', h, w, out_dim]` (Swin VIOLET: `T' = frames`, `h = ceil(H/32)`;
    ///   torchvision: `T' = ceil(frames / patch_t)`; CLIP: `T' = frames`, `h = w = 1`)
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
        self.fc2.forward(relu(self.fc1.forward(x)))
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
