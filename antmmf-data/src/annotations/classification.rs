//! Classification and open-QA annotations (`ucf101_sample.jsonl`, MSRVTT-QA, `VATEX_CN.jsonl`),
//! mirroring `ClassificationAnnotated` and `MMFVideoClassificationDataset.add_label` of
//! `prj/base_vtp/roi_univl/univl/video_text/cls_dataset.py`.
//!
//! Line format: `{"clip_name": "...", "caption": "question or empty", "label": L}` where `L` is
//! - an integer class index;
//! - a string: its index in the dataset's `labels` list, else an integer written as text (`"3"`);
//! - a list of such values (multi-label; may be empty);
//! - absent or null: no target (prediction).
//!
//! Every index must be below the number of classes (`labels.len()`, or `num_labels` when no
//! `labels` list is configured); an index out of range, a name not in `labels`, or a value of
//! another type is an error naming `file:line`. (AntMMF only checks the first element's type of a
//! list and reports none of these with a line.)

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{AnnotationError, LineRef, MediaKind, Record, read_records};

/// The target of a classification item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassLabel {
    /// One class index.
    Single(usize),
    /// Several class indices (multi-label; may be empty).
    Multi(Vec<usize>),
}

/// One classification / open-QA item.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationItem {
    /// `clip_name` as written.
    pub clip_name: String,
    /// `caption`: the question for open QA, often empty for action recognition.
    pub question: Option<String>,
    /// The target, `None` when the line has none.
    pub label: Option<ClassLabel>,
    /// Video or image.
    pub kind: MediaKind,
}

/// The class space labels are checked against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSpace {
    /// The dataset's `labels` list (class names by index); may be empty.
    pub names: Vec<String>,
    /// Number of classes when `names` is empty (`model_attributes.univl.num_labels`).
    pub num_classes: Option<usize>,
}

impl LabelSpace {
    /// Number of classes, if known.
    pub fn num_classes(&self) -> Option<usize> {
        if self.names.is_empty() {
            self.num_classes
        } else {
            Some(self.names.len())
        }
    }

    fn check(&self, at: &LineRef, idx: i128) -> Result<usize, AnnotationError> {
        let n = self.num_classes();
        let ok = idx >= 0 && n.is_none_or(|n| idx < n as i128);
        match (ok, usize::try_from(idx)) {
            (true, Ok(i)) => Ok(i),
            _ => Err(AnnotationError::field(
                at,
                "label",
                match n {
                    Some(n) => format!(
                        "label {idx} is out of range: {n} classes (0..={})",
                        n.saturating_sub(1)
                    ),
                    None => format!("label {idx} is negative"),
                },
            )),
        }
    }

    fn resolve_one(&self, at: &LineRef, v: &Value) -> Result<usize, AnnotationError> {
        match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => self.check(at, i128::from(i)),
                None => match n.as_u64() {
                    Some(u) => self.check(at, i128::from(u)),
                    None => Err(AnnotationError::field(
                        at,
                        "label",
                        format!("label {n} is not an integer"),
                    )),
                },
            },
            Value::String(s) => {
                if let Some(i) = self.names.iter().position(|x| x == s) {
                    return Ok(i);
                }
                match s.trim().parse::<i128>() {
                    Ok(i) => self.check(at, i),
                    Err(_) => Err(AnnotationError::field(
                        at,
                        "label",
                        format!(
                            "label {s:?} is neither in the dataset's `labels` list nor an integer"
                        ),
                    )),
                }
            }
            other => Err(AnnotationError::field(
                at,
                "label",
                format!("expected an integer, a string or a list of them, found {other}"),
            )),
        }
    }

    /// Resolves a line's `label` value.
    pub fn resolve(&self, at: &LineRef, v: &Value) -> Result<Option<ClassLabel>, AnnotationError> {
        match v {
            Value::Null => Ok(None),
            Value::Array(items) => items
                .iter()
                .map(|x| self.resolve_one(at, x))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| Some(ClassLabel::Multi(v))),
            other => self
                .resolve_one(at, other)
                .map(|i| Some(ClassLabel::Single(i))),
        }
    }
}

#[derive(Deserialize)]
struct RawClassification {
    clip_name: String,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    label: Value,
    #[serde(default, rename = "type")]
    kind: Option<MediaKind>,
}

/// Classification / open-QA annotations, one item per line in file order.
#[derive(Debug, Clone, Default)]
pub struct ClassificationAnnotations {
    items: Vec<ClassificationItem>,
}

impl ClassificationAnnotations {
    /// Reads the files (concatenated in order), resolving labels in `labels`.
    pub fn load<P: AsRef<Path>>(paths: &[P], labels: &LabelSpace) -> Result<Self, AnnotationError> {
        let records: Vec<Record<RawClassification>> = read_records(paths)?;
        let mut items = Vec::with_capacity(records.len());
        for Record { at, value } in records {
            items.push(ClassificationItem {
                label: labels.resolve(&at, &value.label)?,
                clip_name: value.clip_name,
                question: value.caption,
                kind: value.kind.unwrap_or_default(),
            });
        }
        Ok(Self { items })
    }

    /// The items.
    pub fn items(&self) -> &[ClassificationItem] {
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
