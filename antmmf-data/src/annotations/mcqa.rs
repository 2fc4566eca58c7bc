//! Multiple-choice QA annotations (`msrvtt_multi_choice_qa.jsonl`), mirroring
//! `RetrivalAnnotated_MC_QA` of `prj/base_vtp/roi_univl/univl/video_text/mc_qa_dataset.py`.
//!
//! Line format: `{"qid": "mc0", "clip_name": "video9770", "title": "...", "answer": "0",
//! "options": ["...", ...]}`. `qid` is a string or an integer; `options` a non-empty list of
//! strings; `answer` the index of the right option, an integer or an integer written as text,
//! below the number of options (absent or null: no target, for prediction). Violations are errors
//! naming `file:line` and the key. One item per line, in file order.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{AnnotationError, MediaKind, Record, read_records, string_or_int};

/// One multiple-choice question about a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct McQaItem {
    /// Question id.
    pub qid: String,
    /// `clip_name` as written.
    pub clip_name: String,
    /// The candidate answers (captions), at least one.
    pub options: Vec<String>,
    /// Index of the right option, `None` when the line gives no answer.
    pub answer: Option<usize>,
    /// Video or image.
    pub kind: MediaKind,
}

#[derive(Deserialize)]
struct RawMcQa {
    #[serde(deserialize_with = "string_or_int")]
    qid: Option<String>,
    clip_name: String,
    options: Vec<String>,
    #[serde(default)]
    answer: Value,
    #[serde(default, rename = "type")]
    kind: Option<MediaKind>,
}

/// Multiple-choice QA annotations.
#[derive(Debug, Clone, Default)]
pub struct McQaAnnotations {
    items: Vec<McQaItem>,
}

impl McQaAnnotations {
    /// Reads the files (concatenated in order).
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self, AnnotationError> {
        let records: Vec<Record<RawMcQa>> = read_records(paths)?;
        let mut items = Vec::with_capacity(records.len());
        for Record { at, value } in records {
            let Some(qid) = value.qid else {
                return Err(AnnotationError::field(&at, "qid", "qid is null"));
            };
            let n = value.options.len();
            if n == 0 {
                return Err(AnnotationError::field(&at, "options", "options is empty"));
            }
            let answer = match &value.answer {
                Value::Null => None,
                Value::Number(x) => Some(x.as_i64().map(i128::from).or(x.as_u64().map(i128::from))),
                Value::String(s) => Some(s.trim().parse::<i128>().ok()),
                _ => Some(None),
            };
            let answer = match answer {
                None => None,
                Some(Some(i)) if i >= 0 && i < n as i128 => usize::try_from(i).ok(),
                Some(Some(i)) => {
                    return Err(AnnotationError::field(
                        &at,
                        "answer",
                        format!("answer {i} is out of range: {n} options (0..={})", n - 1),
                    ));
                }
                Some(None) => {
                    return Err(AnnotationError::field(
                        &at,
                        "answer",
                        format!(
                            "expected an option index (integer or \"0\"), found {}",
                            value.answer
                        ),
                    ));
                }
            };
            items.push(McQaItem {
                qid,
                clip_name: value.clip_name,
                options: value.options,
                answer,
                kind: value.kind.unwrap_or_default(),
            });
        }
        Ok(Self { items })
    }

    /// The items.
    pub fn items(&self) -> &[McQaItem] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
