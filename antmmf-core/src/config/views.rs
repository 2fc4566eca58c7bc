//! Typed views of the configuration: `training_parameters` and `optimizer_attributes`, with type
//! and range validation that names the key path and the value.

use super::ConfigError;
use serde::{Deserialize, Deserializer};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// AntMMF's `training_parameters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingParameters {
    /// Trainer name (AntMMF's `base_trainer`).
    pub trainer: String,
    /// Experiment name used in reports.
    pub experiment_name: String,
    /// Iteration budget; `None` = unbounded (`.inf`).
    #[serde(deserialize_with = "de_count")]
    pub max_iterations: Option<u64>,
    /// Epoch budget; `None` = unbounded.
    #[serde(deserialize_with = "de_count")]
    pub max_epochs: Option<u64>,
    /// Iterations between train-metric log lines.
    pub log_interval: i64,
    /// Iterations between full validations + checkpoints.
    pub snapshot_interval: i64,
    /// Keep at most this many iteration checkpoints.
    pub max_ckpt_num: Option<i64>,
    /// Clip gradients by their global L2 norm.
    pub clip_gradients: bool,
    /// AntMMF's clip mode (`all`).
    pub clip_norm_mode: String,
    /// The clipping threshold.
    #[serde(deserialize_with = "de_opt_f64")]
    pub max_grad_l2_norm: Option<f64>,
    /// AntMMF's device name (informational; `--backend`/`--devices` select hardware).
    pub device: String,
    /// null = unseeded, -1 = random logged seed, N = deterministic.
    pub seed: Option<i64>,
    /// Global batch size.
    pub batch_size: i64,
    /// Evaluation batch size (`None` = `batch_size`).
    pub test_batch_size: Option<i64>,
    /// Data-loading worker threads.
    pub num_workers: i64,
    /// AntMMF's training sampler settings.
    pub sampler: Value,
    /// AntMMF's distributed sampler settings.
    pub distributed_sampler: Value,
    /// Stop when `monitored_metric` has not improved for `patience` iterations.
    pub should_early_stop: bool,
    /// Early-stopping patience in iterations.
    pub patience: i64,
    /// The metric deciding the best checkpoint.
    pub monitored_metric: String,
    /// Whether a lower `monitored_metric` is better.
    pub metric_minimize: bool,
    /// Use the step LR schedule.
    pub lr_scheduler: bool,
    /// Iterations after which the LR is multiplied by `lr_ratio`.
    #[serde(deserialize_with = "de_list")]
    pub lr_steps: Vec<i64>,
    /// Epochs after which the LR is multiplied by `lr_ratio` (takes precedence over `lr_steps`).
    #[serde(deserialize_with = "de_list")]
    pub lr_epochs: Vec<i64>,
    /// LR multiplier per step.
    #[serde(deserialize_with = "de_f64")]
    pub lr_ratio: f64,
    /// Linear warmup.
    pub use_warmup: bool,
    /// LR factor at iteration 0 of the warmup.
    #[serde(deserialize_with = "de_f64")]
    pub warmup_factor: f64,
    /// Warmup length in iterations.
    pub warmup_iterations: i64,
    /// `train`, `val`, `inference`, `predict` joined by `+`.
    pub run_type: String,
    /// Log level.
    pub logger_level: String,
    /// Multi-device data-parallel training.
    pub distributed: bool,
    /// Launcher rank (accepted for compatibility).
    pub local_rank: Option<i64>,
    /// DDP static graph flag (PyTorch only; accepted).
    pub static_graph: bool,
    /// DataParallel flag (PyTorch only; accepted).
    pub data_parallel: bool,
    /// Write EvalAI-style prediction files.
    pub evalai_inference: bool,
    /// Prediction file path for evalai_inference.
    pub evalai_inference_file: Option<String>,
    /// Predictions per file (`.inf` = one file).
    pub evalai_max_predictions_per_file: Value,
    /// Prediction file format: `json` or `csv`.
    pub report_format: String,
    /// Checkpoint key prefix mapping for `load_pretrained`.
    #[serde(deserialize_with = "de_mapping")]
    pub pretrained_mapping: BTreeMap<String, String>,
    /// Load a pretrained checkpoint through `pretrained_mapping`.
    pub load_pretrained: bool,
    /// Root of run directories.
    pub save_dir: String,
    /// AntMMF's log folder (logs go to the run directory's `logs/`).
    pub log_dir: String,
    /// Disable logging.
    pub should_not_log: bool,
    /// Verbose dumps.
    pub verbose_dump: bool,
    /// Resume from the run directory's newest checkpoint.
    pub resume: bool,
    /// A checkpoint to load.
    pub resume_file: Option<String>,
    /// `true`: weights only; `false`: the whole training state.
    pub restart: bool,
    /// Pinned host memory for batches.
    pub pin_memory: bool,
    /// Multi-task sampling proportional to size.
    pub task_size_proportional_sampling: bool,
    /// Compute losses after gathering outputs from all devices.
    pub synchronized_loss: bool,
    /// Synchronized batch norm.
    pub sync_bn: bool,
    /// Mixed precision.
    pub enable_amp: bool,
    /// Batches accumulated per optimizer step.
    pub gradient_accumulation_steps: i64,
    /// DDP flag (PyTorch only; accepted).
    pub find_unused_parameters: bool,
    /// Disable progress bars.
    pub disable_tqdm: bool,
    /// AntMMF's fused-op switch (accepted).
    pub replace_speedup_op: bool,
    /// Number of machines.
    pub num_nodes: i64,
    /// GPUs per machine.
    pub num_gpus_per_node: i64,
    /// Skip (and count) steps with non-finite loss or gradients instead of stopping.
    pub skip_nan_steps: bool,
}

fn invalid(key: &str, value: impl std::fmt::Display, message: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        message: message.to_string(),
    }
}

impl TrainingParameters {
    /// Range checks that serde's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = |name: &str| format!("training_parameters.{name}");
        let positive = [
            ("batch_size", self.batch_size),
            ("log_interval", self.log_interval),
            ("snapshot_interval", self.snapshot_interval),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
            ("num_nodes", self.num_nodes),
        ];
        for (name, v) in positive {
            if v < 1 {
                return Err(invalid(&k(name), v, "must be at least 1"));
            }
        }
        if let Some(v) = self.test_batch_size
            && v < 1
        {
            return Err(invalid(&k("test_batch_size"), v, "must be at least 1"));
        }
        for (name, v) in [
            ("num_workers", self.num_workers),
            ("patience", self.patience),
            ("warmup_iterations", self.warmup_iterations),
            ("num_gpus_per_node", self.num_gpus_per_node),
        ] {
            if v < 0 {
                return Err(invalid(&k(name), v, "must not be negative"));
            }
        }
        if let Some(v) = self.max_ckpt_num
            && v < 1
        {
            return Err(invalid(
                &k("max_ckpt_num"),
                v,
                "must be at least 1 (or null)",
            ));
        }
        if let Some(v) = self.max_grad_l2_norm
            && (v.is_nan() || v <= 0.0)
        {
            return Err(invalid(&k("max_grad_l2_norm"), v, "must be positive"));
        }
        if self.clip_gradients && self.max_grad_l2_norm.is_none() {
            return Err(invalid(
                &k("max_grad_l2_norm"),
                "null",
                "must be set when clip_gradients is true",
            ));
        }
        if !(self.lr_ratio > 0.0 && self.lr_ratio.is_finite()) {
            return Err(invalid(&k("lr_ratio"), self.lr_ratio, "must be positive"));
        }
        if !(0.0..=1.0).contains(&self.warmup_factor) {
            return Err(invalid(
                &k("warmup_factor"),
                self.warmup_factor,
                "must be in [0, 1]",
            ));
        }
        for (name, list) in [("lr_steps", &self.lr_steps), ("lr_epochs", &self.lr_epochs)] {
            if let Some(v) = list.iter().find(|v| **v < 0) {
                return Err(invalid(&k(name), v, "entries must not be negative"));
            }
        }
        if let Some(seed) = self.seed
            && seed < -1
        {
            return Err(invalid(
                &k("seed"),
                seed,
                "must be null, -1 (random) or >= 0",
            ));
        }
        if !matches!(self.report_format.as_str(), "json" | "csv") {
            return Err(invalid(
                &k("report_format"),
                format!("{:?}", self.report_format),
                "must be json or csv",
            ));
        }
        RunType::parse(&self.run_type)?;
        Ok(())
    }

    /// The evaluation batch size.
    pub fn eval_batch_size(&self) -> usize {
        self.test_batch_size.unwrap_or(self.batch_size).max(1) as usize
    }

    /// The parsed run type.
    pub fn run_type(&self) -> Result<RunType, ConfigError> {
        RunType::parse(&self.run_type)
    }

    /// The seed policy.
    pub fn seed_policy(&self) -> SeedPolicy {
        match self.seed {
            None => SeedPolicy::Unseeded,
            Some(-1) => SeedPolicy::Random,
            Some(n) => SeedPolicy::Fixed(n.max(0) as u64),
        }
    }
}

/// What `training_parameters.seed` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedPolicy {
    /// `null`: no seeding (a fresh random stream each run; not reproducible).
    Unseeded,
    /// `-1`: a random seed, drawn once and logged so the run can be repeated.
    Random,
    /// `N`: deterministic.
    Fixed(u64),
}

impl SeedPolicy {
    /// The seed to use: fixed, or freshly drawn for `Random` and `Unseeded`.
    pub fn resolve(self) -> u64 {
        match self {
            SeedPolicy::Fixed(n) => n,
            SeedPolicy::Random | SeedPolicy::Unseeded => rand::random::<u32>() as u64,
        }
    }
}

/// The stages `run_type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunType {
    /// Train.
    pub train: bool,
    /// Evaluate on the val split.
    pub val: bool,
    /// Evaluate on the test split.
    pub inference: bool,
    /// Write predictions on the test split.
    pub predict: bool,
}

impl RunType {
    /// Parses `train+val`, `inference`, `train+predict`, ...
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let mut r = RunType::default();
        for part in s.split('+') {
            match part.trim() {
                "train" => r.train = true,
                "val" => r.val = true,
                "inference" => r.inference = true,
                "predict" => r.predict = true,
                other => {
                    return Err(invalid(
                        "training_parameters.run_type",
                        format!("{s:?}"),
                        &format!(
                            "unknown stage {other:?}; use train, val, inference, predict joined by +"
                        ),
                    ));
                }
            }
        }
        Ok(r)
    }
}

/// AntMMF's `optimizer_attributes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerAttributes {
    /// Optimizer name: `AdamW` (or `Adam`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Optimizer parameters.
    pub params: OptimizerParams,
}

/// `optimizer_attributes.params`.
#[derive(Debug, Clone, Deserialize)]
pub struct OptimizerParams {
    /// Learning rate.
    #[serde(deserialize_with = "de_f64")]
    pub lr: f64,
    /// Adam betas.
    pub betas: [f64; 2],
    /// Adam epsilon.
    #[serde(deserialize_with = "de_f64")]
    pub eps: f64,
    /// Decoupled weight decay.
    #[serde(deserialize_with = "de_f64")]
    pub weight_decay: f64,
    /// Other parameters (reported as ignored).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl OptimizerAttributes {
    /// Range checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = |n: &str| format!("optimizer_attributes.params.{n}");
        if !matches!(self.kind.as_str(), "AdamW" | "Adam" | "adamw" | "adam") {
            return Err(invalid(
                "optimizer_attributes.type",
                format!("{:?}", self.kind),
                "supported optimizers: AdamW, Adam",
            ));
        }
        let p = &self.params;
        if !(p.lr > 0.0 && p.lr.is_finite()) {
            return Err(invalid(&k("lr"), p.lr, "must be a positive number"));
        }
        for (i, b) in p.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return Err(invalid(
                    &format!("{}[{i}]", k("betas")),
                    b,
                    "must be in [0, 1)",
                ));
            }
        }
        if !(p.eps > 0.0 && p.eps.is_finite()) {
            return Err(invalid(&k("eps"), p.eps, "must be positive"));
        }
        if !(p.weight_decay >= 0.0 && p.weight_decay.is_finite()) {
            return Err(invalid(
                &k("weight_decay"),
                p.weight_decay,
                "must not be negative",
            ));
        }
        Ok(())
    }
}

/// A float that may be written as a YAML number or a numeric string (`"5e-5"`, as PyYAML leaves
/// it and AntMMF's literal_eval decodes it).
fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_f64(&v).ok_or_else(|| serde::de::Error::custom("expected a number"))
}

fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    value_to_f64(&v)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("expected a number or null"))
}

fn value_to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// An iteration/epoch budget: a non-negative integer, `.inf` or null (unbounded).
fn de_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    let f = value_to_f64(&v)
        .ok_or_else(|| serde::de::Error::custom("expected a count, .inf or null"))?;
    if f.is_infinite() && f > 0.0 {
        return Ok(None);
    }
    if f < 0.0 || f.is_nan() || f.fract() != 0.0 {
        return Err(serde::de::Error::custom(
            "expected a non-negative whole number, .inf or null",
        ));
    }
    Ok(Some(f as u64))
}

/// A list that may also be written as null (AntMMF's `lr_epochs:` with nothing after it).
fn de_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    Ok(Option::<Vec<i64>>::deserialize(d)?.unwrap_or_default())
}

fn de_mapping<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_types() {
        let r = RunType::parse("train+val").unwrap();
        assert!(r.train && r.val && !r.inference && !r.predict);
        assert!(RunType::parse("predict").unwrap().predict);
        let err = RunType::parse("train+tset").unwrap_err().to_string();
        assert!(err.contains("training_parameters.run_type"), "{err}");
        assert!(err.contains("\"tset\""), "{err}");
    }

    #[test]
    fn seed_policies() {
        let mut tp: TrainingParameters = crate::config::view_value(
            "training_parameters",
            crate::config::Schema::parse(crate::config::DEFAULTS_YAML)
                .unwrap()
                .defaults()["training_parameters"]
                .clone(),
        )
        .unwrap();
        assert_eq!(tp.seed_policy(), SeedPolicy::Unseeded);
        tp.seed = Some(-1);
        assert_eq!(tp.seed_policy(), SeedPolicy::Random);
        tp.seed = Some(7);
        assert_eq!(tp.seed_policy(), SeedPolicy::Fixed(7));
        assert_eq!(tp.seed_policy().resolve(), 7);
        tp.seed = Some(-3);
        assert!(
            tp.validate()
                .unwrap_err()
                .to_string()
                .contains("training_parameters.seed")
        );
    }
}
