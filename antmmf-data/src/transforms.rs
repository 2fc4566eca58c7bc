//! Frame transforms, as AntMMF's frame processors:
//!
//! - `pyvideo_transform` (`prj/base_vtp/roi_univl/univl/processors.py`), a wrapper of
//!   pytorchvideo's `create_video_transform(min_size=int(1.2 * crop), max_size=int(1.5 * crop))`:
//!   train = RandAugment (pytorchvideo's 14 ops, 2 layers, magnitude 9, probability 0.5,
//!   gaussian magnitude sampling with std 0.5) -> `/255` -> normalize -> random short-side
//!   scale in `[min_size, max_size]` (bilinear) -> random crop -> horizontal flip (p 0.5);
//!   eval = `/255` -> normalize -> short side `min_size` -> center crop.
//! - `custom_transforms` with `ImageLongsideScaleAndPad` and `GroupNormalize`
//!   (`antmmf/utils/image_ops.py`), used by the PVT / ResNet configs.
//!
//! One random draw per video, shared by all its frames (upstream transforms the whole
//! `[T, C, H, W]` tensor at once). Output is a contiguous `f32` buffer in `[T, 3, H, W]` layout.
//!
//! Numerics follow torch/torchvision: bilinear resizing is `F.interpolate(..., "bilinear",
//! align_corners=False)` without antialiasing, uint8 results round half to even, blends
//! truncate. Resize, crop, flip and normalization are fused into one pass over the crop
//! (normalizing before or after a bilinear resize differs only by float rounding).
//!
//! Upstream quirks kept on purpose, so that training sees the same augmentation distribution
//! as AntMMF's: RandAugment runs on uint8 frames, so `Solarize`'s threshold (`1 - level / 10`,
//! meant for [0, 1] images) inverts every non-zero pixel, and the affine ops' fill value 0.5
//! rounds to black. Upstream bugs not kept: `ImageLongsideScaleAndPad(pad=True)` crashes in
//! AntMMF (it reads an unset `self.max_size`); we pad right/bottom with zeros to
//! `max_size x max_size`. `GroupNormalize` skips the `/255` upstream when a whole video's
//! maximum is <= 1 (a black video); we always divide.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::{Rng, RngExt};
use serde::Deserialize;

use crate::media::RgbFrame;

/// ImageNet mean (torchvision / pytorchvideo default of AntMMF's configs).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// OpenAI CLIP mean.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP standard deviation.
pub const CLIP_STD: [f32; 3] = [0.268_629_6, 0.261_302_6, 0.275_777_1];

/// Errors of transform configuration and application.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The processor configuration is invalid.
    #[error("invalid frame processor config: {0}")]
    Config(String),
    /// The clip holds no frame.
    #[error("cannot transform a clip with no frames")]
    EmptyClip,
    /// Frames of one clip differ in size.
    #[error("frame {index} is {got:?} (w, h) but frame 0 is {expected:?}")]
    FrameSize {
        /// Offending frame.
        index: usize,
        /// Size of frame 0.
        expected: (u32, u32),
        /// Size of this frame.
        got: (u32, u32),
    },
    /// A frame's buffer does not hold `width * height * 3` bytes.
    #[error("frame {index} has {len} bytes, expected {expected}")]
    BadBuffer {
        /// Offending frame.
        index: usize,
        /// Its byte count.
        len: usize,
        /// `width * height * 3`.
        expected: usize,
    },
}

/// A transformed clip: `f32` values in `[T, 3, H, W]` order.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTensor {
    /// Contiguous values, `T * 3 * H * W` of them.
    pub data: Vec<f32>,
    /// `[T, 3, H, W]`.
    pub shape: [usize; 4],
}

impl VideoTensor {
    /// Moves the buffer into a Burn tensor of shape `[T, 3, H, W]`.
    pub fn into_tensor<B: Backend>(self, device: &B::Device) -> Tensor<B, 4> {
        Tensor::from_data(TensorData::new(self.data, self.shape), device)
    }

    /// Value at `(t, c, y, x)`.
    pub fn at(&self, t: usize, c: usize, y: usize, x: usize) -> f32 {
        let [_, ch, h, w] = self.shape;
        self.data[((t * ch + c) * h + y) * w + x]
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration (AntMMF's processor YAML: `type` + `params`).
// ---------------------------------------------------------------------------------------------

/// A frame processor entry of an AntMMF config (`train_frame_processor` / `test_frame_processor`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", content = "params")]
pub enum FrameProcessorConfig {
    /// `type: pyvideo_transform`.
    #[serde(rename = "pyvideo_transform")]
    PyVideo(PyVideoTransformConfig),
    /// `type: custom_transforms`.
    #[serde(rename = "custom_transforms")]
    Custom(CustomTransformsConfig),
}

/// `pyvideo_transform` params, with AntMMF's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PyVideoTransformConfig {
    /// `train` for the random pipeline; anything else (`val`, `test`) for the eval pipeline.
    pub mode: String,
    /// Dict key of the video (accepted for compatibility; clips are passed directly here).
    pub video_key: Option<String>,
    /// Temporal subsampling to this many frames (`UniformTemporalSubsample`); `None` keeps all.
    pub num_samples: Option<usize>,
    /// Per-channel mean (RGB, 0..1 scale).
    pub video_mean: [f32; 3],
    /// Per-channel std (RGB, 0..1 scale).
    pub video_std: [f32; 3],
    /// Output side; `min_size = int(1.2 * crop_size)`, `max_size = int(1.5 * crop_size)`.
    pub crop_size: usize,
    /// Probability of the horizontal flip (train).
    pub horizontal_flip_prob: f64,
    /// `default` (no augmentation) or `randaug`.
    pub aug_type: String,
    /// `custom_transforms`' list, left over when an AntMMF config sets `type: pyvideo_transform`
    /// over an included `custom_transforms` processor (its Video Swin configs do): AntMMF ignores
    /// it, and so does this, with a warning.
    pub transforms: Option<serde_json::Value>,
}

impl Default for PyVideoTransformConfig {
    fn default() -> Self {
        Self {
            mode: "train".into(),
            video_key: None,
            num_samples: None,
            video_mean: IMAGENET_MEAN,
            video_std: IMAGENET_STD,
            crop_size: 224,
            horizontal_flip_prob: 0.5,
            aug_type: "default".into(),
            transforms: None,
        }
    }
}

/// `custom_transforms` params.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTransformsConfig {
    /// Only `sequential` exists upstream.
    #[serde(default = "default_sequential")]
    pub mode: String,
    /// Transforms applied in order.
    pub transforms: Vec<CustomTransformConfig>,
}

fn default_sequential() -> String {
    "sequential".into()
}

/// One entry of `custom_transforms.transforms`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", content = "params")]
pub enum CustomTransformConfig {
    /// Scale so the long side is `max_size` (or a random multiple of 32 up to it), pad optionally.
    ImageLongsideScaleAndPad {
        /// Long side after scaling.
        max_size: usize,
        /// Draw the long side from `{224, 256, ..., <= max_size} + {max_size}`.
        #[serde(default)]
        random_scale: bool,
        /// Pad right/bottom with zeros to `max_size x max_size`.
        #[serde(default)]
        pad: bool,
    },
    /// `/255`, then `(x - mean) / std` per channel.
    GroupNormalize {
        /// Per-channel mean (3 values, or 1 repeated).
        mean: Vec<f32>,
        /// Per-channel std (3 values, or 1 repeated).
        std: Vec<f32>,
    },
}

// ---------------------------------------------------------------------------------------------
// The transforms.
// ---------------------------------------------------------------------------------------------

/// A ready-to-apply frame processor.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoTransform {
    /// pytorchvideo's `create_video_transform`.
    PyVideo(PyVideoTransform),
    /// `custom_transforms` (long-side scale/pad + normalize).
    Custom(CustomTransform),
}

impl VideoTransform {
    /// Builds the transform an AntMMF processor config describes.
    pub fn from_config(config: &FrameProcessorConfig) -> Result<Self, TransformError> {
        match config {
            FrameProcessorConfig::PyVideo(c) => PyVideoTransform::from_config(c).map(Self::PyVideo),
            FrameProcessorConfig::Custom(c) => CustomTransform::from_config(c).map(Self::Custom),
        }
    }

    /// Transforms one clip; all frames share one random draw.
    pub fn apply(
        &self,
        frames: &[RgbFrame],
        rng: &mut impl Rng,
    ) -> Result<VideoTensor, TransformError> {
        match self {
            Self::PyVideo(t) => t.apply(frames, rng),
            Self::Custom(t) => t.apply(frames, rng),
        }
    }
}

/// pytorchvideo's train/eval video transform.
#[derive(Debug, Clone, PartialEq)]
pub struct PyVideoTransform {
    /// Random pipeline (train) or deterministic one (eval).
    pub train: bool,
    /// Output side.
    pub crop_size: usize,
    /// Short side in eval; lower bound of the random short side in train.
    pub min_size: usize,
    /// Upper bound (inclusive) of the random short side in train.
    pub max_size: usize,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel std.
    pub std: [f32; 3],
    /// Flip probability (train).
    pub flip_prob: f64,
    /// RandAugment (train, `aug_type: randaug`).
    pub randaug: Option<RandAugment>,
    /// `UniformTemporalSubsample` size.
    pub num_samples: Option<usize>,
}

impl PyVideoTransform {
    /// From `pyvideo_transform` params (`min_size = int(1.2 * crop)`, `max_size = int(1.5 * crop)`).
    pub fn from_config(c: &PyVideoTransformConfig) -> Result<Self, TransformError> {
        if c.transforms.as_ref().is_some_and(|t| !t.is_null()) {
            log::warn!(
                "pyvideo_transform: ignoring the `transforms` list left over from custom_transforms (as AntMMF does)"
            );
        }
        let train = c.mode == "train";
        if !["train", "val", "test"].contains(&c.mode.as_str()) {
            return Err(TransformError::Config(format!(
                "pyvideo_transform mode {:?} (expected train, val or test)",
                c.mode
            )));
        }
        let randaug = match c.aug_type.as_str() {
            "default" => None,
            "randaug" => Some(RandAugment::default()),
            other => {
                return Err(TransformError::Config(format!(
                    "pyvideo_transform aug_type {other:?} is not supported (default, randaug)"
                )));
            }
        };
        if c.crop_size == 0 {
            return Err(TransformError::Config("crop_size must be positive".into()));
        }
        check_std(&c.video_std)?;
        Ok(Self {
            train,
            crop_size: c.crop_size,
            min_size: (c.crop_size as f64 * 1.2) as usize,
            max_size: (c.crop_size as f64 * 1.5) as usize,
            mean: c.video_mean,
            std: c.video_std,
            flip_prob: c.horizontal_flip_prob,
            randaug: if train { randaug } else { None },
            num_samples: c.num_samples,
        })
    }

    /// AntMMF's eval pipeline for `crop_size` with ImageNet statistics.
    pub fn eval(crop_size: usize) -> Self {
        Self {
            train: false,
            crop_size,
            min_size: (crop_size as f64 * 1.2) as usize,
            max_size: (crop_size as f64 * 1.5) as usize,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            flip_prob: 0.5,
            randaug: None,
            num_samples: None,
        }
    }

    /// AntMMF's train pipeline (`aug_type: randaug`) for `crop_size` with ImageNet statistics.
    pub fn train(crop_size: usize) -> Self {
        Self {
            train: true,
            randaug: Some(RandAugment::default()),
            ..Self::eval(crop_size)
        }
    }

    /// Transforms one clip.
    pub fn apply(
        &self,
        frames: &[RgbFrame],
        rng: &mut impl Rng,
    ) -> Result<VideoTensor, TransformError> {
        let (w, h) = check_frames(frames)?;
        let picked: Vec<&RgbFrame> = match self.num_samples {
            Some(n) => temporal_subsample(frames.len(), n)
                .into_iter()
                .map(|i| &frames[i])
                .collect(),
            None => frames.iter().collect(),
        };
        let augmented: Option<Vec<Vec<u8>>> = match &self.randaug {
            Some(ra) if self.train => {
                let mut owned: Vec<Vec<u8>> = picked.iter().map(|f| f.data.clone()).collect();
                ra.apply(&mut owned, w as usize, h as usize, rng);
                Some(owned)
            }
            _ => None,
        };
        let size = if self.train {
            rng.random_range(self.min_size..=self.max_size.max(self.min_size))
        } else {
            self.min_size
        };
        let (new_h, new_w) = short_side_size(h as usize, w as usize, size);
        let crop = self.crop_size;
        if crop > new_h || crop > new_w {
            return Err(TransformError::Config(format!(
                "crop {crop} larger than the scaled frame {new_w}x{new_h} (short side {size})"
            )));
        }
        let (top, left, flip) = if self.train {
            let top = rng.random_range(0..=new_h - crop);
            let left = rng.random_range(0..=new_w - crop);
            let flip = rng.random::<f64>() < self.flip_prob;
            (top, left, flip)
        } else {
            // torchvision CenterCrop: int(round((h - crop) / 2)), Python's round (half to even).
            let top = ((new_h - crop) as f64 / 2.0).round_ties_even() as usize;
            let left = ((new_w - crop) as f64 / 2.0).round_ties_even() as usize;
            (top, left, false)
        };
        let rows = bilinear_plan(h as usize, new_h, top, crop);
        let mut cols = bilinear_plan(w as usize, new_w, left, crop);
        if flip {
            cols.reverse();
        }
        let t_len = picked.len();
        let mut data = vec![0f32; t_len * 3 * crop * crop];
        for (t, frame) in picked.iter().enumerate() {
            let src: &[u8] = match &augmented {
                Some(a) => &a[t],
                None => &frame.data,
            };
            let out = &mut data[t * 3 * crop * crop..(t + 1) * 3 * crop * crop];
            resample_normalize(src, w as usize, &rows, &cols, &self.mean, &self.std, out);
        }
        Ok(VideoTensor {
            data,
            shape: [t_len, 3, crop, crop],
        })
    }
}

/// `custom_transforms`: `ImageLongsideScaleAndPad` and/or `GroupNormalize`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomTransform {
    /// Long-side scaling, when configured.
    pub longside: Option<LongsideScale>,
    /// `(mean, std)`, when configured.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

/// `ImageLongsideScaleAndPad` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LongsideScale {
    /// Candidate long sides (the last one is `max_size`).
    pub scales: Vec<usize>,
    /// Draw from `scales` (else use `max_size`).
    pub random_scale: bool,
    /// Pad to `max_size x max_size`.
    pub pad: bool,
    /// Configured long side.
    pub max_size: usize,
}

impl CustomTransform {
    /// From `custom_transforms` params.
    pub fn from_config(c: &CustomTransformsConfig) -> Result<Self, TransformError> {
        if c.mode != "sequential" {
            return Err(TransformError::Config(format!(
                "custom_transforms mode {:?} (only sequential)",
                c.mode
            )));
        }
        let mut longside = None;
        let mut normalize = None;
        for t in &c.transforms {
            match t {
                CustomTransformConfig::ImageLongsideScaleAndPad {
                    max_size,
                    random_scale,
                    pad,
                } => {
                    if normalize.is_some() {
                        return Err(TransformError::Config(
                            "ImageLongsideScaleAndPad must come before GroupNormalize".into(),
                        ));
                    }
                    if *max_size == 0 {
                        return Err(TransformError::Config("max_size must be positive".into()));
                    }
                    let mut scales: Vec<usize> = if *random_scale {
                        (7..25)
                            .map(|i| 32 * i)
                            .filter(|&s| s <= *max_size)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    if !scales.contains(max_size) {
                        scales.push(*max_size);
                    }
                    longside = Some(LongsideScale {
                        scales,
                        random_scale: *random_scale,
                        pad: *pad,
                        max_size: *max_size,
                    });
                }
                CustomTransformConfig::GroupNormalize { mean, std } => {
                    let m = three(mean, "mean")?;
                    let s = three(std, "std")?;
                    check_std(&s)?;
                    normalize = Some((m, s));
                }
            }
        }
        Ok(Self {
            longside,
            normalize,
        })
    }

    /// Transforms one clip.
    pub fn apply(
        &self,
        frames: &[RgbFrame],
        rng: &mut impl Rng,
    ) -> Result<VideoTensor, TransformError> {
        let (w, h) = check_frames(frames)?;
        let (w, h) = (w as usize, h as usize);
        let (out_h, out_w, content_h, content_w) = match &self.longside {
            Some(ls) => {
                let size = if ls.random_scale {
                    ls.scales[rng.random_range(0..ls.scales.len())]
                } else {
                    ls.max_size
                };
                let (nh, nw) = longside_size(h, w, size);
                if ls.pad {
                    (ls.max_size.max(nh), ls.max_size.max(nw), nh, nw)
                } else {
                    (nh, nw, nh, nw)
                }
            }
            None => (h, w, h, w),
        };
        let rows = bilinear_plan(h, content_h, 0, content_h);
        let cols = bilinear_plan(w, content_w, 0, content_w);
        let (mean, std, scale) = match self.normalize {
            Some((m, s)) => (m, s, 255.0f32),
            None => ([0.0; 3], [1.0; 3], 1.0),
        };
        let plane = out_h * out_w;
        let mut data = vec![0f32; frames.len() * 3 * plane];
        for (t, frame) in frames.iter().enumerate() {
            let out = &mut data[t * 3 * plane..(t + 1) * 3 * plane];
            for c in 0..3 {
                let pad_value = (0.0 / scale - mean[c]) / std[c];
                let dst = &mut out[c * plane..(c + 1) * plane];
                dst.fill(pad_value);
                for (y, r) in rows.iter().enumerate() {
                    for (x, q) in cols.iter().enumerate() {
                        // torchvision resizes uint8 tensors in float, then rounds back to uint8.
                        let v = bilinear_at(&frame.data, w, c, r, q)
                            .round_ties_even()
                            .clamp(0.0, 255.0);
                        dst[y * out_w + x] = (v / scale - mean[c]) / std[c];
                    }
                }
            }
        }
        Ok(VideoTensor {
            data,
            shape: [frames.len(), 3, out_h, out_w],
        })
    }
}

fn three(v: &[f32], what: &str) -> Result<[f32; 3], TransformError> {
    match v {
        [a] => Ok([*a; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(TransformError::Config(format!(
            "GroupNormalize {what} needs 1 or 3 values, got {}",
            v.len()
        ))),
    }
}

fn check_std(std: &[f32; 3]) -> Result<(), TransformError> {
    if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(TransformError::Config(format!(
            "std {std:?} must be positive"
        )));
    }
    Ok(())
}

/// Checks that frames are non-empty, equally sized and well-formed; returns `(w, h)`.
fn check_frames(frames: &[RgbFrame]) -> Result<(u32, u32), TransformError> {
    let first = frames.first().ok_or(TransformError::EmptyClip)?;
    let (w, h) = (first.width, first.height);
    for (index, f) in frames.iter().enumerate() {
        if (f.width, f.height) != (w, h) {
            return Err(TransformError::FrameSize {
                index,
                expected: (w, h),
                got: (f.width, f.height),
            });
        }
        let expected = w as usize * h as usize * 3;
        if f.data.len() != expected || expected == 0 {
            return Err(TransformError::BadBuffer {
                index,
                len: f.data.len(),
                expected,
            });
        }
    }
    Ok((w, h))
}

/// `UniformTemporalSubsample`: `linspace(0, T - 1, n)` truncated.
fn temporal_subsample(t: usize, n: usize) -> Vec<usize> {
    if n <= 1 {
        return vec![0; n];
    }
    let last = (t - 1) as f64;
    (0..n)
        .map(|i| ((i as f64 * last / (n - 1) as f64) as usize).min(t - 1))
        .collect()
}

/// pytorchvideo `short_side_scale`: the short side becomes `size`, the other
/// `floor(long / short * size)`. Returns `(h, w)`.
pub fn short_side_size(h: usize, w: usize, size: usize) -> (usize, usize) {
    if w < h {
        (((h as f64 / w as f64) * size as f64).floor() as usize, size)
    } else {
        (size, ((w as f64 / h as f64) * size as f64).floor() as usize)
    }
}

/// `ImageLongsideScaleAndPad.get_resize_size`: the long side becomes `size`. Returns `(h, w)`.
pub fn longside_size(h: usize, w: usize, size: usize) -> (usize, usize) {
    if h >= w {
        (
            size,
            ((size as f64 * (w as f64 / h as f64)) as usize).max(1),
        )
    } else {
        (
            ((size as f64 * (h as f64 / w as f64)) as usize).max(1),
            size,
        )
    }
}

/// One output coordinate of a bilinear resize: source taps and weights.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    l0: f32,
    l1: f32,
}

/// Taps for outputs `start..start + len` of a bilinear resize `in_len -> out_len`
/// (PyTorch's `align_corners=False`: `src = (dst + 0.5) * in / out - 0.5`, clamped at 0).
fn bilinear_plan(in_len: usize, out_len: usize, start: usize, len: usize) -> Vec<Tap> {
    let scale = in_len as f32 / out_len as f32;
    (start..start + len)
        .map(|d| {
            let src = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(in_len - 1);
            let i1 = if i0 < in_len - 1 { i0 + 1 } else { i0 };
            let l1 = src - i0 as f32;
            Tap {
                i0,
                i1,
                l0: 1.0 - l1,
                l1,
            }
        })
        .collect()
}

#[inline]
fn bilinear_at(src: &[u8], w: usize, c: usize, r: &Tap, q: &Tap) -> f32 {
    let p = |y: usize, x: usize| f32::from(src[(y * w + x) * 3 + c]);
    r.l0 * (q.l0 * p(r.i0, q.i0) + q.l1 * p(r.i0, q.i1))
        + r.l1 * (q.l0 * p(r.i1, q.i0) + q.l1 * p(r.i1, q.i1))
}

/// Bilinear resample of an HWC u8 frame at the given taps, then `(v / 255 - mean) / std`,
/// written as CHW.
fn resample_normalize(
    src: &[u8],
    w: usize,
    rows: &[Tap],
    cols: &[Tap],
    mean: &[f32; 3],
    std: &[f32; 3],
    out: &mut [f32],
) {
    let plane = rows.len() * cols.len();
    for c in 0..3 {
        let dst = &mut out[c * plane..(c + 1) * plane];
        let (m, s) = (mean[c], std[c]);
        for (y, r) in rows.iter().enumerate() {
            let line = &mut dst[y * cols.len()..(y + 1) * cols.len()];
            for (x, q) in cols.iter().enumerate() {
                line[x] = (bilinear_at(src, w, c, r, q) / 255.0 - m) / s;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RandAugment (pytorchvideo/transforms/rand_augment.py + augmentations.py).
// ---------------------------------------------------------------------------------------------

/// pytorchvideo's RandAugment operations, in its `_TRANSFORM_RANDAUG_MAX_PARAMS` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugOp {
    /// `adjust_brightness(1 +- 0.9 * level / 10)`.
    AdjustBrightness,
    /// `adjust_contrast(1 +- 0.9 * level / 10)`.
    AdjustContrast,
    /// `adjust_saturation(1 +- 0.9 * level / 10)`.
    AdjustSaturation,
    /// `adjust_sharpness(1 +- 0.9 * level / 10)`.
    AdjustSharpness,
    /// Per-channel min/max stretch.
    AutoContrast,
    /// Per-channel histogram equalization.
    Equalize,
    /// `255 - x`.
    Invert,
    /// Rotation by `+-30 * level / 10` degrees, bilinear.
    Rotate,
    /// Keep `4 - int(4 * level / 10)` bits.
    Posterize,
    /// Invert pixels `>= 1 - level / 10`.
    Solarize,
    /// Horizontal shear `+-0.3 * level / 10`.
    ShearX,
    /// Vertical shear `+-0.3 * level / 10`.
    ShearY,
    /// Horizontal shift `+-0.45 * level / 10` of the width.
    TranslateX,
    /// Vertical shift `+-0.45 * level / 10` of the height.
    TranslateY,
}

impl AugOp {
    /// All operations, in upstream order.
    pub const ALL: [AugOp; 14] = [
        AugOp::AdjustBrightness,
        AugOp::AdjustContrast,
        AugOp::AdjustSaturation,
        AugOp::AdjustSharpness,
        AugOp::AutoContrast,
        AugOp::Equalize,
        AugOp::Invert,
        AugOp::Rotate,
        AugOp::Posterize,
        AugOp::Solarize,
        AugOp::ShearX,
        AugOp::ShearY,
        AugOp::TranslateX,
        AugOp::TranslateY,
    ];
}

/// Upstream's `_AUGMENTATION_MAX_LEVEL`.
const MAX_LEVEL: f64 = 10.0;
/// Upstream's fill for geometric ops (`TRANSFORM_DEFAULT_HPARAS`), in uint8 units.
const AFFINE_FILL: f32 = 0.5;

/// RandAugment for video: `num_layers` distinct ops, each applied with probability `prob` at a
/// gaussian-sampled magnitude, identically to every frame.
#[derive(Debug, Clone, PartialEq)]
pub struct RandAugment {
    /// Mean magnitude (0..=10).
    pub magnitude: f64,
    /// Ops per video (drawn without replacement).
    pub num_layers: usize,
    /// Probability of applying each drawn op.
    pub prob: f64,
    /// Std of the gaussian magnitude sampling.
    pub sampling_std: f64,
}

impl Default for RandAugment {
    fn default() -> Self {
        Self {
            magnitude: 9.0,
            num_layers: 2,
            prob: 0.5,
            sampling_std: 0.5,
        }
    }
}

/// A drawn op with its argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugStep {
    /// The operation.
    pub op: AugOp,
    /// Its argument (factor, degrees, bits, threshold, shear or shift; unused for argless ops).
    pub arg: f64,
}

impl RandAugment {
    /// Draws the ops applied to one video (an empty list when none passes its coin flip).
    pub fn draw(&self, rng: &mut impl Rng) -> Vec<AugStep> {
        let mut pool: Vec<AugOp> = AugOp::ALL.to_vec();
        let mut steps = Vec::new();
        for _ in 0..self.num_layers.min(pool.len()) {
            let op = pool.remove(rng.random_range(0..pool.len()));
            // `if torch.rand(1) > prob: return video`.
            if rng.random::<f64>() > self.prob {
                continue;
            }
            let level =
                (self.magnitude + self.sampling_std * standard_normal(rng)).clamp(0.0, MAX_LEVEL);
            let frac = level / MAX_LEVEL;
            let mut negate = |m: f64| if rng.random::<f64>() > 0.5 { m } else { -m };
            let arg = match op {
                AugOp::AdjustBrightness
                | AugOp::AdjustContrast
                | AugOp::AdjustSaturation
                | AugOp::AdjustSharpness => 1.0 + negate(frac * 0.9),
                AugOp::Rotate => negate(frac * 30.0),
                AugOp::Posterize => 4.0 - (frac * 4.0).trunc(),
                AugOp::Solarize => 1.0 - frac,
                AugOp::ShearX | AugOp::ShearY => negate(frac * 0.3),
                AugOp::TranslateX | AugOp::TranslateY => negate(frac * 0.45),
                AugOp::AutoContrast | AugOp::Equalize | AugOp::Invert => 0.0,
            };
            steps.push(AugStep { op, arg });
        }
        steps
    }

    /// Augments HWC RGB u8 frames of size `w x h` in place, one draw for all of them.
    pub fn apply(&self, frames: &mut [Vec<u8>], w: usize, h: usize, rng: &mut impl Rng) {
        for step in self.draw(rng) {
            for f in frames.iter_mut() {
                apply_step(f, w, h, step);
            }
        }
    }
}

/// Standard normal draw (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Applies one op to one HWC RGB u8 frame.
pub fn apply_step(f: &mut [u8], w: usize, h: usize, step: AugStep) {
    let a = step.arg;
    match step.op {
        AugOp::AdjustBrightness => blend_with(f, a, |_, _| 0.0),
        AugOp::AdjustContrast => {
            let n = (f.len() / 3).max(1) as f64;
            let mean = (f.chunks_exact(3).map(|p| f64::from(gray(p))).sum::<f64>() / n) as f32;
            blend_with(f, a, |_, _| mean);
        }
        AugOp::AdjustSaturation => {
            let g: Vec<f32> = f.chunks_exact(3).map(|p| f32::from(gray(p))).collect();
            blend_with(f, a, |i, _| g[i / 3]);
        }
        AugOp::AdjustSharpness => {
            if w <= 2 || h <= 2 {
                return;
            }
            let blurred = blur_degenerate(f, w, h);
            blend_with(f, a, |i, _| f32::from(blurred[i]));
        }
        AugOp::AutoContrast => autocontrast(f),
        AugOp::Equalize => equalize(f),
        AugOp::Invert => f.iter_mut().for_each(|v| *v = 255 - *v),
        AugOp::Posterize => {
            let bits = a as i64;
            if bits < 8 {
                let mask: u8 = if bits <= 0 {
                    0
                } else {
                    (0xFFu16 << (8 - bits)) as u8
                };
                f.iter_mut().for_each(|v| *v &= mask);
            }
        }
        AugOp::Solarize => f.iter_mut().for_each(|v| {
            if f64::from(*v) >= a {
                *v = 255 - *v;
            }
        }),
        AugOp::Rotate => {
            // torchvision F.rotate: inverse map [cos, -sin, 0, sin, cos, 0] around the centre.
            let t = a.to_radians();
            let m = [t.cos(), -t.sin(), 0.0, t.sin(), t.cos(), 0.0];
            warp_affine(f, w, h, m);
        }
        AugOp::ShearX => warp_affine(f, w, h, [1.0, a, h as f64 * a / 2.0, 0.0, 1.0, 0.0]),
        AugOp::ShearY => warp_affine(f, w, h, [1.0, 0.0, 0.0, a, 1.0, w as f64 * a / 2.0]),
        AugOp::TranslateX => warp_affine(f, w, h, [1.0, 0.0, a * w as f64, 0.0, 1.0, 0.0]),
        AugOp::TranslateY => warp_affine(f, w, h, [1.0, 0.0, 0.0, 0.0, 1.0, a * h as f64]),
    }
}

/// torchvision `rgb_to_grayscale` on uint8: `(0.2989 r + 0.587 g + 0.114 b)` truncated.
fn gray(p: &[u8]) -> u8 {
    (0.2989f32 * f32::from(p[0]) + 0.587f32 * f32::from(p[1]) + 0.114f32 * f32::from(p[2])) as u8
}

/// torchvision `_blend`: `(ratio * x + (1 - ratio) * other).clamp(0, 255)` truncated to uint8.
fn blend_with(f: &mut [u8], ratio: f64, other: impl Fn(usize, u8) -> f32) {
    let r = ratio as f32;
    let r2 = (1.0 - ratio) as f32;
    for (i, v) in f.iter_mut().enumerate() {
        let o = other(i, *v);
        *v = (r * f32::from(*v) + r2 * o).clamp(0.0, 255.0) as u8;
    }
}

/// torchvision `_blurred_degenerate_image`: 3x3 kernel `[1 1 1; 1 5 1; 1 1 1] / 13` on the
/// interior (rounded half to even), borders kept.
fn blur_degenerate(f: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = f.to_vec();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for c in 0..3 {
                let mut acc = 0f32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let k = if dy == 1 && dx == 1 { 5.0 } else { 1.0 } / 13.0f32;
                        acc += k * f32::from(f[((y + dy - 1) * w + (x + dx - 1)) * 3 + c]);
                    }
                }
                out[(y * w + x) * 3 + c] = acc.round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// torchvision `autocontrast` on uint8, per channel.
fn autocontrast(f: &mut [u8]) {
    for c in 0..3 {
        let (mut lo, mut hi) = (255u8, 0u8);
        for p in f.chunks_exact(3) {
            lo = lo.min(p[c]);
            hi = hi.max(p[c]);
        }
        if hi == lo {
            continue;
        }
        let scale = 255.0f32 / (f32::from(hi) - f32::from(lo));
        let lo = f32::from(lo);
        for p in f.chunks_exact_mut(3) {
            p[c] = ((f32::from(p[c]) - lo) * scale).clamp(0.0, 255.0) as u8;
        }
    }
}

/// torchvision `equalize` on uint8, per channel (PIL's algorithm).
fn equalize(f: &mut [u8]) {
    for c in 0..3 {
        let mut hist = [0u64; 256];
        for p in f.chunks_exact(3) {
            hist[p[c] as usize] += 1;
        }
        let nonzero: Vec<u64> = hist.iter().copied().filter(|&n| n != 0).collect();
        let step = nonzero[..nonzero.len().saturating_sub(1)]
            .iter()
            .sum::<u64>()
            / 255;
        if step == 0 {
            continue;
        }
        let mut lut = [0u8; 256];
        let mut cum = 0u64;
        for (i, n) in hist.iter().enumerate() {
            // lut = pad((cumsum + step // 2) // step, [1, 0])[:-1].clamp(0, 255)
            if i + 1 < 256 {
                cum += n;
                lut[i + 1] = ((cum + step / 2) / step).min(255) as u8;
            }
        }
        for p in f.chunks_exact_mut(3) {
            p[c] = lut[p[c] as usize];
        }
    }
}

/// torchvision `F_t.affine`/`rotate` with bilinear sampling: `m` maps output pixel centres
/// (relative to the image centre) to input ones; outside pixels blend towards the fill value.
fn warp_affine(f: &mut [u8], w: usize, h: usize, m: [f64; 6]) {
    let m = m.map(|v| v as f32);
    let (wf, hf) = (w as f32, h as f32);
    let src = f.to_vec();
    for yo in 0..h {
        let y = -hf * 0.5 + 0.5 + yo as f32;
        for xo in 0..w {
            let x = -wf * 0.5 + 0.5 + xo as f32;
            // affine grid (normalized by w/2, h/2), then grid_sample's unnormalization.
            let gx = (m[0] * x + m[1] * y + m[2]) / (0.5 * wf);
            let gy = (m[3] * x + m[4] * y + m[5]) / (0.5 * hf);
            let ix = ((gx + 1.0) * wf - 1.0) / 2.0;
            let iy = ((gy + 1.0) * hf - 1.0) / 2.0;
            let (x0, y0) = (ix.floor(), iy.floor());
            let (tx, ty) = (ix - x0, iy - y0);
            let mut acc = [0f32; 4];
            for (dy, wy) in [(0.0f32, 1.0 - ty), (1.0, ty)] {
                for (dx, wx) in [(0.0f32, 1.0 - tx), (1.0, tx)] {
                    let (sx, sy) = (x0 + dx, y0 + dy);
                    if sx < 0.0 || sy < 0.0 || sx >= wf || sy >= hf {
                        continue;
                    }
                    let k = ((sy as usize) * w + sx as usize) * 3;
                    let wgt = wx * wy;
                    acc[0] += wgt * f32::from(src[k]);
                    acc[1] += wgt * f32::from(src[k + 1]);
                    acc[2] += wgt * f32::from(src[k + 2]);
                    acc[3] += wgt;
                }
            }
            let mask = acc[3];
            let k = (yo * w + xo) * 3;
            for c in 0..3 {
                let v = acc[c] * mask + (1.0 - mask) * AFFINE_FILL;
                f[k + c] = v.round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbFrame {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&f(x, y));
            }
        }
        RgbFrame {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn sizes_follow_pytorchvideo_and_antmmf() {
        // 640x272 -> short side 268: w = floor(640 / 272 * 268) = 630.
        assert_eq!(short_side_size(272, 640, 268), (268, 630));
        assert_eq!(short_side_size(640, 272, 268), (630, 268));
        // Long side 448 for a 640x272 frame: h = int(448 * 272 / 640) = 190.
        assert_eq!(longside_size(272, 640, 448), (190, 448));
        assert_eq!(temporal_subsample(10, 4), vec![0, 3, 6, 9]);
        let t = PyVideoTransform::from_config(&PyVideoTransformConfig::default()).unwrap();
        assert_eq!((t.min_size, t.max_size, t.crop_size), (268, 336, 224));
    }

    #[test]
    fn bilinear_matches_pytorch_half_pixel_rule() {
        // 4 -> 8: src = (d + 0.5) / 2 - 0.5 -> -0.25 (clamped 0), 0.25, 0.75, ... 3.25 (edge).
        let p = bilinear_plan(4, 8, 0, 8);
        assert_eq!((p[0].i0, p[0].i1, p[0].l1), (0, 1, 0.0));
        assert_eq!((p[1].i0, p[1].i1, p[1].l1), (0, 1, 0.25));
        assert_eq!((p[7].i0, p[7].i1), (3, 3));
    }

    #[test]
    fn randaug_ops_hand_checked() {
        let px = |v: [u8; 3]| v.to_vec();
        let mut f = px([10, 200, 255]);
        apply_step(
            &mut f,
            1,
            1,
            AugStep {
                op: AugOp::Invert,
                arg: 0.0,
            },
        );
        assert_eq!(f, vec![245, 55, 0]);
        let mut f = px([0b1011_0110, 255, 3]);
        apply_step(
            &mut f,
            1,
            1,
            AugStep {
                op: AugOp::Posterize,
                arg: 1.0,
            },
        );
        assert_eq!(f, vec![0b1000_0000, 128, 0]);
        // Solarize on uint8 with threshold 0.1: every non-zero value is inverted.
        let mut f = px([0, 1, 200]);
        apply_step(
            &mut f,
            1,
            1,
            AugStep {
                op: AugOp::Solarize,
                arg: 0.1,
            },
        );
        assert_eq!(f, vec![0, 254, 55]);
        // Brightness 1.5: 100 -> 150, 200 -> 255 (clamped), 3 -> 4 (4.5 truncated).
        let mut f = px([100, 200, 3]);
        apply_step(
            &mut f,
            1,
            1,
            AugStep {
                op: AugOp::AdjustBrightness,
                arg: 1.5,
            },
        );
        assert_eq!(f, vec![150, 255, 4]);
        // Saturation 0: grey = int(0.2989*100 + 0.587*50 + 0.114*200) = int(82.04) = 82.
        let mut f = px([100, 50, 200]);
        apply_step(
            &mut f,
            1,
            1,
            AugStep {
                op: AugOp::AdjustSaturation,
                arg: 0.0,
            },
        );
        assert_eq!(f, vec![82, 82, 82]);
        // AutoContrast stretches [50, 150] to [0, 255].
        let mut f = [50u8, 7, 7, 100, 7, 7, 150, 7, 7].to_vec();
        apply_step(
            &mut f,
            3,
            1,
            AugStep {
                op: AugOp::AutoContrast,
                arg: 0.0,
            },
        );
        assert_eq!(f, vec![0, 7, 7, 127, 7, 7, 255, 7, 7]);
        // Translate by exactly one pixel to the right (inverse map x -> x - 1 ... shift of -1/w).
        let mut f = [10u8, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40].to_vec();
        apply_step(
            &mut f,
            4,
            1,
            AugStep {
                op: AugOp::TranslateX,
                arg: -0.25,
            },
        );
        assert_eq!(f, vec![0, 0, 0, 10, 10, 10, 20, 20, 20, 30, 30, 30]);
        // Rotation by 0 is the identity.
        let orig: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let mut f = orig.clone();
        apply_step(
            &mut f,
            5,
            4,
            AugStep {
                op: AugOp::Rotate,
                arg: 0.0,
            },
        );
        assert_eq!(f, orig);
    }

    #[test]
    fn randaug_draws_two_distinct_ops_half_the_time() {
        let ra = RandAugment::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut applied, n) = (0usize, 4000);
        for _ in 0..n {
            let steps = ra.draw(&mut rng);
            assert!(steps.len() <= 2);
            if let [a, b] = steps.as_slice() {
                assert_ne!(a.op, b.op);
            }
            for s in &steps {
                match s.op {
                    AugOp::AdjustBrightness
                    | AugOp::AdjustContrast
                    | AugOp::AdjustSaturation
                    | AugOp::AdjustSharpness => {
                        // 1 +- 0.9 * level / 10 with level ~ N(9, 0.5) clamped to [0, 10].
                        assert!(
                            (0.099..=1.901).contains(&s.arg) && (s.arg - 1.0).abs() > 0.5,
                            "{s:?}"
                        );
                    }
                    AugOp::Rotate => assert!(s.arg.abs() <= 30.0 && s.arg.abs() > 18.0, "{s:?}"),
                    AugOp::Posterize => assert!([0.0, 1.0, 2.0].contains(&s.arg), "{s:?}"),
                    AugOp::Solarize => assert!((0.0..=0.4).contains(&s.arg), "{s:?}"),
                    AugOp::ShearX | AugOp::ShearY => assert!(s.arg.abs() <= 0.3),
                    AugOp::TranslateX | AugOp::TranslateY => assert!(s.arg.abs() <= 0.45),
                    _ => {}
                }
            }
            applied += steps.len();
        }
        // Each of the 2 layers applies with probability 0.5: one op per video on average.
        let mean = applied as f64 / n as f64;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
    }

    #[test]
    fn equalize_matches_torchvision_lut() {
        // Channel 0 histogram: value 0 x2, 100 x1, 200 x1 -> nonzero [2, 1, 1],
        // step = (2 + 1) // 255 = 0 -> unchanged.
        let mut f = [0u8, 0, 0, 0, 0, 0, 100, 0, 0, 200, 0, 0].to_vec();
        equalize(&mut f);
        assert_eq!(f[..3], [0, 0, 0]);
        assert_eq!(f[6], 100);
        // 600 pixels: 300 at 10, 300 at 20 -> step = 300 // 255 = 1;
        // lut[20] = (cumsum[19] + 0) // 1 = 300 -> clamp 255; lut[10] = cumsum[9] = 0.
        let mut f: Vec<u8> = (0..600)
            .flat_map(|i| [if i < 300 { 10 } else { 20 }, 0, 0])
            .collect();
        equalize(&mut f);
        assert_eq!((f[0], f[300 * 3]), (0, 255));
    }

    #[test]
    fn eval_crop_of_a_gradient_is_hand_computable() {
        // 256x128 frame with R = x, G = y, B = 128: short side 128 -> 268, width floor(2 * 268) = 536;
        // center crop top = round(44 / 2) = 22, left = round(312 / 2) = 156.
        let f = frame(256, 128, |x, y| [x as u8, y as u8, 128]);
        let t = PyVideoTransform::eval(224);
        let out = t
            .apply(std::slice::from_ref(&f), &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap();
        assert_eq!(out.shape, [1, 3, 224, 224]);
        // Output (0, 0) samples resized (22, 156): src_x = 156.5 * 256 / 536 - 0.5 = 74.246268...
        let src_x = 156.5f64 * 256.0 / 536.0 - 0.5;
        let want_r = (src_x / 255.0 - 0.485) / 0.229;
        assert!((f64::from(out.at(0, 0, 0, 0)) - want_r).abs() < 1e-4);
        // src_y = 22.5 * 128 / 268 - 0.5 = 10.246268...
        let src_y = 22.5f64 * 128.0 / 268.0 - 0.5;
        let want_g = (src_y / 255.0 - 0.456) / 0.224;
        assert!((f64::from(out.at(0, 1, 0, 0)) - want_g).abs() < 1e-4);
        let want_b = (128.0 / 255.0 - 0.406) / 0.225;
        assert!((f64::from(out.at(0, 2, 100, 100)) - want_b).abs() < 1e-5);
    }

    #[test]
    fn custom_transforms_scale_pad_and_normalize() {
        let cfg: CustomTransformsConfig = serde_json::from_value(serde_json::json!({
            "mode": "sequential",
            "transforms": [
                {"type": "ImageLongsideScaleAndPad", "params": {"max_size": 8, "random_scale": false, "pad": true}},
                {"type": "GroupNormalize", "params": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
            ]
        }))
        .unwrap();
        let t = CustomTransform::from_config(&cfg).unwrap();
        let f = frame(4, 2, |_, _| [255, 0, 51]);
        let out = t.apply(&[f], &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        // 4x2 -> long side 8: 8x4, padded to 8x8.
        assert_eq!(out.shape, [1, 3, 8, 8]);
        assert_eq!(out.at(0, 0, 0, 0), 1.0); // (255/255 - 0.5) / 0.5
        assert_eq!(out.at(0, 1, 3, 7), -1.0);
        assert!((out.at(0, 2, 0, 0) - (-0.6)).abs() < 1e-6); // (0.2 - 0.5) / 0.5
        assert_eq!(out.at(0, 0, 4, 0), -1.0); // padding row: (0 - 0.5) / 0.5
        // Random long sides come from {224, 256, ..., 448}.
        let t = CustomTransform::from_config(&CustomTransformsConfig {
            mode: "sequential".into(),
            transforms: vec![CustomTransformConfig::ImageLongsideScaleAndPad {
                max_size: 448,
                random_scale: true,
                pad: false,
            }],
        })
        .unwrap();
        let ls = t.longside.unwrap();
        assert_eq!(ls.scales, vec![224, 256, 288, 320, 352, 384, 416, 448]);
    }

    #[test]
    fn processor_configs_deserialize() {
        let c: FrameProcessorConfig = serde_json::from_value(serde_json::json!({
            "type": "pyvideo_transform",
            "params": {"mode": "val", "crop_size": 224, "aug_type": "randaug"}
        }))
        .unwrap();
        let t = VideoTransform::from_config(&c).unwrap();
        let VideoTransform::PyVideo(p) = t else {
            panic!("expected pyvideo")
        };
        assert!(!p.train && p.randaug.is_none());
        let bad = serde_json::from_value::<FrameProcessorConfig>(serde_json::json!({
            "type": "pyvideo_transform", "params": {"crop_sise": 224}
        }));
        assert!(bad.is_err());
        // AntMMF's Video Swin configs leave custom_transforms' list under pyvideo_transform.
        let leftover = serde_json::from_value::<FrameProcessorConfig>(serde_json::json!({
            "type": "pyvideo_transform",
            "params": {"mode": "val", "crop_size": 224, "transforms": [{"type": "GroupNormalize"}]}
        }))
        .unwrap();
        let FrameProcessorConfig::PyVideo(leftover) = leftover else {
            panic!("pyvideo_transform expected");
        };
        assert!(!PyVideoTransform::from_config(&leftover).unwrap().train);
        let c = PyVideoTransformConfig {
            aug_type: "augmix".into(),
            ..Default::default()
        };
        assert!(matches!(
            PyVideoTransform::from_config(&c),
            Err(TransformError::Config(_))
        ));
    }
}
