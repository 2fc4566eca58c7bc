//! A training or evaluation run from a merged AntMMF configuration: the dataset node, the model,
//! the optimizer and LR schedule, the loop settings, the run directory, resume, and the
//! evaluation skeleton the three fine-tuning tasks share (retrieval recall, QA accuracy, MC-QA
//! accuracy; pretraining reports its validation losses).

use crate::distributed::{AllReduce, DistributedError, NodeLaunch, all_gather_u64};
use crate::optim::{AntmmfOptimizer, AntmmfOptimizerConfig, LrGroupRule};
use crate::schedule::{AntMmfLrSchedule, LrScheduleConfig};
use crate::trainer::{
    ResumableLoader, StartFrom, TaskHooks, TrainRun, TrainSummary, TrainerSettings,
    latest_good_checkpoint, launch_in_group,
};
use crate::univl_task::{HardSampleCurriculum, TaskHead, TaskSettings, UnivlTask};
use antmmf_core::checkpoint::Checkpoint;
use antmmf_core::config::{RunType, TrainingParameters};
use antmmf_core::fsutil::write_atomic;
use antmmf_core::run_dir::RunDir;
use antmmf_core::{Config, ConfigError};
use antmmf_data::annotations::LineShard;
use antmmf_data::batch::VideoTextBatch;
use antmmf_data::dataset::{DatasetOptions, TaskKind, VideoTextDataset};
use antmmf_data::dataset_config::{DatasetAttributes, Split};
use antmmf_data::loader::{DeterministicLoader, LoaderConfig};
use antmmf_models::import::{
    LoadOptions, LoadReport, ShapeMismatch, WeightFile, find_weights_file,
};
use antmmf_models::univl::{
    Moco, Univl, UnivlConfig, UnivlError, VisualBackbone, antmmf_univl_keys,
};
use burn::module::{AutodiffModule, Module, Param, RunningState};
use burn::nn::LinearConfig;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_store::{ApplyError, ModuleSnapshot, TensorSnapshot};
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Config keys a training or evaluation run acts on (patterns: `*` is one segment, a trailing
/// `**` any suffix). User-set keys outside these are declared by AntMMF but ignored here, and the
/// binaries list them once as a warning.
pub const ACTED_ON_KEYS: &[&str] = &[
    "includes",
    "training_parameters.max_iterations",
    "training_parameters.max_epochs",
    "training_parameters.log_interval",
    "training_parameters.snapshot_interval",
    "training_parameters.max_ckpt_num",
    "training_parameters.clip_gradients",
    "training_parameters.max_grad_l2_norm",
    "training_parameters.seed",
    "training_parameters.batch_size",
    "training_parameters.test_batch_size",
    "training_parameters.num_workers",
    "training_parameters.should_early_stop",
    "training_parameters.patience",
    "training_parameters.monitored_metric",
    "training_parameters.metric_minimize",
    "training_parameters.lr_scheduler",
    "training_parameters.lr_steps",
    "training_parameters.lr_epochs",
    "training_parameters.lr_ratio",
    "training_parameters.use_warmup",
    "training_parameters.warmup_factor",
    "training_parameters.warmup_iterations",
    "training_parameters.run_type",
    "training_parameters.save_dir",
    "training_parameters.resume",
    "training_parameters.resume_file",
    "training_parameters.restart",
    "training_parameters.load_pretrained",
    "training_parameters.pretrained_mapping.**",
    "training_parameters.gradient_accumulation_steps",
    "training_parameters.skip_nan_steps",
    "training_parameters.enable_amp",
    "training_parameters.logger_level",
    "training_parameters.local_rank",
    "training_parameters.distributed",
    "optimizer_attributes.type",
    "optimizer_attributes.params.lr",
    "optimizer_attributes.params.betas",
    "optimizer_attributes.params.eps",
    "optimizer_attributes.params.weight_decay",
    "model_attributes.univl.training_head_type",
    "model_attributes.univl.hidden_size",
    "model_attributes.univl.num_labels",
    "model_attributes.univl.encoder_lr_decay",
    "model_attributes.univl.with_moco",
    "model_attributes.univl.change_iter",
    "model_attributes.univl.change_rate",
    "model_attributes.univl.K",
    "model_attributes.univl.M",
    "model_attributes.univl.T",
    "model_attributes.univl.l1_temperature",
    "model_attributes.univl.hard_example_mining",
    "model_attributes.univl.re_sample_method",
    "model_attributes.univl.re_weight_method",
    "model_attributes.univl.max_clip_len",
    "model_attributes.univl.text_encoder.**",
    "model_attributes.univl.cross_encoder.**",
    "model_attributes.univl.image_encoder.**",
    "model_attributes.univl.pretraining_heads.transformer_mlm.**",
    "model_attributes.univl.pretraining_heads.itm.**",
    "model_attributes.univl.pretraining_heads.Vision_Word_Matching",
    "model_attributes.univl.pretraining_heads.MASK_All_IWords_info.**",
    "model_attributes.univl.pretraining_heads.text_encoder_mlm.**",
    "task_attributes.univl_task.dataset_attributes.*.data_root_dir",
    "task_attributes.univl_task.dataset_attributes.*.annotations.**",
    "task_attributes.univl_task.dataset_attributes.*.videos.**",
    "task_attributes.univl_task.dataset_attributes.*.images.**",
    "task_attributes.univl_task.dataset_attributes.*.asrs.**",
    "task_attributes.univl_task.dataset_attributes.*.use_videos",
    "task_attributes.univl_task.dataset_attributes.*.use_images",
    "task_attributes.univl_task.dataset_attributes.*.use_asrs",
    "task_attributes.univl_task.dataset_attributes.*.asr_sampler_config.**",
    "task_attributes.univl_task.dataset_attributes.*.train_ensemble_n_clips",
    "task_attributes.univl_task.dataset_attributes.*.test_ensembel_n_clips",
    "task_attributes.univl_task.dataset_attributes.*.num_frm",
    "task_attributes.univl_task.dataset_attributes.*.allow_video_miss",
    "task_attributes.univl_task.dataset_attributes.*.labels",
    "task_attributes.univl_task.dataset_attributes.*.processors.**",
    "task_attributes.univl_task.dataset_attributes.*.video_field_key",
    "task_attributes.univl_task.dataset_attributes.*.add_false_caption",
    "task_attributes.univl_task.dataset_attributes.*.annotations_loader",
    "task_attributes.univl_task.dataset_attributes.*.pretraining",
];

/// Where dataset nodes live.
pub const DATASETS_KEY: &str = "task_attributes.univl_task.dataset_attributes";

/// `training_parameters` keys that may differ between the nodes of a multi-node run.
const NODE_LOCAL_TRAINING_KEYS: &[&str] = &[
    "save_dir",
    "log_dir",
    "num_workers",
    "local_rank",
    "device",
    "resume_file",
    "logger_level",
    "distributed",
    "data_parallel",
];

/// Why a run could not be set up or failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A config key is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration is inconsistent.
    #[error("{key}: {message}")]
    Invalid {
        /// The key concerned.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The dataset could not be built.
    #[error(transparent)]
    Dataset(#[from] antmmf_data::dataset::DatasetError),
    /// The loader could not be built.
    #[error(transparent)]
    Loader(#[from] antmmf_data::loader::LoaderError),
    /// The model could not be built or loaded.
    #[error(transparent)]
    Model(#[from] antmmf_models::univl::UnivlError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] crate::trainer::TrainError),
    /// The multi-node group could not be joined or failed.
    #[error(transparent)]
    Distributed(#[from] DistributedError),
    /// The training precision (`enable_amp`) could not be set up.
    #[error(transparent)]
    Precision(#[from] crate::precision::PrecisionError),
    /// A checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] antmmf_core::checkpoint::CheckpointError),
    /// The run directory could not be written.
    #[error(transparent)]
    RunDir(#[from] antmmf_core::run_dir::RunDirError),
    /// Evaluation failed.
    #[error("evaluation: {0}")]
    Eval(String),
    /// Other I/O.
    #[error("{0}")]
    Io(String),
}

fn invalid(key: &str, message: impl std::fmt::Display) -> RunError {
    RunError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// Everything a run reads from the configuration, validated.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The head and loss settings.
    pub task: TaskSettings,
    /// Name of the dataset node.
    pub dataset_name: String,
    /// The dataset node.
    pub dataset: DatasetAttributes,
    /// The model configuration.
    pub model: UnivlConfig,
    /// `training_parameters`.
    pub training: TrainingParameters,
    /// The stages to run.
    pub run_type: RunType,
    /// The seed (resolved when `-1` or unset).
    pub seed: u64,
    /// The configured seed (`None` when unset), for the run folder name.
    pub configured_seed: Option<i64>,
    /// The config file's folder.
    pub config_dir: PathBuf,
    /// The config itself.
    pub config: Config,
}

impl RunPlan {
    /// Reads and validates everything a run needs from `config`.
    pub fn from_config(config: &Config) -> Result<Self, RunError> {
        let mut training = config.training_parameters()?;
        config.optimizer_attributes()?;
        let run_type = training.run_type()?;
        let head_name = config
            .get("model_attributes.univl.training_head_type")
            .and_then(Value::as_str)
            .unwrap_or("video_pretraining")
            .to_string();
        let head = TaskHead::parse(&head_name).ok_or_else(|| {
            invalid(
                "model_attributes.univl.training_head_type",
                format!(
                    "{head_name:?} is not a UniVL head: use video_pretraining, video_text_retrieval, video_text_classification or video_multi_choice_qa"
                ),
            )
        })?;
        let datasets = match config.get(DATASETS_KEY) {
            Some(Value::Mapping(m)) if !m.is_empty() => m.clone(),
            _ => return Err(invalid(DATASETS_KEY, "no dataset is configured")),
        };
        let (name, node) = datasets
            .iter()
            .next()
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.clone()))
            .ok_or_else(|| invalid(DATASETS_KEY, "no dataset is configured"))?;
        if datasets.len() > 1 {
            log::warn!(
                "{DATASETS_KEY}: {} datasets configured; using the first, `{name}`",
                datasets.len()
            );
        }
        let prefix = format!("{DATASETS_KEY}.{name}");
        // The declared defaults give every key of a dataset node, null when unset: the typed
        // view reads an absent key as its AntMMF default.
        let mut node = drop_nulls(node);
        if let Value::Mapping(m) = &mut node {
            for key in DATASET_KEYS_NOT_READ {
                m.remove(*key);
            }
        }
        let config_dir = config.config_dir().unwrap_or(Path::new("."));
        resolve_vocab_paths(&mut node, config_dir);
        let dataset =
            DatasetAttributes::from_deserializer(node, &prefix).map_err(|e| invalid(&prefix, e))?;
        let mut model = UnivlConfig::from_config(config)?;
        let univl = |k: &str| config.get(&format!("model_attributes.univl.{k}")).cloned();
        let labels = dataset.label_space(model.num_labels);
        if head == TaskHead::Classification && model.num_labels.is_none() {
            model.num_labels = labels.num_classes();
            if model.num_labels.is_none() {
                return Err(invalid(
                    "model_attributes.univl.num_labels",
                    "open QA needs num_labels or the dataset's labels list",
                ));
            }
        }
        let task = TaskSettings {
            head,
            hard_example_mining: univl("hard_example_mining")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            re_sample_method: univl("re_sample_method")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "nearliest".into()),
            re_weight_method: univl("re_weight_method").and_then(|v| {
                v.as_str()
                    .filter(|s| *s != "None" && !s.is_empty())
                    .map(str::to_string)
            }),
            // AntMMF's retrieval model (which pretraining reuses for L1) has MoCo on by default.
            with_moco: matches!(head, TaskHead::Pretrain | TaskHead::Retrieval)
                && univl("with_moco").and_then(|v| v.as_bool()).unwrap_or(true),
            moco_temperature: univl("T").and_then(|v| v.as_f64()).unwrap_or(0.05),
            l1_temperature: match univl("l1_temperature") {
                None | Some(Value::Null) => 1.0,
                Some(v) => v
                    .as_f64()
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .ok_or_else(|| {
                        invalid(
                            "model_attributes.univl.l1_temperature",
                            format!("must be a number > 0, got {v:?}"),
                        )
                    })?,
            },
            multi_label: false,
            snps3: crate::snps3::Snps3Settings::from_config(
                config,
                model.text_encoder.params.vocab_size,
            )
            .map_err(|(key, message)| invalid(&key, message))?,
            ..TaskSettings::default()
        };
        if !task.with_moco {
            model = model.with_moco_queues(None);
        }
        let seed = training.seed_policy().resolve();
        if training.seed == Some(-1) || training.seed.is_none() {
            log::info!("seed: {seed} (drawn; set training_parameters.seed {seed} to repeat)");
        }
        // MoCo's momentum encoders move by (1 - M) of the difference per step (AntMMF: M =
        // 0.9999), far below bf16's resolution (2^-8 of a value): in bf16 they would never move.
        if training.enable_amp && model.with_moco {
            log::warn!(
                "training_parameters.enable_amp with model_attributes.univl.with_moco: the \
                 momentum encoders' updates (1 - M = {:.0e} of a weight) are below bf16's \
                 resolution (4e-3), so this run trains in f32",
                1.0 - model.momentum
            );
            training.enable_amp = false;
        }
        if training.enable_amp {
            log::info!(
                "training_parameters.enable_amp: training in bf16 (parameters, activations, \
                 gradients and optimizer state; Burn 0.21 has no autocast)"
            );
        }
        // CNVid's hard-sample curriculum: its per-iteration draws derive from the run's seed.
        let task = TaskSettings {
            curriculum: HardSampleCurriculum::from_model_config(&model, seed)
                .map_err(|e| invalid(e.key, e.message))?,
            ..task
        };
        Ok(Self {
            task,
            dataset_name: name,
            dataset,
            model,
            training: training.clone(),
            run_type,
            seed,
            configured_seed: training.seed,
            config_dir: config
                .config_dir()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            config: config.clone(),
        })
    }

    /// This plan with another seed (a multi-node run takes node 0's on every node, so that a
    /// drawn seed gives every node the same data order and initial weights).
    pub fn with_seed(&self, seed: u64) -> Result<Self, RunError> {
        let mut plan = self.clone();
        plan.seed = seed;
        plan.task.curriculum = HardSampleCurriculum::from_model_config(&plan.model, seed)
            .map_err(|e| invalid(e.key, e.message))?;
        Ok(plan)
    }

    /// A fingerprint of what every node of a multi-node run must share: the merged
    /// configuration without the keys that may differ per machine (output, data and weight
    /// folders, loader threads, launcher leftovers).
    pub fn shared_config_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        fn strip(v: &mut Value) {
            if let Value::Mapping(m) = v {
                for key in ["data_root_dir", "model_path", "vocab_path"] {
                    m.remove(key);
                }
                for (_, child) in m.iter_mut() {
                    strip(child);
                }
            }
        }
        let mut tree = self.config.tree().clone();
        if let Some(Value::Mapping(t)) = tree.get_mut("training_parameters") {
            for key in NODE_LOCAL_TRAINING_KEYS {
                t.remove(*key);
            }
        }
        strip(&mut tree);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_yaml_ng::to_string(&tree)
            .unwrap_or_default()
            .hash(&mut h);
        h.finish()
    }

    /// The dataset kind of a split for this head.
    pub fn task_kind(&self, split: Split) -> TaskKind {
        match (self.task.head, split) {
            (TaskHead::Pretrain, _) => TaskKind::Pretrain,
            (TaskHead::Retrieval, Split::Train) => TaskKind::RetrievalTrain,
            (TaskHead::Retrieval, _) => TaskKind::RetrievalEval,
            (TaskHead::Classification, _) => TaskKind::Classification,
            (TaskHead::MultiChoice, _) => TaskKind::McQa,
        }
    }

    /// Builds a split's dataset.
    pub fn dataset(&self, split: Split) -> Result<VideoTextDataset, RunError> {
        self.dataset_shard(split, LineShard::WHOLE)
    }

    /// Builds a split's dataset for one data-parallel rank: with `annotations_loader:
    /// auto_split`, a pretraining training split reads only `shard`'s block of each annotation
    /// file.
    pub fn dataset_shard(
        &self,
        split: Split,
        shard: LineShard,
    ) -> Result<VideoTextDataset, RunError> {
        let options = DatasetOptions {
            prefix: format!("{DATASETS_KEY}.{}", self.dataset_name),
            num_labels: self.model.num_labels,
            seed: self.seed,
            shard,
            ..DatasetOptions::default()
        };
        Ok(VideoTextDataset::with_options(
            &self.dataset,
            split,
            &self.config_dir,
            self.task_kind(split),
            &options,
        )?)
    }

    /// Whether the dataset configures annotations for `split`.
    pub fn has_split(&self, split: Split) -> bool {
        let key = match split {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        };
        let path = format!("{DATASETS_KEY}.{}.annotations.{key}", self.dataset_name);
        !matches!(self.config.get(&path), None | Some(Value::Null))
    }

    /// The run directory.
    pub fn run_dir(&self) -> RunDir {
        RunDir::for_config(
            &self.config,
            Path::new(&self.training.save_dir),
            self.configured_seed.filter(|s| *s >= 0),
        )
    }

    /// The optimizer settings, with AntMMF's `encoder_lr_decay` for the pretrained encoders in
    /// retrieval and MC-QA fine-tuning.
    pub fn optimizer_config(&self) -> Result<AntmmfOptimizerConfig, RunError> {
        let o = self.config.optimizer_attributes()?;
        let decay = self
            .config
            .get("model_attributes.univl.encoder_lr_decay")
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        let lr_rules = if matches!(self.task.head, TaskHead::Retrieval | TaskHead::MultiChoice)
            && decay != 1.0
        {
            vec![LrGroupRule {
                prefixes: vec![
                    "univl.bert.embeddings".into(),
                    "univl.bert.encoder".into(),
                    "univl.bert.pooler".into(),
                    "univl.visual.backbone".into(),
                ],
                lr_factor: decay,
            }]
        } else {
            Vec::new()
        };
        Ok(AntmmfOptimizerConfig {
            beta_1: o.params.betas[0] as f32,
            beta_2: o.params.betas[1] as f32,
            epsilon: o.params.eps as f32,
            weight_decay: o.params.weight_decay as f32,
            lr_rules,
            max_grad_norm: if self.training.clip_gradients {
                self.training.max_grad_l2_norm
            } else {
                None
            },
        })
    }

    /// The LR schedule for `batches_per_epoch` batches per epoch.
    pub fn schedule(&self, batches_per_epoch: usize) -> Result<AntMmfLrSchedule, RunError> {
        let o = self.config.optimizer_attributes()?;
        let t = &self.training;
        let cfg = LrScheduleConfig {
            lr_scheduler: t.lr_scheduler,
            lr_steps: t.lr_steps.iter().map(|v| *v as usize).collect(),
            lr_epochs: t.lr_epochs.iter().map(|v| *v as usize).collect(),
            lr_ratio: t.lr_ratio,
            use_warmup: t.use_warmup,
            warmup_factor: t.warmup_factor,
            warmup_iterations: t.warmup_iterations as usize,
        };
        AntMmfLrSchedule::new(o.params.lr, &cfg, batches_per_epoch.max(1))
            .map(|s| s.with_batches_per_update(t.gradient_accumulation_steps.max(1) as usize))
            .map_err(|e| invalid("training_parameters", e))
    }

    /// The loop settings.
    pub fn trainer_settings(&self, validate: bool) -> TrainerSettings {
        let t = &self.training;
        TrainerSettings {
            max_iterations: t.max_iterations,
            max_epochs: t.max_epochs,
            log_interval: t.log_interval.max(1) as u64,
            snapshot_interval: t.snapshot_interval.max(1) as u64,
            max_ckpt_num: t.max_ckpt_num.map(|n| n.max(1) as usize),
            monitored_metric: t.monitored_metric.clone(),
            metric_minimize: t.metric_minimize,
            should_early_stop: t.should_early_stop,
            patience: t.patience.max(0) as u64,
            grad_accumulation: t.gradient_accumulation_steps.max(1) as usize,
            skip_nan_steps: t.skip_nan_steps,
            seed: self.seed,
            validate,
        }
    }
}

/// Dataset keys AntMMF configs carry that no UniVL video flow reads (region features and OCR
/// belong to the ROI models; `caption_processor` at the dataset level is an anchor target in
/// AntMMF's configs, the processor actually used is `processors.caption_processor`).
const DATASET_KEYS_NOT_READ: &[&str] = &[
    "use_features",
    "features",
    "only_features_info",
    "use_ocrs",
    "ocrs",
    "caption_processor",
];

/// A relative `tokenizer_config.params.vocab_path` of any processor that exists relative to the
/// config file's folder is made relative to it (as `model_path`s are).
fn resolve_vocab_paths(node: &mut Value, config_dir: &Path) {
    let Some(Value::Mapping(processors)) = node.get_mut("processors") else {
        return;
    };
    for (_, proc_) in processors.iter_mut() {
        let slot = proc_
            .get_mut("params")
            .and_then(|p| p.get_mut("tokenizer_config"))
            .and_then(|t| t.get_mut("params"))
            .and_then(|p| p.get_mut("vocab_path"));
        if let Some(Value::String(path)) = slot {
            let candidate = config_dir.join(&*path);
            if Path::new(path.as_str()).is_relative() && candidate.exists() {
                *path = candidate.to_string_lossy().into_owned();
            }
        }
    }
}

/// Removes mapping entries whose value is null, recursively.
fn drop_nulls(value: Value) -> Value {
    match value {
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

impl<B: Backend> ResumableLoader<VideoTextBatch<B>> for DeterministicLoader<B> {
    fn batches_per_epoch(&self) -> usize {
        DeterministicLoader::batches_per_epoch(self)
    }

    fn iter_from(
        &self,
        epoch: usize,
        batch: usize,
    ) -> Box<dyn Iterator<Item = VideoTextBatch<B>> + '_> {
        Box::new(DeterministicLoader::iter_from(self, epoch as u64, batch))
    }
}

pub use crate::eval::{Evaluator, Metrics};

/// Validation during training.
struct Hooks<B: AutodiffBackend> {
    evaluator: Option<Evaluator<B::InnerBackend>>,
}

impl<B: AutodiffBackend> TaskHooks<B, UnivlTask<B>> for Hooks<B> {
    fn after_step(&self, model: UnivlTask<B>, _iteration: u64) -> UnivlTask<B> {
        model.momentum_update()
    }

    fn validate(
        &self,
        model: &<UnivlTask<B> as AutodiffModule<B>>::InnerModule,
    ) -> Result<BTreeMap<String, f64>, String> {
        match &self.evaluator {
            Some(e) => e.evaluate(&model.univl).map_err(|e| e.to_string()),
            None => Ok(BTreeMap::new()),
        }
    }
}

/// What `train` reports.
#[derive(Debug)]
pub struct RunReport {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The training summary, when training ran.
    pub train: Option<TrainSummary>,
    /// Final evaluations by split (`val`, `test`).
    pub evaluations: BTreeMap<String, Metrics>,
    /// `(node rank, nodes)` in a multi-node run (node 0 writes the run directory and
    /// evaluates; the others only train).
    pub node: Option<(usize, usize)>,
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::<FullPrecisionSettings>::default()
}

/// Loads model weights from one of our checkpoints.
pub fn load_weights<B: Backend>(
    model: UnivlTask<B>,
    path: &Path,
    device: &B::Device,
) -> Result<UnivlTask<B>, RunError> {
    let ckpt = Checkpoint::load(path)?;
    let bytes = ckpt.require("model", path)?.to_vec();
    let record = recorder()
        .load(bytes, device)
        .map_err(|e| RunError::Io(format!("{}: cannot decode the model: {e}", path.display())))?;
    Ok(model.load_record(record))
}

/// Whether `path` is a checkpoint written by antmmf-rs (its container magic), as opposed to a
/// PyTorch AntMMF checkpoint.
pub fn is_native_checkpoint(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|_| &magic == b"ANTMMFCK")
        .unwrap_or(false)
}

/// One `training_parameters.pretrained_mapping` entry and what it copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingCopies {
    /// The checkpoint name prefix (the entry's key).
    pub from: String,
    /// The model name prefix (the entry's value).
    pub to: String,
    /// The model parameters this entry filled (module paths, sorted).
    pub copied: Vec<String>,
}

/// What [`load_resume_weights`] did.
#[derive(Debug, Clone, Default)]
pub struct WeightsReport {
    /// The checkpoint's tensors: loaded (by name or through the mapping), missing, unexpected,
    /// and (antmmf-rs checkpoints) shape mismatches skipped.
    pub load: LoadReport,
    /// The mapping entries applied, in key order (none unless `load_pretrained`).
    pub mapped: Vec<MappingCopies>,
    /// The warnings logged while loading.
    pub warnings: Vec<String>,
}

/// Warnings about `load_pretrained` / `pretrained_mapping` that the configuration alone shows:
/// cases where AntMMF applies no mapping, silently.
pub fn pretrained_mapping_warnings(t: &TrainingParameters) -> Vec<String> {
    let has_mapping = !t.pretrained_mapping.is_empty();
    let warning = match (&t.resume_file, t.load_pretrained) {
        (None, true) => Some(
            "training_parameters.load_pretrained is True but training_parameters.resume_file is \
             not set: pretrained_mapping has no checkpoint to copy from"
                .to_string(),
        ),
        (Some(_), true) if !has_mapping => Some(
            "training_parameters.load_pretrained is True but training_parameters.pretrained_mapping \
             is empty: resume_file loads by name only"
                .to_string(),
        ),
        (Some(file), true) if !t.restart && is_native_checkpoint(Path::new(file)) => Some(format!(
            "training_parameters.resume_file {file} resumes its run whole (restart False): \
             pretrained_mapping is not applied; set training_parameters.restart True to start \
             from its weights through the mapping"
        )),
        (Some(_), false) if has_mapping => Some(
            "training_parameters.pretrained_mapping is set but load_pretrained is False: the \
             mapping is not applied"
                .to_string(),
        ),
        _ => None,
    };
    warning.into_iter().collect()
}

/// Loads the weights of `path` into `model` as AntMMF's `load_model_weights` does: every
/// checkpoint tensor whose name is a model parameter, then, when `training.load_pretrained`, each
/// `pretrained_mapping` entry `key: value` copies every tensor whose name contains `key.` into
/// the parameter named with `value.` in its place (overwriting what loaded by name).
///
/// `path` is an antmmf-rs checkpoint, whose names are module paths (`bert.encoder.layer.0....`,
/// as in load reports; tensors whose shape differs from the parameter's are skipped with a
/// warning), or an AntMMF PyTorch file, whose names are AntMMF's: leading `module.`s are dropped
/// from names and mapping entries alike, and the mapped names are then translated by
/// [`antmmf_univl_keys`] (shape mismatches are errors). An entry that copies nothing is a warning.
pub fn load_resume_weights<B: Backend>(
    model: UnivlTask<B>,
    path: &Path,
    training: &TrainingParameters,
    device: &B::Device,
) -> Result<(UnivlTask<B>, WeightsReport), RunError> {
    let mapping: Vec<(String, String)> = if training.load_pretrained {
        training
            .pretrained_mapping
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let (model, report) = if is_native_checkpoint(path) {
        load_native_by_name(model, path, &mapping, device)?
    } else {
        load_foreign(model, path, &mapping)?
    };
    for m in report.mapped.iter().filter(|m| !m.copied.is_empty()) {
        log::info!(
            "pretrained_mapping {}: {}: copied {} tensors",
            m.from,
            m.to,
            m.copied.len()
        );
    }
    for w in &report.warnings {
        log::warn!("{w}");
    }
    Ok((model, report))
}

/// AntMMF's mapping rule for one tensor name: a name containing `from` (a prefix ending in `.`)
/// is copied to the name with every `from` replaced by `to`; an empty `from` (AntMMF's bare
/// `module`, whose `module.` is dropped from names here) puts `to` before every name.
fn mapped_name(name: &str, from: &str, to: &str) -> Option<String> {
    if from.is_empty() {
        return Some(format!("{to}{name}"));
    }
    name.contains(from).then(|| name.replace(from, to))
}

/// A mapping key or value in the name space of an opened AntMMF file: `.` appended, leading
/// `module.`s (DDP) dropped as [`WeightFile::open`] drops them from tensor names.
fn torch_prefix(entry: &str) -> String {
    let mut s = format!("{entry}.");
    while let Some(rest) = s.strip_prefix("module.") {
        s = rest.to_string();
    }
    s
}

/// The name under which `path` was loaded, if it was (norms load PyTorch `weight`/`bias` into
/// Burn's `gamma`/`beta`).
fn loaded_as(loaded: &HashSet<&str>, path: &str) -> Option<String> {
    if loaded.contains(path) {
        return Some(path.to_string());
    }
    [(".weight", ".gamma"), (".bias", ".beta")]
        .iter()
        .filter_map(|(torch, burn)| path.strip_suffix(torch).map(|stem| format!("{stem}{burn}")))
        .find(|alt| loaded.contains(alt.as_str()))
}

/// One mapping entry's result: the parameters it `copied` (sorted, each once), with the warning
/// (plus `hint`) when it copied nothing.
fn mapping_copies(
    from: &str,
    to: &str,
    mut copied: Vec<String>,
    path: &Path,
    entry: &[String],
    hint: &str,
    warnings: &mut Vec<String>,
) -> MappingCopies {
    copied.sort();
    copied.dedup();
    if copied.is_empty() {
        warnings.push(nothing_copied(from, to, path, entry, hint));
    }
    MappingCopies {
        from: from.to_string(),
        to: to.to_string(),
        copied,
    }
}

/// The warning for a mapping entry that copied nothing.
fn nothing_copied(from: &str, to: &str, path: &Path, mapped: &[String], hint: &str) -> String {
    let why = match mapped.first() {
        None => format!("no tensor name contains `{from}.`{hint}"),
        Some(first) => format!(
            "none of the {} names it maps to (`{first}`, ...) is a parameter of this model",
            mapped.len()
        ),
    };
    format!(
        "training_parameters.pretrained_mapping entry `{from}: {to}` copied no tensor from {}: {why}",
        path.display()
    )
}

/// An AntMMF PyTorch checkpoint through [`antmmf_univl_keys`], the mapping applied to its names
/// first.
fn load_foreign<B: Backend>(
    mut model: UnivlTask<B>,
    path: &Path,
    mapping: &[(String, String)],
) -> Result<(UnivlTask<B>, WeightsReport), RunError> {
    let file_path = if path.is_dir() {
        find_weights_file(path).map_err(UnivlError::from)?
    } else {
        path.to_path_buf()
    };
    let mut file = WeightFile::open(&file_path).map_err(UnivlError::from)?;
    let names: Vec<String> = file.keys().map(str::to_string).collect();
    let mut targets = Vec::with_capacity(mapping.len());
    for (from, to) in mapping {
        let (from, to) = (torch_prefix(from), torch_prefix(to));
        let mut entry = Vec::new();
        for name in &names {
            if let Some(target) = mapped_name(name, &from, &to) {
                file.alias(name, &target);
                entry.push(target);
            }
        }
        targets.push(entry);
    }
    let (univl, load) = model
        .univl
        .load_antmmf_weights(&file, &LoadOptions::allow_missing())?;
    model.univl = univl;
    let keys = antmmf_univl_keys();
    let loaded: HashSet<&str> = load.loaded.iter().map(String::as_str).collect();
    let mut mapped = Vec::with_capacity(mapping.len());
    let mut warnings = Vec::new();
    for ((from, to), entry) in mapping.iter().zip(&targets) {
        let module_paths = keys
            .translate(entry.iter().map(String::as_str))
            .map_err(UnivlError::from)?;
        let copied: Vec<String> = module_paths
            .iter()
            .flatten()
            .filter_map(|p| loaded_as(&loaded, p))
            .collect();
        mapped.push(mapping_copies(
            from,
            to,
            copied,
            &file_path,
            entry,
            "",
            &mut warnings,
        ));
    }
    Ok((
        model,
        WeightsReport {
            load,
            mapped,
            warnings,
        },
    ))
}

/// `target` with the optional parts a record of the same model type holds switched on (`clf`,
/// `img_proj`, MoCo), the record then loaded into it: the checkpoint's tensors under their
/// module paths. Layer lists keep the shorter of the two lengths.
fn record_as_module<B: Backend>(
    target: &Univl<B>,
    record: <Univl<B> as Module<B>>::Record,
    path: &Path,
    device: &B::Device,
) -> Result<Univl<B>, RunError> {
    use antmmf_models::univl::visual::VisualBackboneRecord;
    // Other backbones are told apart by the unwind guard below.
    #[allow(unreachable_patterns)]
    let ours = match &target.visual.backbone {
        VisualBackbone::Swin(_) => "a Video Swin",
        VisualBackbone::Clip(_) => "a CLIP",
        _ => "another",
    };
    #[allow(unreachable_patterns)]
    let theirs = match &record.visual.backbone {
        VisualBackboneRecord::Swin(_) => "a Video Swin",
        VisualBackboneRecord::Clip(_) => "a CLIP",
        _ => "another",
    };
    if ours != theirs {
        return Err(invalid(
            "training_parameters.resume_file",
            format!(
                "{} holds {theirs} visual backbone, the configured model {ours} one",
                path.display()
            ),
        ));
    }
    let mut source = target.clone();
    if record.clf.is_some() && source.clf.is_none() {
        source.clf = Some(LinearConfig::new(1, 1).init(device));
    }
    if record.img_proj.is_some() && source.img_proj.is_none() {
        source.img_proj = Some(Param::from_tensor(Tensor::zeros([1, 1], device)));
    }
    if record.moco.is_some() && source.moco.is_none() {
        source.moco = Some(Moco {
            text_key: source.bert.clone(),
            video_key: source.visual.clone(),
            text_queue: RunningState::new(Tensor::zeros([1, 1], device)),
            video_queue: RunningState::new(Tensor::zeros([1, 1], device)),
            text_queue_ptr: RunningState::new(Tensor::zeros([1], device)),
            video_queue_ptr: RunningState::new(Tensor::zeros([1], device)),
        });
    }
    // A mismatch the checks above miss would panic inside Burn: report it as this file's.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        source.load_record(record)
    }))
    .map_err(|_| {
        RunError::Io(format!(
            "{}: the model record does not fit the configured model",
            path.display()
        ))
    })
}

/// A snapshot under another module path.
fn renamed(snapshot: &TensorSnapshot, path: &str) -> TensorSnapshot {
    let mut snapshot = snapshot.clone();
    snapshot.path_stack = Some(path.split('.').map(str::to_string).collect());
    snapshot
}

/// An antmmf-rs checkpoint's model loaded by module path (AntMMF's `_load_state_dict`), the
/// mapping applied on module paths.
fn load_native_by_name<B: Backend>(
    mut model: UnivlTask<B>,
    path: &Path,
    mapping: &[(String, String)],
    device: &B::Device,
) -> Result<(UnivlTask<B>, WeightsReport), RunError> {
    let ckpt = Checkpoint::load(path)?;
    let bytes = ckpt.require("model", path)?.to_vec();
    let record: <UnivlTask<B> as Module<B>>::Record = recorder()
        .load(bytes, device)
        .map_err(|e| RunError::Io(format!("{}: cannot decode the model: {e}", path.display())))?;
    let source = record_as_module(&model.univl, record.univl, path, device)?;
    let originals: BTreeMap<String, TensorSnapshot> = source
        .collect(None, None, false)
        .into_iter()
        .map(|s| (s.full_path(), s))
        .collect();
    let mut copies = BTreeMap::new();
    let mut targets = Vec::with_capacity(mapping.len());
    for (from, to) in mapping {
        let (from, to) = (format!("{from}."), format!("{to}."));
        let mut entry = Vec::new();
        for (name, snapshot) in &originals {
            if let Some(target) = mapped_name(name, &from, &to) {
                copies.insert(target.clone(), renamed(snapshot, &target));
                entry.push(target);
            }
        }
        targets.push(entry);
    }
    // By name first, then the copies over it (a copy that does not fit leaves the by-name value).
    let by_name = model
        .univl
        .apply(originals.into_values().collect(), None, None, false);
    let copied = model
        .univl
        .apply(copies.into_values().collect(), None, None, false);
    let mut loaded: BTreeSet<String> = by_name.applied.iter().cloned().collect();
    loaded.extend(copied.applied.iter().cloned());
    let mut load = LoadReport {
        source: path.to_path_buf(),
        family: "antmmf-rs".into(),
        missing: by_name
            .missing
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| !loaded.contains(p))
            .collect(),
        unexpected: by_name.unused.clone(),
        loaded: loaded.into_iter().collect(),
        ..Default::default()
    };
    for error in by_name.errors.iter().chain(&copied.errors) {
        match error {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => load.shape_mismatched.push(ShapeMismatch {
                key: key.clone(),
                expected: expected.to_vec(),
                found: found.to_vec(),
            }),
            ApplyError::DTypeMismatch { path: key, .. }
            | ApplyError::AdapterError { path: key, .. }
            | ApplyError::LoadError { path: key, .. } => {
                return Err(RunError::Io(format!(
                    "{}: tensor {key}: {error}",
                    path.display()
                )));
            }
        }
    }
    log::info!("{load}");
    let mut warnings = Vec::new();
    if !load.shape_mismatched.is_empty() {
        let shown: Vec<String> = load
            .shape_mismatched
            .iter()
            .take(8)
            .map(ToString::to_string)
            .collect();
        warnings.push(format!(
            "{}: {} tensors skipped, their shapes differ from the model's: {}",
            path.display(),
            load.shape_mismatched.len(),
            shown.join("; ")
        ));
    }
    // As for AntMMF files: MoCo key encoders the checkpoint lacks restart from the loaded query
    // encoders.
    let keys_loaded = load
        .loaded
        .iter()
        .any(|p| p.starts_with("moco.text_key.") || p.starts_with("moco.video_key."));
    if model.univl.moco.is_some() && !keys_loaded {
        model.univl = model.univl.momentum_update(0.0);
    }
    let applied: HashSet<&str> = copied.applied.iter().map(String::as_str).collect();
    let mut mapped = Vec::with_capacity(mapping.len());
    for ((from, to), entry) in mapping.iter().zip(&targets) {
        let copied: Vec<String> = entry
            .iter()
            .filter(|t| applied.contains(t.as_str()))
            .cloned()
            .collect();
        let hint = " (antmmf-rs checkpoints name tensors by module path, e.g. \
                    `bert.encoder.layer.0.attention.query.weight`, and tensors of the same \
                    path already load by name)";
        mapped.push(mapping_copies(
            from,
            to,
            copied,
            path,
            entry,
            hint,
            &mut warnings,
        ));
    }
    Ok((
        model,
        WeightsReport {
            load,
            mapped,
            warnings,
        },
    ))
}

/// The `[CLS]`, `[SEP]` and `[MASK]` ids of a vocabulary (BERT's defaults where absent).
pub fn special_ids(
    tokenizer: &antmmf_data::tokenizer::BertTokenizer,
) -> crate::univl_task::SpecialIds {
    let d = crate::univl_task::SpecialIds::default();
    let id = |t: &str, default: i64| {
        tokenizer
            .token_to_id(t)
            .map(|i| i as i64)
            .unwrap_or(default)
    };
    crate::univl_task::SpecialIds {
        cls: id("[CLS]", d.cls),
        sep: id("[SEP]", d.sep),
        mask: id("[MASK]", d.mask),
    }
}

/// Builds the model of a plan (pretrained weights when configured).
pub fn build_model<B: Backend>(
    plan: &RunPlan,
    device: &B::Device,
) -> Result<UnivlTask<B>, RunError> {
    B::seed(device, plan.seed);
    let (univl, reports) = plan.model.init_pretrained::<B>(device)?;
    for r in reports {
        log::info!("{r}");
    }
    // Pretrained files are read as f32; with enable_amp every parameter trains in bf16.
    let univl = if plan.training.enable_amp {
        crate::precision::cast_float_params(univl, burn::tensor::FloatDType::BF16)
    } else {
        univl
    };
    Ok(UnivlTask {
        univl,
        settings: plan.task.clone(),
    })
}

/// What a run needs beyond its plan.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// This process's place in a multi-node data-parallel run (`None`, or one node: alone).
    pub launch: Option<NodeLaunch>,
}

/// Runs the stages of `run_type`: training (with validation at every snapshot when a val split
/// exists), then the final evaluations (`val`, `inference` on test). Writes `metrics.json`.
pub fn run<B: AutodiffBackend>(plan: &RunPlan, device: B::Device) -> Result<RunReport, RunError> {
    run_with::<B>(plan, device, &RunOptions::default())
}

/// [`run`] as one node of a multi-node run when `options.launch` asks for several nodes: the
/// node joins the others through burn-collective (cargo feature `collective`; without it, an
/// error naming the feature), checks that they run the same job, trains on its shard of every
/// global batch with gradients averaged over the nodes, and leaves the run directory, the
/// validation and the final evaluations to node 0.
pub fn run_with<B: AutodiffBackend>(
    plan: &RunPlan,
    device: B::Device,
    options: &RunOptions,
) -> Result<RunReport, RunError> {
    // Before any tensor exists on the device: its default float dtype is fixed at first use.
    crate::precision::set_training_precision::<B>(&device, plan.training.enable_amp)?;
    let Some(launch) = options.launch.as_ref().filter(|l| l.nodes > 1) else {
        return run_in_group::<B>(plan, device, None);
    };
    let batch = plan.training.batch_size;
    if plan.run_type.train && batch % launch.nodes as i64 != 0 {
        return Err(invalid(
            "training_parameters.batch_size",
            format!(
                "the global batch size {batch} does not split evenly over {} nodes",
                launch.nodes
            ),
        ));
    }
    let group = join_group::<B>(launch, &device)?;
    let g: &dyn AllReduce<B::InnerBackend> = group.as_ref();
    crate::distributed::ensure_agreement(
        g,
        "the configuration",
        plan.shared_config_fingerprint(),
        |v| format!("fingerprint {v:016x}"),
        "start every node with the same config and overrides (only folders, num_workers and \
         the launch flags may differ)",
        &device,
    )?;
    // A drawn seed (`seed: null` or -1) differs per process: node 0's is everyone's.
    let seeds = all_gather_u64(g, plan.seed, &device)?;
    let shared = seeds.first().copied().unwrap_or(plan.seed);
    let plan = if shared == plan.seed {
        plan.clone()
    } else {
        log::info!("seed: {shared} (node 0's)");
        plan.with_seed(shared)?
    };
    run_in_group::<B>(&plan, device, Some(group))
}

/// Joins the group of a multi-node launch.
#[cfg(feature = "collective")]
fn join_group<B: AutodiffBackend>(
    launch: &NodeLaunch,
    device: &B::Device,
) -> Result<Arc<dyn AllReduce<B::InnerBackend>>, RunError> {
    let group = crate::collective::CollectiveGroup::<B::InnerBackend>::join(launch, device)?;
    Ok(Arc::new(group))
}

/// Without the collective engine, a multi-node launch is an error naming the cargo feature.
#[cfg(not(feature = "collective"))]
fn join_group<B: AutodiffBackend>(
    launch: &NodeLaunch,
    _device: &B::Device,
) -> Result<Arc<dyn AllReduce<B::InnerBackend>>, RunError> {
    Err(DistributedError::NotCompiled {
        nodes: launch.nodes,
    }
    .into())
}

/// Caps a loader's epochs at `batches` batches (data-parallel ranks must take the same number
/// of steps; `auto_split` shards can differ by an item).
struct CappedLoader<L> {
    inner: L,
    batches: usize,
}

impl<B: Backend> ResumableLoader<VideoTextBatch<B>> for CappedLoader<DeterministicLoader<B>> {
    fn batches_per_epoch(&self) -> usize {
        self.batches
    }

    fn iter_from(
        &self,
        epoch: usize,
        batch: usize,
    ) -> Box<dyn Iterator<Item = VideoTextBatch<B>> + '_> {
        Box::new(
            DeterministicLoader::iter_from(&self.inner, epoch as u64, batch)
                .take(self.batches.saturating_sub(batch)),
        )
    }
}

/// The run of [`run_with`], alone or as member `group.rank()` of a data-parallel group.
fn run_in_group<B: AutodiffBackend>(
    plan: &RunPlan,
    device: B::Device,
    group: Option<Arc<dyn AllReduce<B::InnerBackend>>>,
) -> Result<RunReport, RunError> {
    let node = group.as_ref().map(|g| (g.rank(), g.world_size()));
    // Node 0 alone writes the run directory (the others would race on the same files).
    let main = node.is_none_or(|(rank, _)| rank == 0);
    let run = plan.run_dir();
    if main {
        run.create(&plan.config)?;
        for dir in [run.root().to_path_buf(), run.models_dir(), run.logs_dir()] {
            for stale in antmmf_core::fsutil::remove_stale_temporaries(&dir) {
                log::warn!("removed {} (left by a killed write)", stale.display());
            }
        }
        let _ = antmmf_core::logging::log_to_file(&run.logs_dir().join("train.log"));
        log::info!("run directory: {}", run.root().display());
    } else if let Some((rank, nodes)) = node {
        log::info!(
            "node {rank} of {nodes}: training only; node 0 writes {} and validates",
            run.root().display()
        );
    }
    let t = &plan.training;
    let eval_loader =
        |split: Split| -> Result<Option<DeterministicLoader<B::InnerBackend>>, RunError> {
            if !plan.has_split(split) {
                return Ok(None);
            }
            let ds = plan.dataset(split)?;
            Ok(Some(DeterministicLoader::new(
                Arc::new(ds),
                LoaderConfig::eval(
                    t.eval_batch_size(),
                    t.num_workers.max(0) as usize,
                    plan.seed,
                ),
                device.clone(),
            )?))
        };
    let evaluator =
        |split: Split, name: &str| -> Result<Option<Evaluator<B::InnerBackend>>, RunError> {
            Ok(eval_loader(split)?.map(|loader| Evaluator {
                loader,
                task: plan.task.clone(),
                split: name.into(),
                l2_topk: Some(50),
                devices: Vec::new(),
            }))
        };
    let mut model = build_model::<B>(plan, &device)?;
    let mut start = StartFrom::Scratch;
    // Whether `model` holds resume_file's weights (by name and through the mapping).
    let mut weights_loaded = false;
    for warning in pretrained_mapping_warnings(t) {
        log::warn!("{warning}");
    }
    if let Some(file) = &t.resume_file {
        let path = PathBuf::from(file);
        if !path.exists() {
            return Err(invalid(
                "training_parameters.resume_file",
                format!("{} does not exist", path.display()),
            ));
        }
        if !is_native_checkpoint(&path) {
            // An AntMMF (PyTorch) checkpoint: its weights, through AntMMF's key names.
            if !t.restart {
                log::warn!(
                    "{} is not an antmmf-rs checkpoint: only its weights load (a full resume needs a checkpoint written by antmmf-rs)",
                    path.display()
                );
            }
            model = load_resume_weights(model, &path, t, &device)?.0;
            weights_loaded = true;
        } else if t.restart {
            model = load_resume_weights(model, &path, t, &device)?.0;
            weights_loaded = true;
            log::info!("loaded weights from {} (restart True)", path.display());
        } else {
            start = StartFrom::Resume(path);
        }
    } else if t.resume
        && let Some(path) = latest_good_checkpoint(&run)
    {
        start = StartFrom::Resume(path);
    }
    let mut summary = None;
    let mut trained: Option<UnivlTask<B::InnerBackend>> = None;
    if plan.run_type.train {
        let shard = match node {
            Some((rank, nodes)) => LineShard::new(rank, nodes)
                .map_err(|e| RunError::Dataset(antmmf_data::dataset::DatasetError::from(e)))?,
            None => LineShard::WHOLE,
        };
        let ds = plan.dataset_shard(Split::Train, shard)?;
        model.settings.special_ids = special_ids(ds.caption_processor().tokenizer());
        // Token ids index the word embeddings: a vocabulary larger than the table would read
        // past it (a panic on the CPU backends, garbage on the GPU ones).
        let vocab = ds.caption_processor().tokenizer().vocab_size();
        let rows = model.univl.bert.embeddings.word_embeddings.weight.dims()[0];
        if vocab > rows {
            return Err(invalid(
                "model_attributes.univl.text_encoder.params.vocab_size",
                format!(
                    "the text encoder has {rows} word embeddings but the caption processor's \
                     vocabulary has {vocab} tokens: set vocab_size to at least {vocab} (or use \
                     the vocabulary the weights were trained with)"
                ),
            ));
        }
        // `batch_size` is the global batch (AntMMF's semantics): each node takes its share.
        let nodes = node.map_or(1, |(_, n)| n);
        let local_batch = t.batch_size as usize / nodes;
        let already_sharded = ds.annotation_shard().is_some();
        let mut loader = DeterministicLoader::<B>::new(
            Arc::new(ds),
            LoaderConfig::train(local_batch, t.num_workers.max(0) as usize, plan.seed),
            device.clone(),
        )?;
        if let Some((rank, nodes)) = node
            && !already_sharded
        {
            loader = loader.with_shard(rank, nodes)?;
        }
        let mut per_epoch = loader.batches_per_epoch();
        if let Some(g) = &group {
            // Every node takes as many steps per epoch as the smallest shard allows.
            let all = all_gather_u64(g.as_ref(), per_epoch as u64, &device)?;
            per_epoch = all.iter().copied().min().unwrap_or(0) as usize;
        }
        if per_epoch == 0 {
            return Err(invalid(
                "training_parameters.batch_size",
                match node {
                    None => format!(
                        "{} exceeds the {} training items: no full batch",
                        t.batch_size,
                        loader.items_per_epoch()
                    ),
                    Some((_, nodes)) => format!(
                        "{} over {nodes} nodes ({local_batch} per node) leaves some node no full \
                         batch of its share of the training items (this node has {})",
                        t.batch_size,
                        loader.items_per_epoch()
                    ),
                },
            ));
        }
        let schedule = plan.schedule(per_epoch)?;
        let optim = AntmmfOptimizer::new(&plan.optimizer_config()?, &model);
        // Validation during training runs on node 0 only (the others wait at the snapshot).
        let val = if main {
            evaluator(Split::Val, "val")?
        } else {
            None
        };
        let validate = val.is_some();
        let hooks = Hooks::<B> { evaluator: val };
        let (inner, s) = launch_in_group(
            model.clone(),
            optim,
            schedule,
            device.clone(),
            TrainRun {
                loader: Arc::new(CappedLoader {
                    inner: loader,
                    batches: per_epoch,
                }),
                hooks: Arc::new(hooks),
                settings: plan.trainer_settings(validate),
                run: run.clone(),
                start,
            },
            group.clone(),
        )?;
        trained = Some(inner);
        summary = Some(s);
    }
    if !main {
        return Ok(RunReport {
            run_dir: run.root().to_path_buf(),
            train: summary,
            evaluations: BTreeMap::new(),
            node,
        });
    }
    let final_model = match trained {
        Some(m) => m,
        None => model.valid(),
    };
    let mut evaluations = BTreeMap::new();
    for (wanted, split, name) in [
        (plan.run_type.val, Split::Val, "val"),
        (
            plan.run_type.inference && !plan.run_type.predict,
            Split::Test,
            "test",
        ),
    ] {
        if !wanted {
            continue;
        }
        match evaluator(split, name)? {
            Some(e) => {
                let m = e.evaluate(&final_model.univl)?;
                let shown: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                log::info!("{name}: {}", shown.join(", "));
                evaluations.insert(name.to_string(), m);
            }
            None => {
                log::warn!("run_type asks for {name} but the dataset has no {name} annotations")
            }
        }
    }
    if plan.run_type.predict {
        // `predict`: the test split's metrics plus `predictions.jsonl` (and AntMMF's report file
        // with `evalai_inference`), as antmmf-eval writes them, from the weights just trained or
        // loaded.
        let checkpoint = match (&summary, &t.resume_file) {
            (Some(s), _) => Some(s.final_checkpoint.clone()),
            // Weights loaded by name / through pretrained_mapping (or from an AntMMF file): the
            // evaluation reads them back from the run directory.
            (None, Some(_)) if weights_loaded => {
                let path = run.root().join("loaded_weights.ckpt");
                let bytes = recorder()
                    .record(final_model.clone().into_record(), ())
                    .map_err(|e| RunError::Io(format!("cannot serialize the model: {e}")))?;
                Checkpoint::new(serde_json::json!({}))
                    .with_section("model", bytes)
                    .save(&path)?;
                Some(path)
            }
            (None, Some(file)) if is_native_checkpoint(Path::new(file)) => {
                Some(PathBuf::from(file))
            }
            _ => None,
        };
        let report = crate::eval::evaluate_run::<B::InnerBackend>(
            plan,
            &crate::eval::EvalOptions {
                split: Split::Test,
                checkpoint,
                l2_topk: Some(50),
                out_dir: Some(run.root().join("predict_test")),
                save_embeddings: false,
            },
            std::slice::from_ref(&device),
        )?;
        log::info!(
            "predict: {} predictions in {}",
            report.predictions,
            report.out_dir.display()
        );
        evaluations.insert("test".to_string(), report.metrics);
    }
    let metrics = serde_json::json!({
        "evaluations": evaluations,
        "train": summary.as_ref().map(|s| serde_json::json!({
            "iterations": s.state.iteration,
            "best_metric": s.state.best_metric,
            "best_iteration": s.state.best_iteration,
            "final_checkpoint": s.final_checkpoint,
            "skipped_nan_steps": s.state.skipped_nan_steps,
            "early_stopped": s.early_stopped,
        })),
    });
    let path = run.root().join("metrics.json");
    write_atomic(
        &path,
        serde_json::to_string_pretty(&metrics)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| RunError::Io(format!("{}: {e}", path.display())))?;
    Ok(RunReport {
        run_dir: run.root().to_path_buf(),
        train: summary,
        evaluations,
        node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_checkpoints_are_told_from_pytorch_files() {
        let dir = tempfile::tempdir().unwrap();
        let native = dir.path().join("model_10.ckpt");
        Checkpoint::new(serde_json::json!({}))
            .save(&native)
            .unwrap();
        assert!(is_native_checkpoint(&native));
        let torch = dir.path().join("model.pth");
        std::fs::write(&torch, b"PK\x03\x04 zip archive of a torch checkpoint").unwrap();
        assert!(!is_native_checkpoint(&torch));
        assert!(!is_native_checkpoint(&dir.path().join("missing.ckpt")));
    }

    /// The quickstart config with `overrides` on top.
    fn quickstart_plan(overrides: &[&str]) -> RunPlan {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = Config::load(&antmmf_core::ConfigSources {
            config: Some(root.join("configs/quickstart.yml")),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap();
        RunPlan::from_config(&config).unwrap()
    }

    #[test]
    fn moco_runs_train_in_f32_even_with_enable_amp() {
        let amp = ["training_parameters.enable_amp", "True"];
        assert!(quickstart_plan(&amp).training.enable_amp);
        let moco = ["model_attributes.univl.with_moco", "True"];
        assert!(
            !quickstart_plan(&[&amp[..], &moco[..]].concat())
                .training
                .enable_amp
        );
    }
}
