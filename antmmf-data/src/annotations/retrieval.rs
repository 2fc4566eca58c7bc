//! Text-video retrieval annotations (`msrvtt_train.jsonl`, `msrvtt_test.jsonl`), mirroring
//! `RetrivalAnnotated` of `prj/base_vtp/roi_univl/univl/video_text/ret_dataset.py`.
//!
//! Line format: `{"clip_name": "video9770", "caption": "...", "sen_id": 0}` (train) or
//! `{"clip_name": "video9770", "caption": "...", "retrieval_key": "ret0"}` (test).
//!
//! Ids as AntMMF assigns them: a video id per distinct `clip_name` and a text id per distinct
//! caption text, both in order of first appearance; `t2v` / `v2t` list the videos of a text and
//! the texts of a video (several captions may share a video, and an identical caption may belong
//! to several videos). Items are ordered by video (first appearance), a video's lines sorted by
//! `sen_id` (stable): this is file order whenever a video's lines are contiguous.
//! - [`RetrievalMode::Train`]: one dataset entry per video; each access draws one of its captions.
//! - [`RetrievalMode::Eval`]: one entry per (video, caption) line.
//!
//! Differences from AntMMF: with several files the ids run over all of them (AntMMF numbers each
//! file from 0, so two files' videos would collide in the retrieval metrics), and the `t2v`/`v2t`
//! lists hold each id once.

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, RngExt};
use serde::Deserialize;

use super::{AnnotationError, MediaKind, Record, read_records, string_or_int};

/// How the dataset indexes the items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrievalMode {
    /// One entry per video, a random caption per access.
    Train,
    /// One entry per (video, caption) pair.
    Eval,
}

/// One (video, caption) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalItem {
    /// `clip_name` as written.
    pub clip_name: String,
    /// The caption.
    pub caption: String,
    /// Video id (distinct `clip_name`).
    pub vid: usize,
    /// Text id (distinct caption text).
    pub tid: usize,
    /// `retrieval_key`, else `sen_id`, as text.
    pub key: Option<String>,
    /// Video or image.
    pub kind: MediaKind,
}

#[derive(Deserialize)]
struct RawRetrieval {
    clip_name: String,
    caption: String,
    #[serde(default)]
    sen_id: Option<i64>,
    #[serde(default, deserialize_with = "string_or_int")]
    retrieval_key: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<MediaKind>,
}

/// Retrieval annotations with their text and video id maps.
#[derive(Debug, Clone)]
pub struct RetrievalAnnotations {
    mode: RetrievalMode,
    items: Vec<RetrievalItem>,
    /// Item index ranges per video, in video-id order.
    video_items: Vec<std::ops::Range<usize>>,
    video_names: Vec<String>,
    texts: Vec<String>,
    t2v: Vec<Vec<usize>>,
    v2t: Vec<Vec<usize>>,
}

impl RetrievalAnnotations {
    /// Reads the files (concatenated in order).
    pub fn load<P: AsRef<Path>>(paths: &[P], mode: RetrievalMode) -> Result<Self, AnnotationError> {
        let records: Vec<Record<RawRetrieval>> = read_records(paths)?;
        let mut vid_of: HashMap<String, usize> = HashMap::new();
        let mut tid_of: HashMap<String, usize> = HashMap::new();
        let mut video_names = Vec::new();
        let mut texts = Vec::new();
        let mut t2v: Vec<Vec<usize>> = Vec::new();
        let mut v2t: Vec<Vec<usize>> = Vec::new();
        let mut per_video: Vec<Vec<(i64, RetrievalItem)>> = Vec::new();
        for Record { value, .. } in records {
            let vid = *vid_of.entry(value.clip_name.clone()).or_insert_with(|| {
                video_names.push(value.clip_name.clone());
                v2t.push(Vec::new());
                per_video.push(Vec::new());
                video_names.len() - 1
            });
            let tid = *tid_of.entry(value.caption.clone()).or_insert_with(|| {
                texts.push(value.caption.clone());
                t2v.push(Vec::new());
                texts.len() - 1
            });
            if !t2v[tid].contains(&vid) {
                t2v[tid].push(vid);
            }
            if !v2t[vid].contains(&tid) {
                v2t[vid].push(tid);
            }
            let key = value
                .retrieval_key
                .filter(|k| !k.is_empty())
                .or_else(|| value.sen_id.map(|s| s.to_string()));
            per_video[vid].push((
                value.sen_id.unwrap_or(0),
                RetrievalItem {
                    clip_name: value.clip_name,
                    caption: value.caption,
                    vid,
                    tid,
                    key,
                    kind: value.kind.unwrap_or_default(),
                },
            ));
        }
        let mut items = Vec::new();
        let mut video_items = Vec::with_capacity(per_video.len());
        for mut v in per_video {
            v.sort_by_key(|(sen_id, _)| *sen_id);
            let begin = items.len();
            items.extend(v.into_iter().map(|(_, item)| item));
            video_items.push(begin..items.len());
        }
        Ok(Self {
            mode,
            items,
            video_items,
            video_names,
            texts,
            t2v,
            v2t,
        })
    }

    /// The indexing mode.
    pub fn mode(&self) -> RetrievalMode {
        self.mode
    }

    /// Dataset length: videos (train) or pairs (eval).
    pub fn len(&self) -> usize {
        match self.mode {
            RetrievalMode::Train => self.video_items.len(),
            RetrievalMode::Eval => self.items.len(),
        }
    }

    /// Whether the dataset is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `idx`: in train mode a caption of video `idx` drawn uniformly, in eval mode pair
    /// `idx` (the generator is not used).
    pub fn get<R: Rng + ?Sized>(&self, idx: usize, rng: &mut R) -> Option<&RetrievalItem> {
        match self.mode {
            RetrievalMode::Train => {
                let range = self.video_items.get(idx)?.clone();
                if range.is_empty() {
                    return None;
                }
                self.items.get(rng.random_range(range))
            }
            RetrievalMode::Eval => self.items.get(idx),
        }
    }

    /// Every (video, caption) pair, in dataset (eval) order.
    pub fn items(&self) -> &[RetrievalItem] {
        &self.items
    }

    /// The pairs of video `vid`, sorted by `sen_id`.
    pub fn video_items(&self, vid: usize) -> &[RetrievalItem] {
        self.video_items
            .get(vid)
            .and_then(|r| self.items.get(r.clone()))
            .unwrap_or(&[])
    }

    /// Number of distinct videos.
    pub fn num_videos(&self) -> usize {
        self.video_names.len()
    }

    /// Number of distinct caption texts.
    pub fn num_texts(&self) -> usize {
        self.texts.len()
    }

    /// `clip_name` of each video id.
    pub fn video_names(&self) -> &[String] {
        &self.video_names
    }

    /// Caption of each text id.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// Video ids of text `tid` (`t2vid_list`).
    pub fn videos_of_text(&self, tid: usize) -> &[usize] {
        self.t2v.get(tid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Text ids of video `vid` (`v2tid_list`).
    pub fn texts_of_video(&self, vid: usize) -> &[usize] {
        self.v2t.get(vid).map(Vec::as_slice).unwrap_or(&[])
    }
}
