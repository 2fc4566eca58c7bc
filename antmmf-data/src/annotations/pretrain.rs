//! Video/image-text pretraining annotations (`univl_video.jsonl`, `univl_img.jsonl`), mirroring
//! `PretrainAnnotated` of `prj/base_vtp/roi_univl/univl/pretrain_video_text/dataset.py`.
//!
//! Line format: `{"clip_name": "video9770.mp4", "caption": "...", "sen_id": 0, "start": 0.0,
//! "end": 3.7, "type": "video"}`; `caption` may be null or empty for videos whose caption comes
//! from ASR transcripts, `start`/`end` (seconds) are optional but come together, `type` is `video`
//! (default) or `image`.
//!
//! Items are grouped like AntMMF: per file, clips in order of first appearance, a clip's lines
//! sorted by `sen_id` (stable, missing = 0), then one group per distinct `(start, end)` window.
//! The dataset has one entry per group; each access draws one caption of the group at random
//! ([`PretrainAnnotations::sample`]). `video_idx` numbers clips across all files (AntMMF restarts
//! it per file, which lets false captions of another file's clip with the same index be rejected).

use std::path::Path;

use rand::{Rng, RngExt};
use serde::Deserialize;

use super::{
    AnnotationError, LineShard, MediaKind, Record, read_records, read_records_sharded,
    string_or_int,
};

/// One pretraining caption of a clip window.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainItem {
    /// `clip_name` as written (with extension for videos, an image file name for images).
    pub clip_name: String,
    /// The caption; `None` when null or blank (the caption then comes from ASR transcripts).
    pub caption: Option<String>,
    /// Window start in seconds.
    pub start: Option<f64>,
    /// Window end in seconds.
    pub end: Option<f64>,
    /// Video or image.
    pub kind: MediaKind,
    /// `retrieval_key`, else `sen_id`, as text.
    pub key: Option<String>,
    /// Index of the clip (distinct `clip_name` per file) over all files.
    pub video_idx: usize,
}

impl PretrainItem {
    /// Whether the caption must come from ASR transcripts (a video without caption).
    pub fn needs_asr(&self) -> bool {
        self.kind == MediaKind::Video && self.caption.is_none()
    }
}

#[derive(Deserialize)]
struct RawPretrain {
    clip_name: String,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    sen_id: Option<i64>,
    #[serde(default, deserialize_with = "string_or_int")]
    retrieval_key: Option<String>,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
    #[serde(default, rename = "type")]
    kind: Option<MediaKind>,
}

/// Pretraining annotations grouped by clip window.
#[derive(Debug, Clone, Default)]
pub struct PretrainAnnotations {
    groups: Vec<Vec<PretrainItem>>,
}

impl PretrainAnnotations {
    /// Reads and groups the files (concatenated in order).
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self, AnnotationError> {
        Self::load_from(paths, None)
    }

    /// Reads and groups `shard`'s block of each file (`annotations_loader: auto_split`, AntMMF's
    /// `AutoSplitAnnotated`): clips are grouped within the block, so a clip whose lines straddle
    /// two blocks becomes one group on each rank, as in AntMMF.
    pub fn load_shard<P: AsRef<Path>>(
        paths: &[P],
        shard: LineShard,
    ) -> Result<Self, AnnotationError> {
        Self::load_from(paths, Some(shard))
    }

    fn load_from<P: AsRef<Path>>(
        paths: &[P],
        shard: Option<LineShard>,
    ) -> Result<Self, AnnotationError> {
        let mut groups = Vec::new();
        let mut video_base = 0;
        for path in paths {
            let one = std::slice::from_ref(path);
            let records: Vec<Record<RawPretrain>> = match shard {
                Some(shard) => read_records_sharded(one, shard)?,
                None => read_records(one)?,
            };
            video_base += group_file(records, video_base, &mut groups)?;
        }
        if paths.is_empty() {
            return Err(AnnotationError::NoFiles);
        }
        Ok(Self { groups })
    }

    /// Number of clip windows (dataset length).
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there is no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// All captions of group `idx`, sorted by `sen_id`.
    pub fn group(&self, idx: usize) -> Option<&[PretrainItem]> {
        self.groups.get(idx).map(Vec::as_slice)
    }

    /// All groups.
    pub fn groups(&self) -> &[Vec<PretrainItem>] {
        &self.groups
    }

    /// Draws one caption of group `idx` uniformly (AntMMF's `random.choice`).
    pub fn sample<R: Rng + ?Sized>(&self, idx: usize, rng: &mut R) -> Option<&PretrainItem> {
        let group = self.groups.get(idx)?;
        if group.is_empty() {
            return None;
        }
        group.get(rng.random_range(0..group.len()))
    }
}

/// Groups one file's records; returns the number of clips it holds.
fn group_file(
    records: Vec<Record<RawPretrain>>,
    video_base: usize,
    groups: &mut Vec<Vec<PretrainItem>>,
) -> Result<usize, AnnotationError> {
    // Clips in order of first appearance, with their records.
    let mut clip_index: std::collections::HashMap<String, usize> = Default::default();
    let mut clips: Vec<Vec<(i64, PretrainItem)>> = Vec::new();
    for Record { at, value } in records {
        let window = match (value.start, value.end) {
            (Some(s), Some(e)) => {
                if !(s >= 0.0 && e >= s) {
                    return Err(AnnotationError::field(
                        &at,
                        "start",
                        format!("window start {s} / end {e}: need 0 <= start <= end"),
                    ));
                }
                (Some(s), Some(e))
            }
            (None, None) => (None, None),
            (Some(_), None) => {
                return Err(AnnotationError::field(
                    &at,
                    "end",
                    "`start` is given without `end`",
                ));
            }
            (None, Some(_)) => {
                return Err(AnnotationError::field(
                    &at,
                    "start",
                    "`end` is given without `start`",
                ));
            }
        };
        let next = clips.len();
        let ci = *clip_index.entry(value.clip_name.clone()).or_insert(next);
        if ci == next {
            clips.push(Vec::new());
        }
        let caption = value.caption.filter(|c| !c.trim().is_empty());
        let key = value
            .retrieval_key
            .filter(|k| !k.is_empty())
            .or_else(|| value.sen_id.map(|s| s.to_string()));
        clips[ci].push((
            value.sen_id.unwrap_or(0),
            PretrainItem {
                clip_name: value.clip_name,
                caption,
                start: window.0,
                end: window.1,
                kind: value.kind.unwrap_or_default(),
                key,
                video_idx: video_base + ci,
            },
        ));
    }
    let n_clips = clips.len();
    for mut items in clips {
        items.sort_by_key(|(sen_id, _)| *sen_id);
        let mut windows: Vec<(Option<u64>, Option<u64>)> = Vec::new();
        let first_group = groups.len();
        for (_, item) in items {
            let w = (item.start.map(f64::to_bits), item.end.map(f64::to_bits));
            match windows.iter().position(|x| *x == w) {
                Some(i) => groups[first_group + i].push(item),
                None => {
                    windows.push(w);
                    groups.push(vec![item]);
                }
            }
        }
    }
    Ok(n_clips)
}
