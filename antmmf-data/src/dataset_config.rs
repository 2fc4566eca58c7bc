//! Typed view of one UniVL dataset's configuration,
//! `task_attributes.univl_task.dataset_attributes.<name>`, with AntMMF's keys and defaults
//! (`MMFDataset` / `BaseDataset` of `antmmf/datasets/base_dataset.py`, `VideoClipsDatabase.Config`
//! of `antmmf/datasets/database/video_database.py`, `ImageClipMixDatabase.ASRSamplerConfig` and
//! the UniVL datasets of `prj/base_vtp/roi_univl/univl/`).
//!
//! It deserializes from any serde data format (`serde_json::Value`, `serde_yaml_ng::Value`, a
//! merged config tree); [`DatasetAttributes::from_deserializer`] reports the full key path of a
//! wrong or unknown key. Keys not listed here are errors, not silently ignored.
//!
//! Paths follow AntMMF's `_get_absolute_path`: an absolute `data_root_dir` is used as is; a
//! relative one is taken from the working directory when that folder exists there, else from the
//! configuration file's folder (AntMMF falls back to its own package folder instead); annotation,
//! video, image and ASR paths are joined to it unless absolute.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use crate::annotations::asr::AsrSamplerConfig;
use crate::annotations::classification::LabelSpace;
use crate::text::CaptionProcessorParams;

/// Errors of the dataset configuration; each names the key path.
#[derive(Debug, thiserror::Error)]
pub enum DatasetConfigError {
    /// A key has a wrong value or is unknown.
    #[error("{path}: {message}")]
    Invalid {
        /// Full key path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A split the run needs has no entry.
    #[error("{path} is not set")]
    Missing {
        /// Full key path.
        path: String,
    },
}

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training.
    Train,
    /// Validation.
    Val,
    /// Test / prediction.
    Test,
}

impl Split {
    /// AntMMF's name of the split (`train`, `val`, `test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// One path or a list of paths (`annotations.train: a.jsonl` or `[a.jsonl, b.jsonl]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathList(pub Vec<String>);

impl<'de> Deserialize<'de> for PathList {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PathList, E> {
                Ok(PathList(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathList, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    out.push(p);
                }
                Ok(PathList(out))
            }
        }
        de.deserialize_any(V)
    }
}

/// Paths per split (`annotations`, `videos`, `images`, `asrs`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitPaths {
    /// Training entry.
    #[serde(default)]
    pub train: Option<PathList>,
    /// Validation entry.
    #[serde(default)]
    pub val: Option<PathList>,
    /// Test entry.
    #[serde(default)]
    pub test: Option<PathList>,
}

impl SplitPaths {
    /// The entry of `split`.
    pub fn get(&self, split: Split) -> Option<&PathList> {
        match split {
            Split::Train => self.train.as_ref(),
            Split::Val => self.val.as_ref(),
            Split::Test => self.test.as_ref(),
        }
    }
}

/// How training annotations are loaded (`annotations_loader`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationsLoader {
    /// Every process reads the whole file.
    #[default]
    Normal,
    /// Each distributed rank reads its own share of the lines.
    AutoSplit,
}

/// A processor entry: `type` and `params`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSpec<P> {
    /// Registered processor name (`masked_bert_tokenizer`, `custom_transforms`, ...).
    #[serde(rename = "type")]
    pub type_: String,
    /// Its parameters.
    pub params: P,
}

/// `processors` of a dataset.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processors {
    /// The caption processor (`masked_bert_tokenizer`).
    #[serde(default)]
    pub caption_processor: Option<ProcessorSpec<CaptionProcessorParams>>,
    /// Training frame transforms, kept as given for the media pipeline.
    #[serde(default)]
    pub train_frame_processor: Option<serde_json::Value>,
    /// Evaluation frame transforms, kept as given for the media pipeline.
    #[serde(default)]
    pub test_frame_processor: Option<serde_json::Value>,
}

/// `task_attributes.univl_task.dataset_attributes.<name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetAttributes {
    /// Root folder of every relative data path.
    pub data_root_dir: String,
    /// Annotation files per split.
    #[serde(default)]
    pub annotations: SplitPaths,
    /// Video folders (or LMDB files) per split.
    #[serde(default)]
    pub videos: Option<SplitPaths>,
    /// Image folders per split.
    #[serde(default)]
    pub images: Option<SplitPaths>,
    /// ASR transcript folders per split.
    #[serde(default)]
    pub asrs: Option<SplitPaths>,
    /// Read clips from `videos`.
    #[serde(default)]
    pub use_videos: bool,
    /// Read images from `images`.
    #[serde(default)]
    pub use_images: bool,
    /// Caption uncaptioned videos from `asrs`.
    #[serde(default)]
    pub use_asrs: bool,
    /// Clips sampled per video in training.
    #[serde(default = "default_train_clips")]
    pub train_ensemble_n_clips: usize,
    /// Clips sampled per video in evaluation (AntMMF's spelling).
    #[serde(default = "default_test_clips")]
    pub test_ensembel_n_clips: usize,
    /// Frames per clip.
    #[serde(default = "default_num_frm")]
    pub num_frm: usize,
    /// Replace a missing or unreadable video by zeros instead of dropping the sample.
    #[serde(default)]
    pub allow_video_miss: bool,
    /// Class names, by index (classification / open QA).
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Processors.
    #[serde(default)]
    pub processors: Processors,
    /// Annotation key naming the clip (default: `clip_name` and its aliases).
    #[serde(default)]
    pub video_field_key: Option<String>,
    /// Add a false caption per sample (ITM).
    #[serde(default)]
    pub add_false_caption: bool,
    /// ASR caption sampling.
    #[serde(default)]
    pub asr_sampler_config: AsrSamplerConfig,
    /// How training annotations are loaded.
    #[serde(default)]
    pub annotations_loader: AnnotationsLoader,
    /// Target frame rate of keyframe extraction.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Sample clip positions at random rather than uniformly.
    #[serde(default)]
    pub random_sample_clips: bool,
    /// The dataset is built for pretraining.
    #[serde(default)]
    pub pretraining: bool,
    /// Load features into memory up front.
    #[serde(default)]
    pub fast_read: bool,
}

fn default_train_clips() -> usize {
    8
}

fn default_test_clips() -> usize {
    16
}

fn default_num_frm() -> usize {
    2
}

impl DatasetAttributes {
    /// Deserializes the dataset node; `prefix` (e.g.
    /// `task_attributes.univl_task.dataset_attributes.video_text_retrieval`) starts the key path of
    /// errors.
    pub fn from_deserializer<'de, D: Deserializer<'de>>(
        de: D,
        prefix: &str,
    ) -> Result<Self, DatasetConfigError> {
        serde_path_to_error::deserialize(de).map_err(|e| {
            let rel = e.path().to_string();
            DatasetConfigError::Invalid {
                path: join_key(prefix, &rel),
                message: with_suggestion(e.into_inner().to_string()),
            }
        })
    }

    /// The class space of classification labels: the `labels` list, else `num_labels` classes
    /// (`model_attributes.univl.num_labels`).
    pub fn label_space(&self, num_labels: Option<usize>) -> LabelSpace {
        LabelSpace {
            names: self.labels.clone().unwrap_or_default(),
            num_classes: num_labels,
        }
    }

    /// Clips per video for a split.
    pub fn ensemble_n_clips(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train_ensemble_n_clips,
            Split::Val | Split::Test => self.test_ensembel_n_clips,
        }
    }

    /// The data root, resolved against the working directory and the config file's folder.
    pub fn data_root(&self, cwd: &Path, config_dir: &Path) -> PathBuf {
        resolve_data_root(&self.data_root_dir, cwd, config_dir)
    }

    /// Annotation files of a split, resolved; an unset split is an error naming the key.
    pub fn annotation_paths(
        &self,
        split: Split,
        cwd: &Path,
        config_dir: &Path,
        prefix: &str,
    ) -> Result<Vec<PathBuf>, DatasetConfigError> {
        let missing = || DatasetConfigError::Missing {
            path: join_key(prefix, &format!("annotations.{}", split.as_str())),
        };
        let list = self.annotations.get(split).ok_or_else(missing)?;
        if list.0.is_empty() {
            return Err(missing());
        }
        let root = self.data_root(cwd, config_dir);
        Ok(list.0.iter().map(|p| root.join(p)).collect())
    }

    /// Folders of `videos` / `images` / `asrs` for a split (empty when unset), resolved.
    pub fn split_dirs(
        &self,
        entry: Option<&SplitPaths>,
        split: Split,
        cwd: &Path,
        config_dir: &Path,
    ) -> Vec<PathBuf> {
        let root = self.data_root(cwd, config_dir);
        entry
            .and_then(|e| e.get(split))
            .map(|l| l.0.iter().map(|p| root.join(p)).collect())
            .unwrap_or_default()
    }
}

/// AntMMF's rule for `data_root_dir`: absolute as is; relative to `cwd` when that folder exists,
/// else relative to `config_dir`.
pub fn resolve_data_root(data_root_dir: &str, cwd: &Path, config_dir: &Path) -> PathBuf {
    let p = Path::new(data_root_dir);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let from_cwd = cwd.join(p);
    if from_cwd.is_dir() {
        from_cwd
    } else {
        config_dir.join(p)
    }
}

/// Appends "did you mean `x`?" to serde's "unknown field `y`, expected one of ..." messages.
fn with_suggestion(message: String) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message;
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message;
    };
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (strsim::levenshtein(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, k)) => format!("{message} (did you mean `{k}`?)"),
        None => message,
    }
}

fn join_key(prefix: &str, rel: &str) -> String {
    match (prefix.is_empty(), rel == "." || rel.is_empty()) {
        (true, _) => rel.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{rel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "task_attributes.univl_task.dataset_attributes.video_text_pretrain";

    /// A pretraining dataset in AntMMF's YAML layout (our own paths).
    const PRETRAIN_YAML: &str = r#"
pretraining: True
data_root_dir: data
add_false_caption: true
annotations:
  train:
   - video/pretrain_img.jsonl
   - video/pretrain_video.jsonl
  val: video/pretrain_video.jsonl
  test: video/pretrain_video.jsonl
use_videos: True
video_field_key: clip_name
train_ensemble_n_clips: 2
test_ensembel_n_clips: 2
num_frm: 1
videos:
  train: video/mp4
  val: video/mp4
  test: video/mp4
use_images: True
images: {train: image, val: image, test: image}
use_asrs: true
asrs: {train: asr_files, val: asr_files, test: asr_files}
asr_sampler_config:
  with_long_context: true
  train_n_pairs: 5
  test_n_pairs: 5
  min_words: 5
  min_time: 5.0
annotations_loader: auto_split
fps: 1
processors:
  train_frame_processor:
    type: custom_transforms
    params:
      mode: sequential
      transforms:
        - type: GroupNormalize
          params: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
  caption_processor:
    type: masked_bert_tokenizer
    params:
      random_truncate: true
      max_seq_length: 30
      mask_probability: 0.15
      trim_start_token: false
      tokenizer_config:
        type: bert-base-uncased
        params: {model_type: bert, do_lower_case: true}
      preprocessor: {type: simple_sentence, params: {}}
"#;

    fn from_yaml(text: &str) -> Result<DatasetAttributes, DatasetConfigError> {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("yaml");
        DatasetAttributes::from_deserializer(v, PREFIX)
    }

    #[test]
    fn pretrain_yaml_is_typed() {
        let c = from_yaml(PRETRAIN_YAML).expect("valid");
        assert!(c.pretraining && c.add_false_caption && c.use_videos && c.use_asrs);
        assert_eq!(
            c.annotations.train,
            Some(PathList(vec![
                "video/pretrain_img.jsonl".into(),
                "video/pretrain_video.jsonl".into()
            ]))
        );
        assert_eq!(
            c.annotations.val,
            Some(PathList(vec!["video/pretrain_video.jsonl".into()]))
        );
        assert_eq!(
            (
                c.ensemble_n_clips(Split::Train),
                c.ensemble_n_clips(Split::Test)
            ),
            (2, 2)
        );
        assert_eq!(c.num_frm, 1);
        assert_eq!(c.asr_sampler_config.train_n_pairs, 5);
        assert_eq!(c.asr_sampler_config.min_words, 5);
        assert_eq!(c.asr_sampler_config.min_time, 5.0);
        assert_eq!(c.annotations_loader, AnnotationsLoader::AutoSplit);
        assert_eq!(c.fps, Some(1.0));
        let cp = c
            .processors
            .caption_processor
            .as_ref()
            .expect("caption processor");
        assert_eq!(cp.type_, "masked_bert_tokenizer");
        assert_eq!(cp.params.max_seq_length, 30);
        assert_eq!(cp.params.mask_probability, 0.15);
        assert!(cp.params.random_truncate);
        assert!(cp.params.tokenizer_config.do_lower_case());
        let fp = c.processors.train_frame_processor.as_ref().expect("frames");
        assert_eq!(fp["params"]["transforms"][0]["params"]["std"][2], 0.225);
    }

    #[test]
    fn defaults_follow_antmmf() {
        let v =
            serde_json::json!({"data_root_dir": "/abs/data", "annotations": {"train": "a.jsonl"}});
        let c = DatasetAttributes::from_deserializer(v, PREFIX).expect("valid");
        assert_eq!(c.train_ensemble_n_clips, 8);
        assert_eq!(c.test_ensembel_n_clips, 16);
        assert_eq!(c.num_frm, 2);
        assert!(!c.use_videos && !c.use_images && !c.use_asrs && !c.allow_video_miss);
        assert_eq!(c.asr_sampler_config, AsrSamplerConfig::default());
        assert_eq!(c.asr_sampler_config.min_time, 10.0);
        assert_eq!(c.annotations_loader, AnnotationsLoader::Normal);
        assert_eq!(c.label_space(Some(1500)).num_classes(), Some(1500));
        let paths = c
            .annotation_paths(Split::Train, Path::new("/cwd"), Path::new("/cfg"), PREFIX)
            .expect("train set");
        assert_eq!(paths, [PathBuf::from("/abs/data/a.jsonl")]);
        let err = c
            .annotation_paths(Split::Val, Path::new("/cwd"), Path::new("/cfg"), PREFIX)
            .expect_err("val unset");
        assert_eq!(
            err.to_string(),
            format!("{PREFIX}.annotations.val is not set")
        );
    }

    #[test]
    fn caption_processor_default_mask_probability_is_zero() {
        let v = serde_json::json!({"max_length": 20});
        let p: CaptionProcessorParams = serde_json::from_value(v).expect("valid");
        assert_eq!(p.max_seq_length, 20);
        assert_eq!(p.mask_probability, 0.0);
        assert!(!p.random_truncate && !p.trim_start_token && !p.whole_word_masking);
        assert_eq!(p.tokenizer_config.type_, "bert-base-uncased");
    }

    #[test]
    fn errors_name_the_key_path() {
        let bad = PRETRAIN_YAML.replace("max_seq_length: 30", "max_seq_length: thirty");
        let err = from_yaml(&bad).expect_err("bad length");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "{PREFIX}.processors.caption_processor.params.max_seq_length:"
            )),
            "{msg}"
        );

        let bad = PRETRAIN_YAML.replace("num_frm: 1", "num_frms: 1");
        let msg = from_yaml(&bad).expect_err("unknown key").to_string();
        assert!(msg.starts_with(&format!("{PREFIX}.num_frms:")), "{msg}");
        assert!(msg.ends_with("(did you mean `num_frm`?)"), "{msg}");
        let bad = PRETRAIN_YAML.replace("test_ensembel_n_clips", "test_ensemble_n_clips");
        let msg = from_yaml(&bad).expect_err("AntMMF spelling").to_string();
        assert!(
            msg.ends_with("(did you mean `test_ensembel_n_clips`?)"),
            "{msg}"
        );

        let bad = PRETRAIN_YAML.replace("min_time: 5.0", "min_time: soon");
        let msg = from_yaml(&bad).expect_err("bad min_time").to_string();
        assert!(
            msg.starts_with(&format!("{PREFIX}.asr_sampler_config.min_time:")),
            "{msg}"
        );

        let bad = PRETRAIN_YAML.replace("val: video/pretrain_video.jsonl", "val: 3");
        let msg = from_yaml(&bad).expect_err("bad path").to_string();
        assert!(
            msg.starts_with(&format!("{PREFIX}.annotations.val:")),
            "{msg}"
        );
        assert!(msg.contains("a path or a list of paths"), "{msg}");

        let bad =
            PRETRAIN_YAML.replace("annotations_loader: auto_split", "annotations_loader: fast");
        let msg = from_yaml(&bad).expect_err("bad loader").to_string();
        assert!(
            msg.starts_with(&format!("{PREFIX}.annotations_loader:")),
            "{msg}"
        );
    }

    #[test]
    fn data_root_rule() {
        let cwd = tempfile::tempdir().expect("tempdir");
        let cfg = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(cwd.path().join("here")).expect("mkdir");
        assert_eq!(
            resolve_data_root("here", cwd.path(), cfg.path()),
            cwd.path().join("here")
        );
        assert_eq!(
            resolve_data_root("../tests/data", cwd.path(), cfg.path()),
            cfg.path().join("../tests/data")
        );
        assert_eq!(
            resolve_data_root("/abs/root", cwd.path(), cfg.path()),
            PathBuf::from("/abs/root")
        );
    }
}
