//! UniVL video-text datasets: annotations x media x processors -> [`Sample`]s, mirroring the
//! AntMMF datasets of `prj/base_vtp/roi_univl/univl/`: `MMFVideoPretrainDataset`
//! (`pretrain_video_text/dataset.py`), `MMFUnivlVideoDataset` (`video_text/ret_dataset.py`),
//! `MMFVideoClassificationDataset` (`video_text/cls_dataset.py`) and
//! `MMFUnivlVideoDataset_MC_QA` (`video_text/mc_qa_dataset.py`).
//!
//! One [`VideoTextDataset`] serves every [`TaskKind`]; an item is built by
//! [`VideoTextDataset::get_with_rng`], which draws every random choice (caption of a video, ASR
//! segments, frame positions, transform parameters, MLM masks, false caption) from the generator
//! it is given, so a loader that seeds one generator per sample gets the same sample whatever
//! thread builds it.
//!
//! Frames: `n_clips` clips of `num_frm` frames, i.e. `T = n_clips * num_frm` frames sampled with
//! AntMMF's sparse sampler over the whole video (or the annotation's `[start, end]` window),
//! random per segment for the train split and segment middles otherwise, then transformed with
//! `train_frame_processor` (train split) or `test_frame_processor`. An image is transformed once
//! and repeated `T` times. Differences from AntMMF, on purpose:
//! - AntMMF samples `n_clips` frames and then drops the video unless `n_clips * num_frm` equals
//!   that count, i.e. it only works with `num_frm: 1`; here `n_clips * num_frm` frames are
//!   sampled, consecutive groups of `num_frm` forming a clip.
//! - A missing or undecodable clip with `allow_video_miss` gets zero frames of the transform's
//!   output size (AntMMF: 50x50) and a clip mask of zeros; a warning is logged once per file.
//! - MC-QA options are encoded without masking (AntMMF would mask them with the caption
//!   processor's probability); the sample's caption is the encoding of an empty text.
//! - False captions (`add_false_caption`, pretraining and retrieval): AntMMF makes three random
//!   draws and falls back to "this is a dummy text"; here three random draws are followed by a
//!   scan from a random start, so the dummy text only appears when no other video has a caption.

pub mod sample;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use sample::{Sample, SampleError, SampleLabel};

use crate::annotations::asr::{AsrSampler, AsrTranscript};
use crate::annotations::classification::{ClassLabel, ClassificationAnnotations};
use crate::annotations::mcqa::McQaAnnotations;
use crate::annotations::pretrain::PretrainAnnotations;
use crate::annotations::retrieval::{RetrievalAnnotations, RetrievalMode};
use crate::annotations::{AnnotationError, ClipLocation, LineShard, MediaKind, resolve_clip};
use crate::dataset_config::{AnnotationsLoader, DatasetAttributes, DatasetConfigError, Split};
use crate::media::{
    DecodeOptions, FrameSampler, MediaError, MediaSource, SampleMode, TimeWindow, load_clip,
};
use crate::text::{CaptionEncoding, CaptionProcessor, TextError};
use crate::transforms::{FrameProcessorConfig, TransformError, VideoTransform};

/// Caption used when no other video has one (AntMMF's fallback false caption).
pub const DUMMY_FALSE_CAPTION: &str = "this is a dummy text";

/// Which AntMMF dataset (and indexing) to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Video/image-text pretraining: one item per clip window, a random caption per access, ASR
    /// captions for uncaptioned videos, false captions with `add_false_caption`.
    Pretrain,
    /// Retrieval training: one item per video, a random caption of it per access.
    RetrievalTrain,
    /// Retrieval evaluation: one item per (video, caption) line, in file order.
    RetrievalEval,
    /// Classification / open QA: question + single or multi label.
    Classification,
    /// Multiple-choice QA: every option encoded, the answer index.
    McQa,
}

/// Errors of building a dataset; each names the file or the config key.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A dataset key is missing or wrong.
    #[error(transparent)]
    Config(#[from] DatasetConfigError),
    /// An annotation file could not be read.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// The caption processor could not be built.
    #[error("{key}: {source}")]
    Text {
        /// Config key of the processor.
        key: String,
        /// The error.
        source: TextError,
    },
    /// A frame processor could not be built.
    #[error("{key}: {source}")]
    Transform {
        /// Config key of the processor.
        key: String,
        /// The error.
        source: TransformError,
    },
    /// A setting is missing or inconsistent.
    #[error("{key}: {message}")]
    Invalid {
        /// Config key concerned.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Settings of a dataset that do not come from its config node.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// Key path of the dataset node, starting the key of every error (e.g.
    /// `task_attributes.univl_task.dataset_attributes.video_text_retrieval`).
    pub prefix: String,
    /// Working directory for `data_root_dir` resolution; `None`: the process's.
    pub cwd: Option<PathBuf>,
    /// `model_attributes.univl.num_labels`, the class count when the config has no `labels`.
    pub num_labels: Option<usize>,
    /// Decoder time limit and optional resize at decode time (`None`: native size, as AntMMF).
    pub decode: DecodeOptions,
    /// Extra folders searched for `<tokenizer type>/vocab.txt`.
    pub vocab_search_dirs: Vec<PathBuf>,
    /// Base seed of the generator [`burn::data::dataset::Dataset::get`] derives per index.
    pub seed: u64,
    /// This process's rank among the data-parallel ranks: with `annotations_loader:
    /// auto_split`, the training split of a pretraining dataset reads only this share of each
    /// annotation file (see [`crate::annotations`]).
    pub shard: LineShard,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        Self {
            prefix: "dataset_attributes".into(),
            cwd: None,
            num_labels: None,
            decode: DecodeOptions {
                timeout: Duration::from_secs(60),
                resize: None,
            },
            vocab_search_dirs: Vec::new(),
            seed: 0,
            shard: LineShard::WHOLE,
        }
    }
}

/// The per-sample generator of the data pipeline: ChaCha8 keyed by `(seed, epoch)`, stream
/// `position`, so every (epoch, position) pair draws an independent, reproducible sequence.
pub fn sample_rng(seed: u64, epoch: u64, position: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(b"sample\0\0");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(position);
    rng
}

enum Annotations {
    Pretrain(PretrainAnnotations),
    Retrieval(RetrievalAnnotations),
    Classification(ClassificationAnnotations),
    McQa(McQaAnnotations),
}

/// What an item resolved to before its media is read.
struct ItemPlan {
    clip_name: String,
    kind: MediaKind,
    text: Option<String>,
    window: Option<TimeWindow>,
    needs_asr: bool,
    label: Option<SampleLabel>,
    options: Option<Vec<String>>,
    answer: Option<usize>,
    text_id: Option<usize>,
    video_id: Option<usize>,
    qid: Option<String>,
    key: Option<String>,
}

/// A UniVL video-text dataset of one split (see the module documentation).
pub struct VideoTextDataset {
    kind: TaskKind,
    split: Split,
    annotations: Annotations,
    video_dirs: Vec<PathBuf>,
    image_dirs: Vec<PathBuf>,
    asr: Option<(Vec<PathBuf>, AsrSampler)>,
    caption: CaptionProcessor,
    transform: VideoTransform,
    zero_size: (usize, usize),
    n_clips: usize,
    num_frm: usize,
    mode: SampleMode,
    allow_video_miss: bool,
    add_false_caption: bool,
    num_classes: Option<usize>,
    decode: DecodeOptions,
    seed: u64,
    shard: Option<LineShard>,
    warned: Mutex<HashSet<PathBuf>>,
}

impl std::fmt::Debug for VideoTextDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoTextDataset")
            .field("kind", &self.kind)
            .field("split", &self.split)
            .field("len", &self.len())
            .field("n_clips", &self.n_clips)
            .field("num_frm", &self.num_frm)
            .finish()
    }
}

impl VideoTextDataset {
    /// Builds the dataset of `split` from its config node with default [`DatasetOptions`];
    /// `config_dir` is the folder of the config file (for `data_root_dir`).
    pub fn new(
        attrs: &DatasetAttributes,
        split: Split,
        config_dir: &Path,
        kind: TaskKind,
    ) -> Result<Self, DatasetError> {
        Self::with_options(attrs, split, config_dir, kind, &DatasetOptions::default())
    }

    /// Builds the dataset of `split` from its config node.
    pub fn with_options(
        attrs: &DatasetAttributes,
        split: Split,
        config_dir: &Path,
        kind: TaskKind,
        options: &DatasetOptions,
    ) -> Result<Self, DatasetError> {
        let prefix = options.prefix.as_str();
        let key = |k: &str| format!("{prefix}.{k}");
        let cwd = match &options.cwd {
            Some(c) => c.clone(),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        };
        if let Some(k) = &attrs.video_field_key
            && k != "clip_name"
        {
            // The annotation readers take the clip from `clip_name` (and its aliases) only.
            return Err(DatasetError::Invalid {
                key: key("video_field_key"),
                message: format!("{k:?} is not supported: clips are named by `clip_name`"),
            });
        }
        let root = attrs.data_root(&cwd, config_dir);
        let ann_paths = attrs.annotation_paths(split, &cwd, config_dir, prefix)?;
        let label_space = attrs.label_space(options.num_labels);
        let num_classes = label_space.num_classes();
        // AntMMF's `AutoSplitAnnotated`: training annotations of the pretraining dataset only.
        let shard = match attrs.annotations_loader {
            AnnotationsLoader::AutoSplit if split == Split::Train && kind == TaskKind::Pretrain => {
                Some(options.shard)
            }
            AnnotationsLoader::AutoSplit if split == Split::Train => {
                log::warn!(
                    "{}: auto_split applies to pretraining datasets (AntMMF's video_text_pretrain); \
                     every rank reads the whole annotation file",
                    key("annotations_loader")
                );
                None
            }
            _ => None,
        };
        let annotations = match kind {
            TaskKind::Pretrain => Annotations::Pretrain(match shard {
                Some(shard) => PretrainAnnotations::load_shard(&ann_paths, shard)?,
                None => PretrainAnnotations::load(&ann_paths)?,
            }),
            TaskKind::RetrievalTrain => Annotations::Retrieval(RetrievalAnnotations::load(
                &ann_paths,
                RetrievalMode::Train,
            )?),
            TaskKind::RetrievalEval => {
                Annotations::Retrieval(RetrievalAnnotations::load(&ann_paths, RetrievalMode::Eval)?)
            }
            TaskKind::Classification => {
                let a = ClassificationAnnotations::load(&ann_paths, &label_space)?;
                let multi = a
                    .items()
                    .iter()
                    .any(|i| matches!(i.label, Some(ClassLabel::Multi(_))));
                if multi && num_classes.is_none() {
                    return Err(DatasetError::Invalid {
                        key: key("labels"),
                        message: "multi-label annotations need the class count: set `labels` or \
                                  model_attributes.univl.num_labels"
                            .into(),
                    });
                }
                Annotations::Classification(a)
            }
            TaskKind::McQa => Annotations::McQa(McQaAnnotations::load(&ann_paths)?),
        };

        let dirs_or_root = |entry, name: &str| {
            let d = attrs.split_dirs(entry, split, &cwd, config_dir);
            if d.is_empty() {
                log::debug!(
                    "{prefix}.{name}.{} not set: using data_root_dir",
                    split.as_str()
                );
                vec![root.clone()]
            } else {
                d
            }
        };
        let video_dirs = dirs_or_root(attrs.videos.as_ref(), "videos");
        let image_dirs = dirs_or_root(attrs.images.as_ref(), "images");
        let asr = if attrs.use_asrs {
            let dirs = attrs.split_dirs(attrs.asrs.as_ref(), split, &cwd, config_dir);
            if dirs.is_empty() {
                return Err(DatasetError::Invalid {
                    key: key(&format!("asrs.{}", split.as_str())),
                    message: "use_asrs is set but the split has no ASR folder".into(),
                });
            }
            Some((
                dirs,
                AsrSampler::new(attrs.asr_sampler_config.clone(), split == Split::Train),
            ))
        } else {
            None
        };

        let cap_key = key("processors.caption_processor");
        let Some(cap_spec) = &attrs.processors.caption_processor else {
            return Err(DatasetError::Invalid {
                key: cap_key,
                message: "is not set".into(),
            });
        };
        let mut cap_params = cap_spec.params.clone();
        if let Some(vp) = &cap_params.tokenizer_config.params.vocab_path {
            let p = Path::new(vp);
            if p.is_relative() && !p.is_file() && config_dir.join(p).is_file() {
                cap_params.tokenizer_config.params.vocab_path =
                    Some(config_dir.join(p).to_string_lossy().into_owned());
            }
        }
        // SNP-S3's word files resolve as vocab_path does.
        if let Some(iw) = cap_params.intra_vtm.as_mut() {
            for file in [&mut iw.words_file, &mut iw.lemma_file]
                .into_iter()
                .flatten()
            {
                if file.is_relative() && !file.exists() && config_dir.join(&*file).exists() {
                    *file = config_dir.join(&*file);
                }
            }
        }
        let mut search: Vec<&Path> = vec![config_dir, root.as_path()];
        search.extend(options.vocab_search_dirs.iter().map(PathBuf::as_path));
        let caption = CaptionProcessor::from_params(cap_params, &search).map_err(|source| {
            DatasetError::Text {
                key: cap_key.clone(),
                source,
            }
        })?;

        let (proc_name, proc_value) = if split == Split::Train {
            (
                "train_frame_processor",
                attrs.processors.train_frame_processor.as_ref(),
            )
        } else {
            (
                "test_frame_processor",
                attrs.processors.test_frame_processor.as_ref(),
            )
        };
        let proc_key = key(&format!("processors.{proc_name}"));
        let Some(proc_value) = proc_value else {
            return Err(DatasetError::Invalid {
                key: proc_key,
                message: "is not set".into(),
            });
        };
        let proc_config: FrameProcessorConfig = serde_json::from_value(proc_value.clone())
            .map_err(|e| DatasetError::Invalid {
                key: proc_key.clone(),
                message: e.to_string(),
            })?;
        let transform = VideoTransform::from_config(&proc_config).map_err(|source| {
            DatasetError::Transform {
                key: proc_key.clone(),
                source,
            }
        })?;

        let n_clips = attrs.ensemble_n_clips(split);
        let num_frm = attrs.num_frm;
        if n_clips == 0 || num_frm == 0 {
            return Err(DatasetError::Invalid {
                key: key("num_frm"),
                message: format!(
                    "clips per video ({n_clips}) and frames per clip ({num_frm}) must be positive"
                ),
            });
        }
        let t = n_clips * num_frm;
        if let VideoTransform::PyVideo(p) = &transform
            && let Some(ns) = p.num_samples
            && ns != t
        {
            return Err(DatasetError::Invalid {
                key: format!("{proc_key}.params.num_samples"),
                message: format!(
                    "{ns} frames, but n_clips * num_frm = {n_clips} * {num_frm} = {t} are sampled"
                ),
            });
        }
        let zero_size = match &transform {
            VideoTransform::PyVideo(p) => (p.crop_size, p.crop_size),
            VideoTransform::Custom(c) => match (&c.longside, options.decode.resize) {
                (Some(ls), _) => (ls.max_size, ls.max_size),
                (None, Some((w, h))) => (h as usize, w as usize),
                (None, None) => (50, 50),
            },
        };
        Ok(Self {
            kind,
            split,
            annotations,
            video_dirs,
            image_dirs,
            asr,
            caption,
            transform,
            zero_size,
            n_clips,
            num_frm,
            mode: if split == Split::Train {
                SampleMode::Train
            } else {
                SampleMode::Eval
            },
            allow_video_miss: attrs.allow_video_miss,
            add_false_caption: attrs.add_false_caption
                && matches!(
                    kind,
                    TaskKind::Pretrain | TaskKind::RetrievalTrain | TaskKind::RetrievalEval
                ),
            num_classes,
            decode: options.decode,
            seed: options.seed,
            shard,
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// The task kind.
    pub fn kind(&self) -> TaskKind {
        self.kind
    }

    /// The split.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match &self.annotations {
            Annotations::Pretrain(a) => a.len(),
            Annotations::Retrieval(a) => a.len(),
            Annotations::Classification(a) => a.len(),
            Annotations::McQa(a) => a.len(),
        }
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clips per item.
    pub fn n_clips(&self) -> usize {
        self.n_clips
    }

    /// Frames per clip.
    pub fn num_frm(&self) -> usize {
        self.num_frm
    }

    /// Class count of classification targets, when known.
    pub fn num_classes(&self) -> Option<usize> {
        self.num_classes
    }

    /// The annotation share this dataset holds when it was built with `auto_split`: the rank's
    /// items are already selected, so its loader must not shard them again (AntMMF likewise
    /// pairs `auto_split` with a non-distributed `random_sampler`).
    pub fn annotation_shard(&self) -> Option<LineShard> {
        self.shard
    }

    /// The caption processor.
    pub fn caption_processor(&self) -> &CaptionProcessor {
        &self.caption
    }

    /// Retrieval annotations with their text-id / video-id maps (`t2v`, `v2t`), for evaluation.
    pub fn retrieval(&self) -> Option<&RetrievalAnnotations> {
        match &self.annotations {
            Annotations::Retrieval(a) => Some(a),
            _ => None,
        }
    }

    /// `clip_name` of item `index` without building it (the drawn caption aside).
    pub fn clip_name(&self, index: usize) -> Option<&str> {
        match &self.annotations {
            Annotations::Pretrain(a) => a
                .group(index)
                .and_then(|g| g.first())
                .map(|i| i.clip_name.as_str()),
            Annotations::Retrieval(a) => match a.mode() {
                RetrievalMode::Train => a.video_names().get(index).map(String::as_str),
                RetrievalMode::Eval => a.items().get(index).map(|i| i.clip_name.as_str()),
            },
            Annotations::Classification(a) => a.items().get(index).map(|i| i.clip_name.as_str()),
            Annotations::McQa(a) => a.items().get(index).map(|i| i.clip_name.as_str()),
        }
    }

    /// Builds item `index`; every random choice comes from `rng`. A media failure is an error
    /// unless `allow_video_miss` is set (then the sample gets zero frames).
    pub fn get_with_rng<R: Rng + ?Sized>(
        &self,
        index: usize,
        rng: &mut R,
    ) -> Result<Sample, SampleError> {
        self.build(index, rng, self.allow_video_miss)
    }

    fn build<R: Rng + ?Sized>(
        &self,
        index: usize,
        rng: &mut R,
        zero_fill: bool,
    ) -> Result<Sample, SampleError> {
        let plan = self.plan(index, rng)?;
        let (text, frames, shape, valid) = if plan.needs_asr {
            self.asr_caption_and_frames(&plan, rng, zero_fill)?
        } else {
            let text = plan.text.clone().unwrap_or_default();
            let (frames, shape, valid) = self.frames_or_zero(&plan, plan.window, rng, zero_fill)?;
            (text, frames, shape, valid)
        };
        let caption = if self.kind == TaskKind::McQa {
            self.caption.process_with_probability("", 0.0, rng)
        } else {
            self.caption.process(&text, rng)
        };
        let options = plan.options.as_ref().map(|opts| {
            opts.iter()
                .map(|o| self.caption.process_with_probability(o, 0.0, rng))
                .collect::<Vec<CaptionEncoding>>()
        });
        let false_caption = if self.add_false_caption {
            let t = self.false_caption_text(&plan, rng);
            Some(self.caption.process_with_probability(&t, 0.0, rng))
        } else {
            None
        };
        Ok(Sample {
            index,
            clip_name: plan.clip_name,
            frames,
            frame_shape: shape,
            n_clips: self.n_clips,
            num_frm: self.num_frm,
            clip_mask: vec![valid; self.n_clips],
            text,
            caption,
            false_caption,
            label: plan.label,
            options,
            answer: plan.answer,
            text_id: plan.text_id,
            video_id: plan.video_id,
            qid: plan.qid,
            key: plan.key,
        })
    }

    fn plan<R: Rng + ?Sized>(&self, index: usize, rng: &mut R) -> Result<ItemPlan, SampleError> {
        let oob = || SampleError::IndexOutOfRange {
            index,
            len: self.len(),
        };
        let base = |clip_name: &str, kind| ItemPlan {
            clip_name: clip_name.to_owned(),
            kind,
            text: None,
            window: None,
            needs_asr: false,
            label: None,
            options: None,
            answer: None,
            text_id: None,
            video_id: None,
            qid: None,
            key: None,
        };
        Ok(match &self.annotations {
            Annotations::Pretrain(a) => {
                let item = a.sample(index, rng).ok_or_else(oob)?;
                let window = match (item.start, item.end) {
                    (Some(start), Some(end)) => Some(TimeWindow { start, end }),
                    _ => None,
                };
                ItemPlan {
                    text: item.caption.clone(),
                    window,
                    needs_asr: item.needs_asr(),
                    video_id: Some(item.video_idx),
                    key: item.key.clone(),
                    ..base(&item.clip_name, item.kind)
                }
            }
            Annotations::Retrieval(a) => {
                let item = a.get(index, rng).ok_or_else(oob)?;
                ItemPlan {
                    text: Some(item.caption.clone()),
                    text_id: Some(item.tid),
                    video_id: Some(item.vid),
                    key: item.key.clone(),
                    ..base(&item.clip_name, item.kind)
                }
            }
            Annotations::Classification(a) => {
                let item = a.items().get(index).ok_or_else(oob)?;
                let label = match &item.label {
                    None => None,
                    Some(ClassLabel::Single(i)) => Some(SampleLabel::Single(*i)),
                    Some(ClassLabel::Multi(v)) => {
                        let n = self.num_classes.unwrap_or(0);
                        let mut hot = vec![0.0f32; n];
                        for &i in v {
                            if let Some(x) = hot.get_mut(i) {
                                *x = 1.0;
                            }
                        }
                        Some(SampleLabel::MultiHot(hot))
                    }
                };
                ItemPlan {
                    text: item.question.clone(),
                    label,
                    ..base(&item.clip_name, item.kind)
                }
            }
            Annotations::McQa(a) => {
                let item = a.items().get(index).ok_or_else(oob)?;
                ItemPlan {
                    options: Some(item.options.clone()),
                    answer: item.answer,
                    qid: Some(item.qid.clone()),
                    ..base(&item.clip_name, item.kind)
                }
            }
        })
    }

    /// The media source of a clip: the first folder where it exists, else the first folder's
    /// candidate (which then fails to open, naming the path).
    fn source(&self, clip_name: &str, kind: MediaKind) -> MediaSource {
        match kind {
            MediaKind::Image => {
                for d in &self.image_dirs {
                    let p = d.join(clip_name);
                    if p.exists() {
                        return MediaSource::detect(&p);
                    }
                }
                let first = self.image_dirs.first().cloned().unwrap_or_default();
                MediaSource::Image(first.join(clip_name))
            }
            MediaKind::Video => {
                let mut fallback = None;
                for d in &self.video_dirs {
                    if d.extension().is_some_and(|e| e == "lmdb") {
                        let key = Path::new(clip_name)
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        return MediaSource::Lmdb { db: d.clone(), key };
                    }
                    let src = match resolve_clip(d, clip_name) {
                        ClipLocation::KeyframeDir(p) => return MediaSource::KeyframeDir(p),
                        ClipLocation::VideoFile(p) => MediaSource::detect(&p),
                    };
                    if src.path().exists() {
                        return src;
                    }
                    fallback.get_or_insert(src);
                }
                fallback.unwrap_or_else(|| MediaSource::Video(PathBuf::from(clip_name)))
            }
        }
    }

    /// Loads and transforms the frames of a clip: `[T, 3, H, W]` values and shape.
    fn load_frames<R: Rng + ?Sized>(
        &self,
        clip_name: &str,
        source: &MediaSource,
        window: Option<TimeWindow>,
        rng: &mut R,
    ) -> Result<(Vec<f32>, [usize; 4]), SampleError> {
        let t = self.n_clips * self.num_frm;
        let path = source.path();
        let media_err = |source: MediaError| SampleError::Media {
            clip: clip_name.to_owned(),
            path: path.clone(),
            source: Box::new(source),
        };
        let transform_err = |source| SampleError::Transform {
            clip: clip_name.to_owned(),
            path: path.clone(),
            source,
        };
        if let MediaSource::Video(p) | MediaSource::Image(p) = source
            && !p.exists()
        {
            return Err(media_err(MediaError::Io {
                path: p.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            }));
        }
        // `&mut R` is itself a sized generator the media and transform APIs accept.
        let mut rng = rng;
        if let MediaSource::Image(_) = source {
            let sampler = FrameSampler::new(1, self.mode);
            let clip =
                load_clip(source, &sampler, None, self.decode, &mut rng).map_err(media_err)?;
            let one = self
                .transform
                .apply(&clip.frames, &mut rng)
                .map_err(transform_err)?;
            let [_, c, h, w] = one.shape;
            let mut data = Vec::with_capacity(t * one.data.len());
            for _ in 0..t {
                data.extend_from_slice(&one.data);
            }
            return Ok((data, [t, c, h, w]));
        }
        let sampler = FrameSampler::new(t, self.mode);
        let clip = load_clip(source, &sampler, window, self.decode, &mut rng).map_err(media_err)?;
        let out = self
            .transform
            .apply(&clip.frames, &mut rng)
            .map_err(transform_err)?;
        if out.shape[0] != t {
            return Err(transform_err(TransformError::Config(format!(
                "the frame processor returned {} frames, expected {t}",
                out.shape[0]
            ))));
        }
        Ok((out.data, out.shape))
    }

    /// Frames of `plan`, or zeros (with a once-per-file warning) on a media failure when
    /// `zero_fill`; the flag says whether the frames are real.
    fn frames_or_zero<R: Rng + ?Sized>(
        &self,
        plan: &ItemPlan,
        window: Option<TimeWindow>,
        rng: &mut R,
        zero_fill: bool,
    ) -> Result<(Vec<f32>, [usize; 4], bool), SampleError> {
        let source = self.source(&plan.clip_name, plan.kind);
        match self.load_frames(&plan.clip_name, &source, window, rng) {
            Ok((f, s)) => Ok((f, s, true)),
            Err(e) if zero_fill && e.is_media() => {
                self.warn_missing(&e);
                let (f, s) = self.zero_frames();
                Ok((f, s, false))
            }
            Err(e) => Err(e),
        }
    }

    fn zero_frames(&self) -> (Vec<f32>, [usize; 4]) {
        let t = self.n_clips * self.num_frm;
        let (h, w) = self.zero_size;
        (vec![0.0; t * 3 * h * w], [t, 3, h, w])
    }

    fn warn_missing(&self, e: &SampleError) {
        let path = e.path().unwrap_or_default();
        let first = match self.warned.lock() {
            Ok(mut set) => set.insert(path),
            Err(_) => true,
        };
        if first {
            log::warn!("{e}; allow_video_miss is set: using zero frames");
        }
    }

    /// Pretraining video without caption: ASR segments in drawn order, the first whose window
    /// decodes gives caption and frames (AntMMF's `ImageClipMixDatabase.__getitem__`).
    fn asr_caption_and_frames<R: Rng + ?Sized>(
        &self,
        plan: &ItemPlan,
        rng: &mut R,
        zero_fill: bool,
    ) -> Result<(String, Vec<f32>, [usize; 4], bool), SampleError> {
        let clip = plan.clip_name.clone();
        let Some((dirs, sampler)) = &self.asr else {
            return Err(SampleError::NoCaption {
                clip,
                reason: "use_asrs is not set".into(),
            });
        };
        let mut transcript = None;
        for d in dirs {
            match AsrTranscript::load_for_clip(d, &plan.clip_name) {
                Ok(Some(t)) => {
                    transcript = Some(t);
                    break;
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(SampleError::Asr {
                        clip,
                        source: Box::new(source),
                    });
                }
            }
        }
        let Some(transcript) = transcript else {
            return Err(SampleError::NoCaption {
                clip,
                reason: format!("no ASR transcript in {dirs:?}"),
            });
        };
        let captions = sampler.sample(&transcript, rng);
        let Some(first) = captions.first() else {
            return Err(SampleError::NoCaption {
                clip,
                reason: "its ASR transcript has no segment".into(),
            });
        };
        let source = self.source(&plan.clip_name, plan.kind);
        let mut last_err = None;
        for cap in &captions {
            let window = Some(TimeWindow {
                start: cap.start,
                end: cap.end,
            });
            match self.load_frames(&plan.clip_name, &source, window, rng) {
                Ok((f, s)) => return Ok((cap.caption.clone(), f, s, true)),
                Err(e) if e.is_media() => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        match last_err {
            Some(e) if zero_fill => {
                self.warn_missing(&e);
                let (f, s) = self.zero_frames();
                Ok((first.caption.clone(), f, s, false))
            }
            Some(e) => Err(e),
            None => Err(SampleError::NoCaption {
                clip,
                reason: "no ASR segment could be used".into(),
            }),
        }
    }

    /// A caption of another video: three random draws, then a scan from a random start.
    fn false_caption_text<R: Rng + ?Sized>(&self, plan: &ItemPlan, rng: &mut R) -> String {
        let Some(own) = plan.video_id else {
            return DUMMY_FALSE_CAPTION.into();
        };
        match &self.annotations {
            Annotations::Pretrain(a) => {
                let groups = a.groups();
                let usable = |g: &Vec<crate::annotations::pretrain::PretrainItem>| {
                    g.first().is_some_and(|i| i.video_idx != own)
                        && g.iter().any(|i| i.caption.is_some())
                };
                let pick = |g: &Vec<crate::annotations::pretrain::PretrainItem>, rng: &mut R| {
                    let caps: Vec<&String> = g.iter().filter_map(|i| i.caption.as_ref()).collect();
                    caps[rng.random_range(0..caps.len())].clone()
                };
                pick_other(groups, usable, pick, rng)
            }
            Annotations::Retrieval(a) => {
                let items = a.items();
                let usable = |i: &crate::annotations::retrieval::RetrievalItem| i.vid != own;
                let pick =
                    |i: &crate::annotations::retrieval::RetrievalItem, _: &mut R| i.caption.clone();
                pick_other(items, usable, pick, rng)
            }
            _ => DUMMY_FALSE_CAPTION.into(),
        }
    }
}

/// Three uniform draws among `all`, then a scan from a random start, for the first element
/// `usable` accepts; `pick` turns it into a caption.
fn pick_other<T, R: Rng + ?Sized>(
    all: &[T],
    usable: impl Fn(&T) -> bool,
    pick: impl Fn(&T, &mut R) -> String,
    rng: &mut R,
) -> String {
    let n = all.len();
    if n == 0 {
        return DUMMY_FALSE_CAPTION.into();
    }
    for _ in 0..3 {
        let g = &all[rng.random_range(0..n)];
        if usable(g) {
            return pick(g, rng);
        }
    }
    let start = rng.random_range(0..n);
    for k in 0..n {
        let g = &all[(start + k) % n];
        if usable(g) {
            return pick(g, rng);
        }
    }
    DUMMY_FALSE_CAPTION.into()
}

impl burn::data::dataset::Dataset<Sample> for VideoTextDataset {
    /// Item `index` with the generator [`sample_rng`]`(seed, 0, index)`. Burn's loaders stop at
    /// the first `None`, so a media failure gives zero frames (clip mask all false, warning once
    /// per file) whatever `allow_video_miss` says; other failures are logged and give `None`.
    fn get(&self, index: usize) -> Option<Sample> {
        if index >= self.len() {
            return None;
        }
        let mut rng = sample_rng(self.seed, 0, index as u64);
        match self.build(index, &mut rng, true) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("dataset item {index}: {e}");
                None
            }
        }
    }

    fn len(&self) -> usize {
        VideoTextDataset::len(self)
    }
}
