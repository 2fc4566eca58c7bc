//! Media loading: mirrors AntMMF's `VideoClipsDatabase` + `VideoReader`
//! (`antmmf/datasets/database/video_database.py`, `antmmf/utils/video_utils.py`).
//!
//! - [`sampling`]: `VideoReader.sample_frames` (ClipBERT-style sparse sampling) and the
//!   `[start, end]` window arithmetic of `read_frames_decord`;
//! - [`decode`]: FFmpeg decoding through video-rs' ffmpeg-next layer (AntMMF uses decord):
//!   sorted indices, one backward seek to a keyframe, forward decoding, swscale rgb24 output
//!   identical to the ffmpeg CLI's;
//! - [`source`]: what a `videos` entry can be: a video file, a keyframe directory
//!   (`read_frames_from_img_dir`), a single image (a 1-frame clip), or a video stored in an
//!   LMDB file keyed by clip stem (`MultiSourceLoader`).
//! - [`preview`]: the `frames` command's logic (indices, per-frame means, contact sheet).

pub mod decode;
pub mod preview;
pub mod sampling;
pub mod source;

use std::path::PathBuf;
use std::time::Duration;

pub use decode::{DecodeOptions, DecodeStats, RgbFrame, VideoDecoder, VideoInfo};
pub use preview::{FramesError, FramesReport, FramesRequest, frames_report};
pub use sampling::{FrameResample, FrameSampler, SampleMode, TimeWindow};
pub use source::{Clip, MediaSource, load_clip};

/// Errors raised while reading media; every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// FFmpeg could not open or probe the file (missing, empty, not a media file).
    #[error("{path}: cannot open as video: {source}")]
    Open {
        /// The file concerned.
        path: PathBuf,
        /// The FFmpeg error.
        source: video_rs::ffmpeg::Error,
    },
    /// The file opened but has no video stream (audio-only, data-only).
    #[error("{path}: no video stream")]
    NoVideoStream {
        /// The file concerned.
        path: PathBuf,
    },
    /// The video stream holds no decodable frame.
    #[error("{path}: the video stream has no frames")]
    NoFrames {
        /// The file concerned.
        path: PathBuf,
    },
    /// FFmpeg failed while seeking, decoding or converting frames.
    #[error("{path}: {what}: {source}")]
    Decode {
        /// The file concerned.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The FFmpeg error.
        source: video_rs::ffmpeg::Error,
    },
    /// Decoding went past its time limit (pathological or hanging input).
    #[error("{path}: decoding exceeded the time limit of {limit:?}")]
    Timeout {
        /// The file concerned.
        path: PathBuf,
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// Requested frame indices beyond the decoded stream.
    #[error("{path}: frame index {index} out of range (the video has {frame_count} frames)")]
    IndexOutOfRange {
        /// The file concerned.
        path: PathBuf,
        /// The offending index.
        index: usize,
        /// Frames in the video.
        frame_count: usize,
    },
    /// The stream ended (corrupt or truncated data) before these frames were decoded.
    #[error("{path}: frames {missing:?} could not be decoded (corrupt or truncated stream)")]
    MissingFrames {
        /// The file concerned.
        path: PathBuf,
        /// Frame indices that never came out of the decoder.
        missing: Vec<usize>,
    },
    /// An image (single image or keyframe) could not be decoded.
    #[error("{path}: cannot decode image: {source}")]
    Image {
        /// The file concerned.
        path: PathBuf,
        /// The image crate's error.
        source: image::ImageError,
    },
    /// A JPEG file ends before its end-of-image marker.
    #[error("{path}: truncated JPEG (no end-of-image marker)")]
    TruncatedImage {
        /// The file concerned.
        path: PathBuf,
    },
    /// A keyframe directory holds no image.
    #[error("{path}: keyframe directory has no .jpg/.jpeg/.png frames")]
    EmptyKeyframeDir {
        /// The directory concerned.
        path: PathBuf,
    },
    /// A keyframe file name has no frame number after its last `_`.
    #[error("{path}: keyframe file name has no frame number after the last '_'")]
    BadKeyframeName {
        /// The file concerned.
        path: PathBuf,
    },
    /// Frames of one clip have different sizes.
    #[error("{path}: frame is {got:?} (w, h) but the clip's first frame is {expected:?}")]
    FrameSizeMismatch {
        /// The file concerned.
        path: PathBuf,
        /// Size of the clip's first frame.
        expected: (u32, u32),
        /// Size of this frame.
        got: (u32, u32),
    },
    /// The frame has a zero or absurd size.
    #[error("{path}: unsupported frame size {width}x{height}")]
    BadFrameSize {
        /// The file concerned.
        path: PathBuf,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// An LMDB file could not be read, or has no entry for the clip.
    #[error("{path}: {message}")]
    Lmdb {
        /// The LMDB file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The contact sheet PNG could not be written.
    #[error("{path}: cannot write PNG: {source}")]
    WritePng {
        /// The file concerned.
        path: PathBuf,
        /// The image crate's error.
        source: image::ImageError,
    },
}
