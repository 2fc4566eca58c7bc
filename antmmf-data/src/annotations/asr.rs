//! ASR transcripts as captions of uncaptioned pretraining videos, mirroring
//! `ImageClipMixDatabase` (`_load_video_asrs`, `_get_text`, `_get_single_transcript`) of
//! `prj/base_vtp/roi_univl/univl/pretrain_video_text/dataset.py`, itself after UniVL's HowTo100M
//! loader.
//!
//! A video item whose caption is empty (or null) takes its caption from
//! `<asrs_dir>/<clip stem>` (`video9771.mp4` -> `asr_files/video9771`, no extension), a JSON
//! object `{"start": [s...], "end": [s...], "text": [str...]}` of aligned segments.
//!
//! Sampling ([`AsrSampler::sample`]): `n_pairs` (`train_n_pairs` / `test_n_pairs`) segment indices
//! are drawn (without replacement when `n_pairs <= #segments`; otherwise all segments plus
//! `n_pairs - #segments` drawn with replacement; `-1` takes every segment in order), then
//! shuffled. Each drawn segment is grown with its neighbours while its text is shorter than
//! `min_words` characters or its span shorter than `min_time` seconds (when `with_long_context`):
//! with neighbours on both sides, the side giving the shorter span is added (with
//! `min_time == 0`: the shorter text; ties go to the previous segment); at an edge, the other side.
//! The grown text (concatenated without separator), its first start and last end form one
//! caption; repeated texts are dropped.
//!
//! AntMMF returns no caption when the transcript file is missing, and swallows malformed files
//! with a warning. Here a missing file gives `Ok(None)` and a malformed one a typed error (the
//! dataset decides whether to skip and count it).

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use serde::Deserialize;

use super::AnnotationError;

/// `asr_sampler_config` of a pretraining dataset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsrSamplerConfig {
    /// Grow segments with their neighbours up to `min_words` / `min_time`.
    #[serde(default = "default_true")]
    pub with_long_context: bool,
    /// Segments drawn per training video (-1: all).
    #[serde(default = "default_n_pairs")]
    pub train_n_pairs: i64,
    /// Segments drawn per validation/test video (-1: all).
    #[serde(default = "default_n_pairs")]
    pub test_n_pairs: i64,
    /// Minimum caption length in characters.
    #[serde(default)]
    pub min_words: usize,
    /// Minimum caption span in seconds.
    #[serde(default = "default_min_time")]
    pub min_time: f64,
}

fn default_true() -> bool {
    true
}

fn default_n_pairs() -> i64 {
    3
}

fn default_min_time() -> f64 {
    10.0
}

impl Default for AsrSamplerConfig {
    fn default() -> Self {
        Self {
            with_long_context: true,
            train_n_pairs: 3,
            test_n_pairs: 3,
            min_words: 0,
            min_time: 10.0,
        }
    }
}

/// The aligned segments of one video's transcript.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AsrTranscript {
    /// Segment starts in seconds.
    pub start: Vec<f64>,
    /// Segment ends in seconds.
    pub end: Vec<f64>,
    /// Segment texts.
    pub text: Vec<String>,
}

/// A caption made of one or more consecutive ASR segments.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrCaption {
    /// The concatenated text.
    pub caption: String,
    /// Start of the first segment, seconds.
    pub start: f64,
    /// End of the last segment, seconds.
    pub end: f64,
}

impl AsrTranscript {
    /// `<asrs_dir>/<file stem of clip_name>`.
    pub fn path_for_clip(asrs_dir: &Path, clip_name: &str) -> PathBuf {
        let base = Path::new(clip_name)
            .file_stem()
            .map(|s| s.to_os_string())
            .unwrap_or_default();
        asrs_dir.join(base)
    }

    /// Reads a transcript file and checks that its three lists have the same length.
    pub fn load(path: &Path) -> Result<Self, AnnotationError> {
        let asr = |message: String| AnnotationError::Asr {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| asr(e.to_string()))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| asr("not valid UTF-8".into()))?;
        let mut de = serde_json::Deserializer::from_str(text);
        let t: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let key = e.path().to_string();
            asr(format!("key `{key}`: {}", e.into_inner()))
        })?;
        de.end().map_err(|e| asr(e.to_string()))?;
        if t.start.len() != t.text.len() || t.end.len() != t.text.len() {
            return Err(asr(format!(
                "`start`, `end` and `text` differ in length ({}, {}, {})",
                t.start.len(),
                t.end.len(),
                t.text.len()
            )));
        }
        Ok(t)
    }

    /// The transcript of `clip_name`, `None` when it has no file.
    pub fn load_for_clip(
        asrs_dir: &Path,
        clip_name: &str,
    ) -> Result<Option<Self>, AnnotationError> {
        let path = Self::path_for_clip(asrs_dir, clip_name);
        if !path.is_file() {
            return Ok(None);
        }
        Self::load(&path).map(Some)
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether there is no segment.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Draws ASR captions for one split.
#[derive(Debug, Clone)]
pub struct AsrSampler {
    config: AsrSamplerConfig,
    n_pairs: i64,
}

impl AsrSampler {
    /// A sampler with `train_n_pairs` (training) or `test_n_pairs` (otherwise).
    pub fn new(config: AsrSamplerConfig, training: bool) -> Self {
        let n_pairs = if training {
            config.train_n_pairs
        } else {
            config.test_n_pairs
        };
        Self { config, n_pairs }
    }

    /// Number of segments drawn per video (-1: all).
    pub fn n_pairs(&self) -> i64 {
        self.n_pairs
    }

    /// Candidate captions of a video, in the order to try them (`_get_text`).
    pub fn sample<R: Rng + ?Sized>(&self, t: &AsrTranscript, rng: &mut R) -> Vec<AsrCaption> {
        let n = t.len();
        if n == 0 || t.start.len() != n || t.end.len() != n {
            return Vec::new();
        }
        let indices: Vec<usize> = if self.n_pairs < 0 {
            (0..n).collect()
        } else {
            let k = usize::try_from(self.n_pairs).unwrap_or(0);
            let mut picked: Vec<usize> = if k <= n {
                rand::seq::index::sample(rng, n, k).into_vec()
            } else {
                let mut all: Vec<usize> = (0..n).collect();
                all.extend((0..k - n).map(|_| rng.random_range(0..n)));
                all
            };
            picked.shuffle(rng);
            picked
        };
        let mut out: Vec<AsrCaption> = Vec::new();
        for i in indices {
            let Some(cap) = self.single_transcript(t, i) else {
                continue;
            };
            if !out.iter().any(|c| c.caption == cap.caption) {
                out.push(cap);
            }
        }
        out
    }

    /// Segment `ind` grown with its neighbours (`_get_single_transcript`); `None` when `ind` is
    /// out of range.
    pub fn single_transcript(&self, t: &AsrTranscript, ind: usize) -> Option<AsrCaption> {
        if ind >= t.len() || t.start.len() != t.len() || t.end.len() != t.len() {
            return None;
        }
        let last = t.len() - 1;
        let (mut start, mut end) = (ind, ind);
        let mut words = t.text[ind].clone();
        let mut n_chars = words.chars().count();
        let min_time = self.config.min_time;
        let mut diff = t.end[end] - t.start[start];
        while self.config.with_long_context && (n_chars < self.config.min_words || diff < min_time)
        {
            if start > 0 && end < last {
                let next = &t.text[end + 1];
                let prev = &t.text[start - 1];
                let d1 = t.end[end + 1] - t.start[start];
                let d2 = t.end[end] - t.start[start - 1];
                let take_prev = (min_time > 0.0 && d2 <= d1)
                    || (min_time == 0.0 && next.chars().count() <= prev.chars().count());
                if take_prev {
                    start -= 1;
                    words = format!("{prev}{words}");
                    n_chars += prev.chars().count();
                } else {
                    end += 1;
                    words.push_str(next);
                    n_chars += next.chars().count();
                }
            } else if start > 0 {
                let prev = &t.text[start - 1];
                words = format!("{prev}{words}");
                n_chars += prev.chars().count();
                start -= 1;
            } else if end < last {
                let next = &t.text[end + 1];
                words.push_str(next);
                n_chars += next.chars().count();
                end += 1;
            } else {
                break;
            }
            diff = t.end[end] - t.start[start];
        }
        Some(AsrCaption {
            caption: words,
            start: t.start[start],
            end: t.end[end],
        })
    }
}
