//! One host-side dataset item ([`Sample`]) and the errors of building one ([`SampleError`]).
//!
//! A sample holds everything the batcher needs as plain vectors (no tensors): the transformed
//! frames in `[n_clips * num_frm, 3, H, W]` layout, the caption encodings, the target and the ids
//! the evaluation code needs. Building it is the expensive part (decoding, transforms) and runs in
//! the loader's worker threads; batching it into tensors is a copy.

use std::path::PathBuf;

use crate::annotations::AnnotationError;
use crate::media::MediaError;
use crate::text::CaptionEncoding;
use crate::transforms::TransformError;

/// The target of a classification / open-QA sample.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleLabel {
    /// One class index.
    Single(usize),
    /// Multi-hot vector over the dataset's classes (1.0 for each positive class).
    MultiHot(Vec<f32>),
}

/// One dataset item, ready to be batched.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index of the item in its dataset.
    pub index: usize,
    /// `clip_name` of the annotation.
    pub clip_name: String,
    /// Transformed frames, `frame_shape` layout (`[n_clips * num_frm, 3, H, W]`), row-major.
    pub frames: Vec<f32>,
    /// `[T, 3, H, W]` with `T = n_clips * num_frm`.
    pub frame_shape: [usize; 4],
    /// Number of clips (`train_ensemble_n_clips` / `test_ensembel_n_clips`).
    pub n_clips: usize,
    /// Frames per clip (`num_frm`).
    pub num_frm: usize,
    /// Per clip: `true` when its frames come from the media, `false` when zero-filled.
    pub clip_mask: Vec<bool>,
    /// The caption text that was encoded (question for open QA; empty for MC-QA).
    pub text: String,
    /// The caption encoding (masked and unmasked ids of one window).
    pub caption: CaptionEncoding,
    /// A caption of another video, unmasked (ITM), when `add_false_caption` is set.
    pub false_caption: Option<CaptionEncoding>,
    /// The classification target, when the annotation has one.
    pub label: Option<SampleLabel>,
    /// MC-QA: every option, unmasked, in annotation order.
    pub options: Option<Vec<CaptionEncoding>>,
    /// MC-QA: index of the right option, when the annotation has one.
    pub answer: Option<usize>,
    /// Retrieval: text id of the caption (distinct caption text).
    pub text_id: Option<usize>,
    /// Retrieval / pretraining: video id (distinct `clip_name`).
    pub video_id: Option<usize>,
    /// MC-QA: question id.
    pub qid: Option<String>,
    /// `retrieval_key`, else `sen_id`, as text.
    pub key: Option<String>,
}

impl Sample {
    /// Whether every clip was zero-filled (the media was missing or unreadable).
    pub fn is_media_missing(&self) -> bool {
        self.clip_mask.iter().all(|v| !v)
    }
}

/// Why one sample could not be built; the loader counts and skips such samples.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The index is past the end of the dataset.
    #[error("sample index {index} is out of range (dataset of {len} items)")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// Dataset length.
        len: usize,
    },
    /// The clip's media is missing or could not be decoded.
    #[error("clip {clip:?}: {source}")]
    Media {
        /// `clip_name` of the annotation.
        clip: String,
        /// The file or directory read.
        path: PathBuf,
        /// The media error (names the file).
        source: Box<MediaError>,
    },
    /// The frames could not be transformed.
    #[error("clip {clip:?} ({path}): frame transform failed: {source}")]
    Transform {
        /// `clip_name` of the annotation.
        clip: String,
        /// The media read.
        path: PathBuf,
        /// The transform error.
        source: TransformError,
    },
    /// The ASR transcript of an uncaptioned video is malformed.
    #[error("clip {clip:?}: {source}")]
    Asr {
        /// `clip_name` of the annotation.
        clip: String,
        /// The transcript error (names the file).
        source: Box<AnnotationError>,
    },
    /// A video without caption has no usable ASR transcript (or ASR is not configured).
    #[error("clip {clip:?} has no caption and {reason}")]
    NoCaption {
        /// `clip_name` of the annotation.
        clip: String,
        /// What is missing.
        reason: String,
    },
    /// Building the sample panicked (a bug); the loader caught it.
    #[error("sample {index}: building it panicked: {message}")]
    Panic {
        /// Dataset index.
        index: usize,
        /// The panic payload, when it is a string.
        message: String,
    },
    /// The sample was not ready within the loader's watchdog limit.
    #[error("sample {index}: not ready after {seconds:.0} s (worker stuck)")]
    Timeout {
        /// Dataset index.
        index: usize,
        /// The limit, seconds.
        seconds: f64,
    },
}

impl SampleError {
    /// Whether the error comes from the media (missing, undecodable or untransformable frames),
    /// the errors `allow_video_miss` turns into zero frames.
    pub fn is_media(&self) -> bool {
        matches!(self, Self::Media { .. } | Self::Transform { .. })
    }

    /// The file the error concerns, when there is one.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Self::Media { path, .. } => Some(path.clone()),
            Self::Transform { path, .. } => Some(path.clone()),
            Self::Asr { source, .. } => match source.as_ref() {
                AnnotationError::Asr { path, .. } | AnnotationError::Io { path, .. } => {
                    Some(path.clone())
                }
                _ => None,
            },
            _ => None,
        }
    }
}
