//! The logic of `antmmf-data frames VIDEO --num-frames 8 --mode {train,test} [--start S --end E]
//! [--seed N] [--json] [--png OUT.png]`: sample a clip exactly as AntMMF's dataset would
//! (`VideoClipsDatabase.get` -> `read_frames_decord` -> frame processor), report what was read,
//! and optionally save a contact sheet of the transformed frames.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::MediaError;
use super::decode::DecodeOptions;
use super::sampling::{FrameSampler, SampleMode, TimeWindow};
use super::source::{MediaSource, load_clip};
use crate::transforms::{PyVideoTransform, TransformError, VideoTensor};

/// Errors of the `frames` command.
#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    /// Reading the media failed.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// Transforming the frames failed.
    #[error("{path}: {source}")]
    Transform {
        /// The media file.
        path: PathBuf,
        /// The transform error.
        source: TransformError,
    },
}

/// What to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct FramesRequest {
    /// Frames to sample (`--num-frames`).
    pub num_frames: usize,
    /// `train` (random frame per segment + train transform) or `test` (middle frame + eval).
    pub mode: SampleMode,
    /// `--start`/`--end` window in seconds.
    pub window: Option<TimeWindow>,
    /// Seed of the sampling and transform draws.
    pub seed: u64,
    /// Side of the transformed frames.
    pub crop_size: usize,
    /// Where to write the contact sheet PNG, if anywhere.
    pub png: Option<PathBuf>,
    /// Decoder options (time limit).
    pub decode: DecodeOptions,
}

impl Default for FramesRequest {
    fn default() -> Self {
        Self {
            num_frames: 8,
            mode: SampleMode::Eval,
            window: None,
            seed: 0,
            crop_size: 224,
            png: None,
            decode: DecodeOptions::default(),
        }
    }
}

/// What the `frames` command prints (`--json` serializes it as is).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FramesReport {
    /// The media read.
    pub source: PathBuf,
    /// Sampled frame indices.
    pub indices: Vec<usize>,
    /// Per-frame mean of R, G, B of the decoded frames (0..255).
    pub channel_means: Vec<[f64; 3]>,
    /// Source frame rate (0 when unknown).
    pub fps: f64,
    /// Frames in the source.
    pub frame_count: usize,
    /// Decoded frame width.
    pub width: u32,
    /// Decoded frame height.
    pub height: u32,
    /// Shape of the transformed clip, `[T, 3, H, W]`.
    pub tensor_shape: [usize; 4],
    /// Where the contact sheet went.
    pub png: Option<PathBuf>,
}

/// Samples, decodes and transforms one clip as the dataset would; writes the contact sheet.
pub fn frames_report(path: &Path, req: &FramesRequest) -> Result<FramesReport, FramesError> {
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let source = MediaSource::detect(path);
    let sampler = FrameSampler::new(req.num_frames, req.mode);
    let clip = load_clip(&source, &sampler, req.window, req.decode, &mut rng)?;
    let transform = match req.mode {
        SampleMode::Train => PyVideoTransform::train(req.crop_size),
        SampleMode::Eval => PyVideoTransform::eval(req.crop_size),
    };
    let tensor =
        transform
            .apply(&clip.frames, &mut rng)
            .map_err(|source| FramesError::Transform {
                path: path.to_path_buf(),
                source,
            })?;
    if let Some(png) = &req.png {
        write_contact_sheet(&tensor, &transform, png)?;
    }
    let (width, height) = clip
        .frames
        .first()
        .map(|f| (f.width, f.height))
        .unwrap_or((0, 0));
    Ok(FramesReport {
        source: clip.source,
        indices: clip.indices,
        channel_means: clip.frames.iter().map(|f| f.mean_rgb()).collect(),
        fps: clip.fps,
        frame_count: clip.frame_count,
        width,
        height,
        tensor_shape: tensor.shape,
        png: req.png.clone(),
    })
}

/// Writes the transformed frames side by side (up to 8 per row), un-normalized to RGB.
pub fn write_contact_sheet(
    tensor: &VideoTensor,
    transform: &PyVideoTransform,
    png: &Path,
) -> Result<(), MediaError> {
    let [t, _, h, w] = tensor.shape;
    let cols = t.clamp(1, 8);
    let rows = t.div_ceil(cols).max(1);
    let mut sheet = image::RgbImage::new((cols * w) as u32, (rows * h) as u32);
    for k in 0..t {
        let (ox, oy) = ((k % cols) * w, (k / cols) * h);
        for y in 0..h {
            for x in 0..w {
                let px = std::array::from_fn(|c| {
                    let v = tensor.at(k, c, y, x) * transform.std[c] + transform.mean[c];
                    (v * 255.0).round().clamp(0.0, 255.0) as u8
                });
                sheet.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(px));
            }
        }
    }
    sheet.save(png).map_err(|source| MediaError::WritePng {
        path: png.to_path_buf(),
        source,
    })
}
