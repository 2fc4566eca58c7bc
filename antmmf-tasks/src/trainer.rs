//! AntMMF's training loop as a burn-train learning strategy.
//!
//! burn-train 0.21's default strategies count epochs and checkpoint once per epoch through
//! asynchronous file checkpointers; AntMMF counts iterations (one per batch), validates and
//! snapshots every `snapshot_interval` iterations, keeps `max_ckpt_num` snapshots plus `best`, and
//! resumes a run exactly where it stopped. So the run goes through burn-train's
//! [`SupervisedTraining::launch`] and [`Learner`] (train step, optimizer step, LR scheduler
//! step, record loading) with a custom [`SupervisedLearningStrategy`] that owns the loop:
//!
//! - iteration `i` (1-based) seeds the backend RNG with `(seed, i)` and draws its batch from a
//!   [`ResumableLoader`] whose order and per-sample randomness derive from `(seed, epoch,
//!   position)`: a resumed run continues the same random stream (Burn cannot snapshot its RNG);
//! - every `snapshot_interval` iterations: full validation, then one checkpoint file
//!   `models/model_<i>.ckpt` holding the model, the optimizer state captured synchronously after
//!   that iteration's step, the scheduler position and the loop state (epoch, position in the
//!   epoch, best metric, counters), written atomically with per-section checksums; `best.ckpt`
//!   when the monitored metric improved; older snapshots beyond `max_ckpt_num` are removed;
//! - a loss or gradient that is not finite stops the run with a message naming the loss and the
//!   iteration (the last good checkpoint stays), or with `skip_nan_steps` skips that step and
//!   counts it;
//! - at the end, `<model>_final.ckpt` (weights and state).
//!
//! Progress: every iteration goes to burn-train's event processor (`Start`, one `ProcessedItem`
//! per iteration with its batch in the epoch, the iteration out of the planned ones and the
//! learning rate, `EndEpoch`, `End`), whose renderer is burn's TUI in a terminal and prints
//! nothing elsewhere, where one `progress:` log line per `log_interval` is the output;
//! `ANTMMF_PROGRESS=plain|tui|auto` overrides the choice. See [`crate::progress`].
//!
//! Data parallelism ([`launch_with_group`], [`crate::distributed`]): every iteration each member
//! of the group sums its gradients, its loss values and its flags (non-finite loss, stop
//! requested) with the others in one all-reduce, then every member applies the same averaged
//! gradients, skips or stops together, and logs the mean losses. Member 0 alone validates and
//! writes the run directory; its early-stopping decision is shared at each snapshot.

use crate::distributed::{
    AllReduce, DistributedError, GroupRowGather, MAX_LOGGED_PARTS, NODE_CHECKPOINT_ENV,
    RowGatherScope, all_reduce_step, ensure_agreement, parts_fingerprint, sum_values,
    weights_fingerprint,
};
use crate::optim::{AntmmfOptimizer, GradNormHandle, OptimizerSnapshot};
use crate::progress::{
    BoxedRenderer, LastValidationMetric, LazyTui, LossPartsMetric, LossValues, NoMetricFiles,
    PlainRenderer, ProgressDisplay, ProgressLink, TerminalSignals, TotalLossMetric,
};
use crate::schedule::AntMmfLrSchedule;
use antmmf_core::checkpoint::{Checkpoint, CheckpointError, load_newest_good};
use antmmf_core::fsutil::write_atomic;
use antmmf_core::run_dir::RunDir;
use burn::data::dataloader::Progress;
use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::metric::{Adaptor, LearningRateMetric};
use burn::train::renderer::MetricsRenderer;
use burn::train::{EventProcessorTraining, Interrupter, ItemLazy, LearnerEvent, TrainingItem};
use burn::train::{
    InferenceStep, Learner, LearningComponentsTypes, LearningResult, SupervisedLearningStrategy,
    SupervisedTrainingEventProcessor, TrainLoader, TrainStep, TrainingComponents, ValidLoader,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// File extension of every checkpoint the loop writes.
pub const CKPT_EXT: &str = "ckpt";

/// A data source that can start anywhere in its deterministic sequence.
pub trait ResumableLoader<O>: Send + Sync {
    /// Batches in one epoch.
    fn batches_per_epoch(&self) -> usize;
    /// The batches of `epoch` from index `batch` on.
    fn iter_from(&self, epoch: usize, batch: usize) -> Box<dyn Iterator<Item = O> + '_>;
}

/// What the loop needs to know about a train step's output.
pub trait LossReport {
    /// The total loss.
    fn total_loss(&self) -> f64;
    /// The named parts of the loss (`masked_lm_loss`, `l1_loss`, ...), for logs.
    fn loss_parts(&self) -> Vec<(String, f64)>;
}

/// Task-specific parts of the loop.
pub trait TaskHooks<B: AutodiffBackend, M: AutodiffModule<B>>: Send + Sync {
    /// Runs after each optimizer step (MoCo's momentum update and queue update).
    fn after_step(&self, model: M, _iteration: u64) -> M {
        model
    }
    /// Full validation; the metrics are keyed as AntMMF logs them (`val/accuracy`, ...).
    fn validate(&self, model: &M::InnerModule) -> Result<BTreeMap<String, f64>, String>;
}

/// The loop's settings (from `training_parameters`).
#[derive(Debug, Clone)]
pub struct TrainerSettings {
    /// Stop after this many iterations.
    pub max_iterations: Option<u64>,
    /// Stop after this many epochs.
    pub max_epochs: Option<u64>,
    /// Log every this many iterations.
    pub log_interval: u64,
    /// Validate and checkpoint every this many iterations.
    pub snapshot_interval: u64,
    /// Keep at most this many `models/model_<i>.ckpt`.
    pub max_ckpt_num: Option<usize>,
    /// The metric deciding `best` and early stopping (`total_loss` = validation loss).
    pub monitored_metric: String,
    /// Lower is better.
    pub metric_minimize: bool,
    /// Stop after `patience` iterations without improvement.
    pub should_early_stop: bool,
    /// Early-stopping patience in iterations.
    pub patience: u64,
    /// Batches per optimizer step.
    pub grad_accumulation: usize,
    /// Skip (and count) non-finite steps instead of stopping.
    pub skip_nan_steps: bool,
    /// The run's seed.
    pub seed: u64,
    /// Validate at snapshots (`run_type` contains `val`, or the monitored metric needs it).
    pub validate: bool,
}

/// The loop state saved in every checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoopState {
    /// Iterations done.
    pub iteration: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Next batch index within the epoch.
    pub batch_in_epoch: u64,
    /// LR scheduler steps taken.
    pub scheduler_steps: u64,
    /// Best monitored value so far.
    pub best_metric: Option<f64>,
    /// Iteration of the best value.
    pub best_iteration: Option<u64>,
    /// Steps skipped for non-finite values.
    pub skipped_nan_steps: u64,
    /// The run's seed.
    pub seed: u64,
    /// Metrics of the last validation.
    pub last_metrics: BTreeMap<String, f64>,
}

/// Why training stopped early with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A loss or gradient was NaN or infinite.
    #[error(
        "non-finite {what} at iteration {iteration}; training stopped{}",
        last_good.as_ref().map(|p| format!(", last good checkpoint: {}", p.display())).unwrap_or_default()
    )]
    NonFinite {
        /// The loss (by name) or `gradient norm`.
        what: String,
        /// The iteration.
        iteration: u64,
        /// The newest checkpoint written before.
        last_good: Option<PathBuf>,
    },
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A record could not be (de)serialized.
    #[error("checkpoint {path}: cannot decode section `{section}`: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The section.
        section: String,
        /// The recorder's message.
        message: String,
    },
    /// Validation failed.
    #[error("validation at iteration {iteration} failed: {message}")]
    Validation {
        /// The iteration.
        iteration: u64,
        /// The error.
        message: String,
    },
    /// The run was stopped before its end (the TUI's stop control, SIGINT or SIGTERM).
    #[error(
        "training interrupted at iteration {iteration} ({reason}){}",
        last_good.as_ref().map(|p| format!("; resume from {}", p.display())).unwrap_or_default()
    )]
    Interrupted {
        /// The last iteration done.
        iteration: u64,
        /// What stopped it.
        reason: String,
        /// The newest checkpoint written before.
        last_good: Option<PathBuf>,
    },
    /// A setting outside the config (`ANTMMF_PROGRESS`) has an invalid value.
    #[error("{0}")]
    Setting(String),
    /// The data loader produced no batch for a whole epoch.
    #[error("the training data produced no batch in epoch {0}: check the annotations and media")]
    NoData(u64),
    /// The data-parallel group failed (a node stopped, timed out or disagrees).
    #[error(transparent)]
    Distributed(#[from] DistributedError),
    /// Other I/O.
    #[error("{0}")]
    Io(String),
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The final loop state.
    pub state: LoopState,
    /// The final checkpoint.
    pub final_checkpoint: PathBuf,
    /// Per-log-interval records: (iteration, lr, mean total loss, named parts).
    pub history: Vec<LogRecord>,
    /// Whether early stopping ended the run.
    pub early_stopped: bool,
}

/// One logged training point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogRecord {
    /// Iteration.
    pub iteration: u64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Mean total loss over the interval.
    pub loss: f64,
    /// Mean loss parts over the interval.
    pub parts: BTreeMap<String, f64>,
    /// Seconds per iteration over the interval: the step (forward, backward, optimizer), without
    /// the wait for the batch.
    pub sec_per_iter: f64,
    /// Seconds per iteration the step waited for its batch from the loader (the device idles).
    #[serde(default)]
    pub data_wait_per_iter: f64,
    /// Global gradient norm of the last step.
    pub grad_norm: Option<f64>,
}

/// Where a run starts.
#[derive(Debug, Clone)]
pub enum StartFrom {
    /// From the initial weights.
    Scratch,
    /// Full training state from a checkpoint (`restart False`).
    Resume(PathBuf),
}

type ModelRecordOf<LC> = <<LC as LearningComponentsTypes>::TrainingModel as burn::module::Module<
    <LC as LearningComponentsTypes>::Backend,
>>::Record;
type OptimRecordOf<LC> = <<LC as LearningComponentsTypes>::Optimizer as Optimizer<
    <LC as LearningComponentsTypes>::TrainingModel,
    <LC as LearningComponentsTypes>::Backend,
>>::Record;

/// The loop, as a burn-train custom strategy.
pub struct AntmmfTraining<LC: LearningComponentsTypes, L, H> {
    loader: Arc<L>,
    hooks: Arc<H>,
    settings: TrainerSettings,
    run: RunDir,
    device: burn::tensor::Device<LC::Backend>,
    start: StartFrom,
    grad_norm: GradNormHandle,
    optim_snapshot: OptimizerSnapshot<OptimRecordOf<LC>>,
    outcome: Arc<Mutex<Option<Result<TrainSummary, TrainError>>>>,
    link: ProgressLink,
    group: Option<Arc<dyn AllReduce<<LC::Backend as AutodiffBackend>::InnerBackend>>>,
}

/// Reads the outcome of a launched run.
#[derive(Clone)]
pub struct TrainOutcome(Arc<Mutex<Option<Result<TrainSummary, TrainError>>>>);

impl TrainOutcome {
    /// The run's result (once `launch` has returned).
    pub fn take(&self) -> Result<TrainSummary, TrainError> {
        self.0
            .lock()
            .ok()
            .and_then(|mut o| o.take())
            .unwrap_or_else(|| Err(TrainError::Io("training produced no outcome".into())))
    }
}

impl<B, M, L, H>
    AntmmfTraining<
        burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        L,
        H,
    >
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M as TrainStep>::Output: LossReport,
    L: ResumableLoader<<M as TrainStep>::Input> + 'static,
    H: TaskHooks<B, M> + 'static,
{
    /// A loop over `loader` for the optimizer `optim` (whose handles it keeps), writing to `run`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        loader: Arc<L>,
        hooks: Arc<H>,
        settings: TrainerSettings,
        run: RunDir,
        device: B::Device,
        start: StartFrom,
        optim: &AntmmfOptimizer<M, B>,
    ) -> (Self, TrainOutcome) {
        let outcome = Arc::new(Mutex::new(None));
        (
            Self {
                loader,
                hooks,
                settings,
                run,
                device,
                start,
                grad_norm: optim.grad_norm_handle(),
                optim_snapshot: optim.snapshot_handle(),
                outcome: outcome.clone(),
                link: ProgressLink::default(),
                group: None,
            },
            TrainOutcome(outcome),
        )
    }
}

/// Mixes the run seed and a counter into a seed (SplitMix64), so every iteration gets its own
/// reproducible random stream.
pub fn derive_seed(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::<FullPrecisionSettings>::default()
}

impl<B, M, L, H>
    SupervisedLearningStrategy<
        burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
    >
    for AntmmfTraining<
        burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        L,
        H,
    >
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M as TrainStep>::Output: LossReport,
    L: ResumableLoader<<M as TrainStep>::Input> + 'static,
    H: TaskHooks<B, M> + 'static,
{
    fn train(
        &self,
        learner: Learner<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        dataloader_train: TrainLoader<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        dataloader_valid: ValidLoader<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        training_components: TrainingComponents<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
    ) -> LearningResult<M::InnerModule> {
        let (model, processor) = self.fit(
            training_components,
            learner,
            dataloader_train,
            dataloader_valid,
            1,
        );
        LearningResult {
            model: model.valid(),
            renderer: processor.renderer(),
        }
    }

    fn fit(
        &self,
        training_components: TrainingComponents<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        mut learner: Learner<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        _dataloader_train: TrainLoader<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        _dataloader_valid: ValidLoader<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        _starting_epoch: usize,
    ) -> (
        M,
        SupervisedTrainingEventProcessor<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
    ) {
        let mut processor = training_components.event_processor;
        let result = self.run_loop(
            &mut learner,
            &mut processor,
            &training_components.interrupter,
        );
        // Sent whatever the result: burn's TUI leaves its screen once the renderer drops.
        processor.process_train(LearnerEvent::End(None));
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(result);
        }
        (learner.model(), processor)
    }
}

impl<B, M, L, H>
    AntmmfTraining<
        burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        L,
        H,
    >
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M as TrainStep>::Output: LossReport,
    L: ResumableLoader<<M as TrainStep>::Input> + 'static,
    H: TaskHooks<B, M> + 'static,
{
    /// Whether this process writes the run directory and validates (the only member, or member
    /// 0 of a data-parallel group).
    fn is_main(&self) -> bool {
        self.group.as_ref().is_none_or(|g| g.rank() == 0)
    }

    /// The seed of iteration `iteration`'s model randomness (dropout, masking draws): member 0's
    /// is a single process's, other members mix their rank in so that they draw other masks.
    fn iteration_seed(&self, iteration: u64) -> u64 {
        match self.group.as_ref().map(|g| g.rank()) {
            None | Some(0) => derive_seed(self.settings.seed, iteration),
            Some(rank) => derive_seed(derive_seed(self.settings.seed, rank as u64), iteration),
        }
    }

    /// Before the first step of a data-parallel run: every member has the same number of
    /// batches per epoch, starts at the same iteration and holds the same weights.
    fn check_group_start(
        &self,
        group: &dyn AllReduce<B::InnerBackend>,
        model: &M,
        state: &LoopState,
        per_epoch: u64,
    ) -> Result<(), TrainError> {
        let device = &self.device;
        ensure_agreement(
            group,
            "the batches per epoch",
            per_epoch,
            |v| v.to_string(),
            "every node must see the same training set and global batch size",
            device,
        )?;
        ensure_agreement(
            group,
            "the starting iteration",
            state.iteration,
            |v| v.to_string(),
            "every node must resume from the same checkpoint (a shared save_dir, or the same \
             resume_file on every node)",
            device,
        )?;
        ensure_agreement(
            group,
            "the initial weights",
            weights_fingerprint::<B, M>(model),
            |v| format!("fingerprint {v:016x}"),
            "every node must use the same config, seed and pretrained or resumed weights",
            device,
        )?;
        Ok(())
    }

    fn run_loop(
        &self,
        learner: &mut Learner<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        processor: &mut SupervisedTrainingEventProcessor<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        interrupter: &Interrupter,
    ) -> Result<TrainSummary, TrainError> {
        let s = &self.settings;
        let main = self.is_main();
        let group = self.group.as_deref();
        let mut state = LoopState {
            seed: s.seed,
            ..Default::default()
        };
        let mut last_good: Option<PathBuf> = None;
        if let StartFrom::Resume(path) = &self.start {
            state = self.restore(learner, path)?;
            last_good = Some(path.clone());
            log::info!(
                "resumed from {} at iteration {} (epoch {}, batch {})",
                path.display(),
                state.iteration,
                state.epoch,
                state.batch_in_epoch
            );
        }
        let mut history = Vec::new();
        if matches!(self.start, StartFrom::Resume(_)) && main {
            history = self.logs_up_to(&state)?;
        }
        let per_epoch = self.loader.batches_per_epoch() as u64;
        if let Some(group) = group {
            self.check_group_start(group, &learner.model(), &state, per_epoch)?;
        }
        let planned = planned_iterations(s, per_epoch);
        self.link
            .resumed_at
            .store(state.iteration, std::sync::atomic::Ordering::SeqCst);
        processor.process_train(LearnerEvent::Start);
        let done = |st: &LoopState| {
            s.max_iterations.is_some_and(|m| st.iteration >= m)
                || s.max_epochs.is_some_and(|m| st.epoch >= m)
        };
        // Other members of a group leave the run directory to member 0.
        let mut events = if main {
            match antmmf_core::tensorboard::EventWriter::create(&self.run.logs_dir()) {
                Ok(w) => Some(w),
                Err(e) => {
                    log::warn!(
                        "no TensorBoard event file in {}: {e}",
                        self.run.logs_dir().display()
                    );
                    None
                }
            }
        } else {
            None
        };
        let mut interval = IntervalStats::default();
        let mut accumulator = GradientsAccumulator::new();
        let mut accumulated = 0usize;
        let mut early_stopped = false;
        let mut since_improvement = 0u64;
        let mut parts_warned = false;
        // Time in the per-step all-reduce (gradients and control values), for the log.
        let (mut reduce_secs, mut reduce_min, mut reduce_steps, mut reduce_values) =
            (0f64, f64::INFINITY, 0u64, 0usize);
        // The task's contrastive losses gather their embeddings over the group during the
        // training steps of this thread (validation does not).
        let _gather = self.group.clone().map(|g| {
            RowGatherScope::new(Arc::new(GroupRowGather {
                group: g,
                device: self.device.clone(),
            }))
        });
        'epochs: while !done(&state) {
            let mut produced = false;
            let mut iter = self
                .loader
                .iter_from(state.epoch as usize, state.batch_in_epoch as usize);
            loop {
                // The time the step waits for its batch: the loader's workers falling behind
                // the device (logged as `data wait`).
                let waited = Instant::now();
                let Some(batch) = iter.next() else { break };
                let data_secs = waited.elapsed().as_secs_f64();
                produced = true;
                state.iteration += 1;
                state.batch_in_epoch += 1;
                let iteration = state.iteration;
                B::seed(&self.device, self.iteration_seed(iteration));
                learner.lr_step();
                state.scheduler_steps += 1;
                let started = Instant::now();
                let output = learner.train_step(batch);
                let item = output.item;
                antmmf_core::testing_pause_at_iteration("step", iteration);
                let mut loss = item.total_loss();
                let mut parts = item.loss_parts();
                let mut failure = (!loss.is_finite()).then(|| {
                    parts
                        .iter()
                        .find(|(_, v)| !v.is_finite())
                        .map(|(n, v)| format!("loss `{n}` ({v})"))
                        .unwrap_or_else(|| format!("total loss ({loss})"))
                });
                let mut grads = Some(output.grads);
                // In a group every member takes part in every step's all-reduce, a failed step
                // included (with no gradients), so that all skip, stop or step together.
                let mut stop = None;
                if let Some(group) = group {
                    let local_stop = self.link.stop_reason(interrupter);
                    let control =
                        step_control(failure.is_some(), local_stop.is_some(), loss, &parts);
                    let local_grads = if failure.is_some() {
                        None
                    } else {
                        grads.take()
                    };
                    let reduce_started = Instant::now();
                    let reduced = all_reduce_step::<B, M>(
                        group,
                        &learner.model(),
                        local_grads,
                        &control,
                        &self.device,
                    )?;
                    let secs = reduce_started.elapsed().as_secs_f64();
                    reduce_secs += secs;
                    reduce_min = reduce_min.min(secs);
                    reduce_steps += 1;
                    reduce_values = reduced.values;
                    grads = Some(reduced.grads);
                    let synced = StepSums::read(&reduced.control, group.world_size(), &parts);
                    if synced.failed && failure.is_none() {
                        failure = Some("a non-finite loss on another node".into());
                    }
                    if synced.stop {
                        stop = Some(
                            local_stop.unwrap_or_else(|| "a stop requested on another node".into()),
                        );
                    }
                    loss = synced.loss;
                    match synced.parts {
                        Some(mean) => parts = mean,
                        None if !parts_warned => {
                            parts_warned = true;
                            log::warn!(
                                "the nodes report different loss parts: logged parts are this \
                                 node's own, the total loss is the mean over nodes"
                            );
                        }
                        None => {}
                    }
                }
                if let Some(what) = failure {
                    if s.skip_nan_steps {
                        state.skipped_nan_steps += 1;
                        log::warn!(
                            "iteration {iteration}: {what}; step skipped ({} skipped so far)",
                            state.skipped_nan_steps
                        );
                        if let Some(reason) = stop {
                            return Err(TrainError::Interrupted {
                                iteration,
                                reason,
                                last_good,
                            });
                        }
                        continue;
                    }
                    return Err(TrainError::NonFinite {
                        what,
                        iteration,
                        last_good,
                    });
                }
                let snapshot_now = iteration.is_multiple_of(s.snapshot_interval);
                let grads = match grads {
                    Some(g) if s.grad_accumulation > 1 => {
                        accumulator.accumulate(&learner.model(), g);
                        accumulated += 1;
                        if accumulated >= s.grad_accumulation {
                            accumulated = 0;
                            Some(accumulator.grads())
                        } else {
                            None
                        }
                    }
                    other => other,
                };
                if let Some(grads) = grads {
                    if snapshot_now && main {
                        self.optim_snapshot.request();
                    }
                    learner.optimizer_step(grads);
                    let norm = self.grad_norm.get();
                    if let Some(n) = norm
                        && !n.is_finite()
                    {
                        if s.skip_nan_steps {
                            state.skipped_nan_steps += 1;
                            log::warn!(
                                "iteration {iteration}: gradient norm {n}; step skipped ({} skipped so far)",
                                state.skipped_nan_steps
                            );
                        } else {
                            return Err(TrainError::NonFinite {
                                what: format!("gradient norm ({n})"),
                                iteration,
                                last_good,
                            });
                        }
                    } else {
                        let model = learner.model();
                        let updated = self.hooks.after_step(model, iteration);
                        learner.load_model(updated.into_record());
                    }
                }
                interval.add(loss, &parts, started.elapsed().as_secs_f64(), data_secs);
                let lr = learner.lr_current();
                processor.process_train(LearnerEvent::ProcessedItem(TrainingItem::new(
                    item,
                    Progress::new(state.batch_in_epoch as usize, per_epoch as usize),
                    // Iterations are AntMMF's unit of progress (burn's TUI calls it `Epoch`).
                    Progress::new(
                        iteration as usize,
                        planned.unwrap_or(iteration).max(iteration) as usize,
                    ),
                    Some(iteration as usize),
                    Some(lr),
                )));
                if iteration.is_multiple_of(s.log_interval) || done(&state) {
                    let record =
                        interval.finish(iteration, learner.lr_current(), self.grad_norm.get());
                    log_line(&record, s, per_epoch, &state);
                    if let Some(w) = events.as_mut() {
                        write_train_scalars(w, &record);
                    }
                    history.push(record);
                }
                if snapshot_now {
                    let mut stop_early = false;
                    if main {
                        let improved = self.snapshot(learner, &mut state, &history)?;
                        if let Some(w) = events.as_mut()
                            && let Err(e) = w.scalars(
                                iteration,
                                state.last_metrics.iter().map(|(k, v)| (k.as_str(), *v)),
                            )
                        {
                            log::warn!("TensorBoard event file: {e}");
                        }
                        if improved {
                            since_improvement = 0;
                        } else {
                            since_improvement += s.snapshot_interval;
                        }
                        stop_early = s.should_early_stop && since_improvement >= s.patience;
                    }
                    last_good = Some(self.run.iteration_checkpoint(iteration, CKPT_EXT));
                    if let Some(group) = group {
                        // Member 0 validated: its decision is everyone's (the others wait
                        // here while it validates and writes the snapshot).
                        let flag = [if stop_early { 1.0 } else { 0.0 }];
                        stop_early = sum_values(group, &flag, &self.device)?
                            .first()
                            .is_some_and(|v| *v > 0.0);
                    }
                    if stop_early {
                        log::info!(
                            "early stopping at iteration {iteration}: no improvement of {} for {} iterations",
                            s.monitored_metric,
                            s.patience.max(since_improvement)
                        );
                        early_stopped = true;
                        break 'epochs;
                    }
                }
                if done(&state) {
                    break 'epochs;
                }
                let stop = match group {
                    Some(_) => stop,
                    None => self.link.stop_reason(interrupter),
                };
                if let Some(reason) = stop {
                    log::warn!("training stopped at iteration {iteration}: {reason}");
                    return Err(TrainError::Interrupted {
                        iteration,
                        reason,
                        last_good,
                    });
                }
            }
            if !produced && state.batch_in_epoch == 0 {
                return Err(TrainError::NoData(state.epoch));
            }
            processor.process_train(LearnerEvent::EndEpoch(state.epoch as usize + 1));
            state.epoch += 1;
            state.batch_in_epoch = 0;
        }
        if let Some(record) =
            interval.finish_partial(state.iteration, learner.lr_current(), self.grad_norm.get())
        {
            history.push(record);
        }
        // The final checkpoint: weights and loop state (the optimizer state of the last snapshot
        // is in models/).
        let final_path = self.run.final_checkpoint(CKPT_EXT);
        let written = if main {
            Some(final_path.clone())
        } else {
            std::env::var_os(NODE_CHECKPOINT_ENV).map(PathBuf::from)
        };
        if let Some(path) = &written {
            let model_bytes = recorder()
                .record(learner.model().into_record(), ())
                .map_err(|e| TrainError::Io(format!("cannot serialize the model: {e}")))?;
            Checkpoint::new(serde_json::to_value(&state).unwrap_or_default())
                .with_section("model", model_bytes)
                .save(path)?;
        }
        if main {
            self.write_history(&history)?;
        }
        if reduce_steps > 0 {
            log::info!(
                "gradient all-reduce: {:.2} M values per step, {:.1} ms on average over \
                 {reduce_steps} steps, {:.1} ms at least (the time includes waiting for slower \
                 nodes; the shortest is closest to the transfer alone)",
                reduce_values as f64 / 1e6,
                reduce_secs * 1e3 / reduce_steps as f64,
                reduce_min * 1e3
            );
        }
        if let Some(group) = group {
            // Replicas stay identical by construction; a difference means some computation was
            // not deterministic across machines. Member 0's checkpoint is the result either way.
            match ensure_agreement(
                group,
                "the final weights",
                weights_fingerprint::<B, M>(&learner.model()),
                |v| format!("fingerprint {v:016x}"),
                "node 0's checkpoint is the result",
                &self.device,
            ) {
                Ok(()) => log::info!(
                    "final weights identical on all {} nodes",
                    group.world_size()
                ),
                Err(e) => log::warn!("{e}"),
            }
        }
        Ok(TrainSummary {
            state,
            final_checkpoint: final_path,
            history,
            early_stopped,
        })
    }

    /// Validates, writes `models/model_<i>.ckpt` (and `best.ckpt`), rotates old snapshots.
    /// Returns whether the monitored metric improved.
    fn snapshot(
        &self,
        learner: &Learner<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        state: &mut LoopState,
        history: &[LogRecord],
    ) -> Result<bool, TrainError> {
        let s = &self.settings;
        let iteration = state.iteration;
        let mut metrics = BTreeMap::new();
        antmmf_core::testing_pause_at_iteration("validation", iteration);
        if s.validate {
            let model = learner.model().valid();
            metrics = self
                .hooks
                .validate(&model)
                .map_err(|message| TrainError::Validation { iteration, message })?;
            let shown: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            log::info!("iteration {iteration}: validation: {}", shown.join(", "));
            if let Ok(mut latest) = self.link.validation.lock() {
                *latest = format!("iteration {iteration}: {}", shown.join(", "));
            }
        }
        let monitored = metrics
            .get(&s.monitored_metric)
            .or_else(|| metrics.get(&format!("val/{}", s.monitored_metric)))
            .copied()
            .or_else(|| {
                // Without validation, `total_loss` falls back to the training loss.
                (s.monitored_metric == "total_loss")
                    .then(|| history.last().map(|h| h.loss))
                    .flatten()
            });
        let improved = match (monitored, state.best_metric) {
            (Some(v), None) => v.is_finite(),
            (Some(v), Some(best)) => {
                if s.metric_minimize {
                    v < best
                } else {
                    v > best
                }
            }
            (None, _) => false,
        };
        if improved {
            state.best_metric = monitored;
            state.best_iteration = Some(iteration);
        }
        state.last_metrics = metrics.clone();
        let model_bytes = recorder()
            .record(learner.model().into_record(), ())
            .map_err(|e| TrainError::Io(format!("cannot serialize the model: {e}")))?;
        let mut ckpt = Checkpoint::new(serde_json::to_value(&*state).unwrap_or_default())
            .with_section("model", model_bytes);
        if let Some(optim) = self.optim_snapshot.take() {
            let bytes = recorder()
                .record(optim, ())
                .map_err(|e| TrainError::Io(format!("cannot serialize the optimizer: {e}")))?;
            ckpt = ckpt.with_section("optimizer", bytes);
        }
        let path = self.run.iteration_checkpoint(iteration, CKPT_EXT);
        antmmf_core::testing_pause_at_iteration("checkpoint", iteration);
        ckpt.save(&path)?;
        if improved {
            ckpt.save(&self.run.best_checkpoint(CKPT_EXT))?;
        }
        let metrics_line = serde_json::json!({"iteration": iteration, "metrics": metrics, "best_metric": state.best_metric, "best_iteration": state.best_iteration});
        let metrics_path = self.run.logs_dir().join("metrics.jsonl");
        append_line(&metrics_path, &metrics_line.to_string())?;
        self.write_history(history)?;
        if let Some(keep) = s.max_ckpt_num {
            let all = self.run.list_iteration_checkpoints(CKPT_EXT);
            if all.len() > keep {
                for (_, old) in &all[..all.len() - keep] {
                    if let Err(e) = std::fs::remove_file(old) {
                        log::warn!("cannot remove old checkpoint {}: {e}", old.display());
                    }
                }
            }
        }
        Ok(improved)
    }

    /// Loads model, optimizer, scheduler and loop state from a checkpoint.
    fn restore(
        &self,
        learner: &mut Learner<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        >,
        path: &Path,
    ) -> Result<LoopState, TrainError> {
        let ckpt = Checkpoint::load(path)?;
        let state: LoopState =
            serde_json::from_value(ckpt.state.clone()).map_err(|e| TrainError::Record {
                path: path.to_path_buf(),
                section: "state".into(),
                message: e.to_string(),
            })?;
        let model_bytes = ckpt.require("model", path)?.to_vec();
        let record: ModelRecordOf<
            burn::train::LearningComponentsMarker<B, AntMmfLrSchedule, M, AntmmfOptimizer<M, B>>,
        > = recorder()
            .load(model_bytes, &self.device)
            .map_err(|e| TrainError::Record {
                path: path.to_path_buf(),
                section: "model".into(),
                message: e.to_string(),
            })?;
        learner.load_model(record);
        match ckpt.section("optimizer") {
            Some(bytes) => {
                let record: OptimRecordOf<
                    burn::train::LearningComponentsMarker<
                        B,
                        AntMmfLrSchedule,
                        M,
                        AntmmfOptimizer<M, B>,
                    >,
                > = recorder().load(bytes.to_vec(), &self.device).map_err(|e| {
                    TrainError::Record {
                        path: path.to_path_buf(),
                        section: "optimizer".into(),
                        message: e.to_string(),
                    }
                })?;
                learner.load_optim(record);
            }
            None => log::warn!(
                "{} has no optimizer state: the optimizer starts afresh",
                path.display()
            ),
        }
        learner.load_scheduler(state.scheduler_steps as usize);
        Ok(state)
    }

    /// On resume: the training log up to the resumed iteration, and `metrics.jsonl` cut back to
    /// it (a run killed after writing a snapshot but before logging its metrics gets that line
    /// back from the checkpoint's state).
    fn logs_up_to(&self, state: &LoopState) -> Result<Vec<LogRecord>, TrainError> {
        let io = |p: &Path, e: std::io::Error| TrainError::Io(format!("{}: {e}", p.display()));
        let log_path = self.run.logs_dir().join("train_log.json");
        let mut history: Vec<LogRecord> = std::fs::read(&log_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        history.retain(|r| r.iteration <= state.iteration);
        let metrics_path = self.run.logs_dir().join("metrics.jsonl");
        let text = std::fs::read_to_string(&metrics_path).unwrap_or_default();
        let mut kept: Vec<String> = Vec::new();
        let mut has_resumed = false;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue; // a line torn by a kill
            };
            let it = v["iteration"].as_u64().unwrap_or(u64::MAX);
            if it <= state.iteration {
                has_resumed |= it == state.iteration;
                kept.push(line.to_string());
            }
        }
        if !has_resumed
            && state
                .iteration
                .is_multiple_of(self.settings.snapshot_interval)
        {
            kept.push(
                serde_json::json!({
                    "iteration": state.iteration,
                    "metrics": state.last_metrics,
                    "best_metric": state.best_metric,
                    "best_iteration": state.best_iteration,
                })
                .to_string(),
            );
        }
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        write_atomic(&metrics_path, out.as_bytes()).map_err(|e| io(&metrics_path, e))?;
        Ok(history)
    }

    fn write_history(&self, history: &[LogRecord]) -> Result<(), TrainError> {
        let path = self.run.logs_dir().join("train_log.json");
        let bytes = serde_json::to_vec_pretty(history).unwrap_or_default();
        write_atomic(&path, &bytes).map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))
    }
}

/// The newest verifiable snapshot of a run directory, for `resume True` (damaged newer files are
/// skipped with a warning).
pub fn latest_good_checkpoint(run: &RunDir) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = run
        .list_iteration_checkpoints(CKPT_EXT)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    load_newest_good(&candidates).ok().map(|(p, _)| p)
}

/// Adds a line to a small log file by rewriting it atomically (temporary file, fsync, rename), so
/// a crash leaves the previous complete file, never a torn line.
fn append_line(path: &Path, line: &str) -> Result<(), TrainError> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(TrainError::Io(format!("{}: {e}", path.display()))),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    write_atomic(path, text.as_bytes())
        .map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))
}

/// This member's values in a step's all-reduce: `[failed, stop, total loss, parts fingerprint
/// (two 8-bit pieces and their squares), MAX_LOGGED_PARTS part values]`, a fixed length whatever
/// the step produced.
fn step_control(failed: bool, stop: bool, loss: f64, parts: &[(String, f64)]) -> Vec<f32> {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    let [f0, f1] = parts_fingerprint(&names);
    let mut out = vec![
        flag(failed),
        flag(stop),
        loss as f32,
        f0,
        f1,
        f0 * f0,
        f1 * f1,
    ];
    out.extend((0..MAX_LOGGED_PARTS).map(|i| parts.get(i).map(|(_, v)| *v as f32).unwrap_or(0.0)));
    out
}

/// A step's summed [`step_control`] values, read back.
struct StepSums {
    /// Some member's loss was not finite.
    failed: bool,
    /// Some member was asked to stop.
    stop: bool,
    /// The mean total loss.
    loss: f64,
    /// The mean loss parts, when every member names the same parts.
    parts: Option<Vec<(String, f64)>>,
}

impl StepSums {
    fn read(sums: &[f32], world: usize, local_parts: &[(String, f64)]) -> Self {
        let w = world as f32;
        let at = |i: usize| sums.get(i).copied().unwrap_or(f32::NAN);
        let names: Vec<&str> = local_parts.iter().map(|(n, _)| n.as_str()).collect();
        let [f0, f1] = parts_fingerprint(&names);
        // Small integers sum exactly: the sums of the pieces and of their squares are `w`
        // times this member's iff every member has the same pieces (zero variance).
        let same_parts =
            at(3) == w * f0 && at(4) == w * f1 && at(5) == w * f0 * f0 && at(6) == w * f1 * f1;
        let parts = same_parts.then(|| {
            local_parts
                .iter()
                .enumerate()
                .map(|(i, (name, local))| {
                    let mean = if i < MAX_LOGGED_PARTS {
                        at(7 + i) as f64 / world as f64
                    } else {
                        *local
                    };
                    (name.clone(), mean)
                })
                .collect()
        });
        Self {
            failed: at(0) > 0.0,
            stop: at(1) > 0.0,
            loss: at(2) as f64 / world as f64,
            parts,
        }
    }
}

#[derive(Default)]
struct IntervalStats {
    n: u64,
    loss: f64,
    parts: BTreeMap<String, f64>,
    secs: f64,
    data_secs: f64,
}

impl IntervalStats {
    fn add(&mut self, loss: f64, parts: &[(String, f64)], secs: f64, data_secs: f64) {
        self.n += 1;
        self.loss += loss;
        self.secs += secs;
        self.data_secs += data_secs;
        for (k, v) in parts {
            *self.parts.entry(k.clone()).or_insert(0.0) += v;
        }
    }

    fn finish(&mut self, iteration: u64, lr: f64, grad_norm: Option<f64>) -> LogRecord {
        let n = self.n.max(1) as f64;
        let rec = LogRecord {
            iteration,
            lr,
            loss: self.loss / n,
            parts: self.parts.iter().map(|(k, v)| (k.clone(), v / n)).collect(),
            sec_per_iter: self.secs / n,
            data_wait_per_iter: self.data_secs / n,
            grad_norm,
        };
        *self = Self::default();
        rec
    }

    fn finish_partial(
        &mut self,
        iteration: u64,
        lr: f64,
        grad_norm: Option<f64>,
    ) -> Option<LogRecord> {
        (self.n > 0).then(|| self.finish(iteration, lr, grad_norm))
    }
}

fn write_train_scalars(w: &mut antmmf_core::tensorboard::EventWriter, r: &LogRecord) {
    let mut values: Vec<(String, f64)> = vec![
        ("train/total_loss".into(), r.loss),
        ("train/lr".into(), r.lr),
        ("train/sec_per_iter".into(), r.sec_per_iter),
        ("train/data_wait_per_iter".into(), r.data_wait_per_iter),
    ];
    if let Some(g) = r.grad_norm {
        values.push(("train/grad_norm".into(), g));
    }
    values.extend(r.parts.iter().map(|(k, v)| (format!("train/{k}"), *v)));
    if let Err(e) = w.scalars(r.iteration, values.iter().map(|(k, v)| (k.as_str(), *v))) {
        log::warn!("TensorBoard event file: {e}");
    }
}

/// The iterations the run is set to: `max_iterations`, else `max_epochs` epochs.
fn planned_iterations(s: &TrainerSettings, per_epoch: u64) -> Option<u64> {
    s.max_iterations
        .or_else(|| s.max_epochs.map(|e| e * per_epoch))
}

fn log_line(r: &LogRecord, s: &TrainerSettings, per_epoch: u64, state: &LoopState) {
    let total = planned_iterations(s, per_epoch).unwrap_or(0);
    let eta = if total > r.iteration {
        format!(
            ", ETA {:.0}s",
            (total - r.iteration) as f64 * (r.sec_per_iter + r.data_wait_per_iter)
        )
    } else {
        String::new()
    };
    let parts: Vec<String> = r.parts.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    log::info!(
        "progress: {}/{}, epoch {}, total_loss {:.4} ({}), lr {:.3e}, {:.3} s/it, data wait \
         {:.3} s/it{eta}",
        r.iteration,
        if total > 0 {
            total.to_string()
        } else {
            "?".into()
        },
        state.epoch,
        r.loss,
        parts.join(", "),
        r.lr,
        r.sec_per_iter,
        r.data_wait_per_iter
    );
}

/// Exposes a [`ResumableLoader`] through burn's `DataLoader` interface (what
/// `SupervisedTraining::new` takes). The custom strategy reads the resumable loader directly;
/// this view iterates epoch 0 from its start.
struct BurnLoaderView<L, O> {
    inner: Arc<L>,
    _o: std::marker::PhantomData<fn() -> O>,
}

struct ViewIter<'a, O> {
    inner: Box<dyn Iterator<Item = O> + 'a>,
    done: usize,
    total: usize,
}

impl<O> Iterator for ViewIter<'_, O> {
    type Item = O;
    fn next(&mut self) -> Option<O> {
        let item = self.inner.next()?;
        self.done += 1;
        Some(item)
    }
}

impl<O> burn::data::dataloader::DataLoaderIterator<O> for ViewIter<'_, O> {
    fn progress(&self) -> burn::data::dataloader::Progress {
        burn::data::dataloader::Progress::new(self.done, self.total)
    }
}

impl<B, O, L> burn::data::dataloader::DataLoader<B, O> for BurnLoaderView<L, O>
where
    B: Backend,
    O: 'static,
    L: ResumableLoader<O> + 'static,
{
    fn iter<'a>(&'a self) -> Box<dyn burn::data::dataloader::DataLoaderIterator<O> + 'a> {
        Box::new(ViewIter {
            inner: self.inner.iter_from(0, 0),
            done: 0,
            total: self.inner.batches_per_epoch(),
        })
    }

    fn num_items(&self) -> usize {
        self.inner.batches_per_epoch()
    }

    fn to_device(&self, _device: &B::Device) -> Arc<dyn burn::data::dataloader::DataLoader<B, O>> {
        Arc::new(Self {
            inner: self.inner.clone(),
            _o: std::marker::PhantomData,
        })
    }

    fn slice(
        &self,
        _start: usize,
        _end: usize,
    ) -> Arc<dyn burn::data::dataloader::DataLoader<B, O>> {
        Arc::new(Self {
            inner: self.inner.clone(),
            _o: std::marker::PhantomData,
        })
    }
}

/// Validation is run by [`TaskHooks::validate`]; burn-train's validation loader slot gets an
/// empty loader.
struct NoBatches<O>(std::marker::PhantomData<fn() -> O>);

impl<B: Backend, O: 'static> burn::data::dataloader::DataLoader<B, O> for NoBatches<O> {
    fn iter<'a>(&'a self) -> Box<dyn burn::data::dataloader::DataLoaderIterator<O> + 'a> {
        Box::new(ViewIter {
            inner: Box::new(std::iter::empty()),
            done: 0,
            total: 0,
        })
    }
    fn num_items(&self) -> usize {
        0
    }
    fn to_device(&self, _device: &B::Device) -> Arc<dyn burn::data::dataloader::DataLoader<B, O>> {
        Arc::new(NoBatches(std::marker::PhantomData))
    }
    fn slice(&self, _s: usize, _e: usize) -> Arc<dyn burn::data::dataloader::DataLoader<B, O>> {
        Arc::new(NoBatches(std::marker::PhantomData))
    }
}

/// Everything a training run needs besides the model.
pub struct TrainRun<L, H> {
    /// The training batches.
    pub loader: Arc<L>,
    /// Task hooks (MoCo updates, validation).
    pub hooks: Arc<H>,
    /// Loop settings.
    pub settings: TrainerSettings,
    /// The run directory (created by the caller).
    pub run: RunDir,
    /// Start from scratch or resume.
    pub start: StartFrom,
}

/// Trains `model` with `optim` and `schedule` through burn-train, returning the trained
/// inference model and the run summary; progress is shown as `ANTMMF_PROGRESS` asks (by default
/// burn's TUI when stdout is a terminal, else one log line per `log_interval`).
pub fn launch<B, M, L, H>(
    model: M,
    optim: AntmmfOptimizer<M, B>,
    schedule: AntMmfLrSchedule,
    device: B::Device,
    run: TrainRun<L, H>,
) -> Result<(M::InnerModule, TrainSummary), TrainError>
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M as TrainStep>::Output: LossReport,
    <<M as TrainStep>::Output as ItemLazy>::ItemSync: Adaptor<LossValues> + 'static,
    <M::InnerModule as InferenceStep>::Input: 'static,
    L: ResumableLoader<<M as TrainStep>::Input> + 'static,
    H: TaskHooks<B, M> + 'static,
{
    launch_in_group(model, optim, schedule, device, run, None)
}

/// [`launch`] as a member of a data-parallel group (`None`: alone), with the progress display
/// `ANTMMF_PROGRESS` asks for.
pub fn launch_in_group<B, M, L, H>(
    model: M,
    optim: AntmmfOptimizer<M, B>,
    schedule: AntMmfLrSchedule,
    device: B::Device,
    run: TrainRun<L, H>,
    group: Option<Arc<dyn AllReduce<B::InnerBackend>>>,
) -> Result<(M::InnerModule, TrainSummary), TrainError>
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M as TrainStep>::Output: LossReport,
    <<M as TrainStep>::Output as ItemLazy>::ItemSync: Adaptor<LossValues> + 'static,
    <M::InnerModule as InferenceStep>::Input: 'static,
    L: ResumableLoader<<M as TrainStep>::Input> + 'static,
    H: TaskHooks<B, M> + 'static,
{
    let display = ProgressDisplay::from_env().map_err(TrainError::Setting)?;
    launch_with_group(model, optim, schedule, device, run, display, group)
}

/// [`launch`] with the progress display given (tests and embedding applications pass
/// [`ProgressDisplay::Custom`] to receive burn-train's events).
pub fn launch_with_progress<B, M, L, H>(
    model: M,
    optim: AntmmfOptimizer<M, B>,
    schedule: AntMmfLrSchedule,
    device: B::Device,
    run: TrainRun<L, H>,
    display: ProgressDisplay,
) -> Result<(M::InnerModule, TrainSummary), TrainError>
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M as TrainStep>::Output: LossReport,
    <<M as TrainStep>::Output as ItemLazy>::ItemSync: Adaptor<LossValues> + 'static,
    <M::InnerModule as InferenceStep>::Input: 'static,
    L: ResumableLoader<<M as TrainStep>::Input> + 'static,
    H: TaskHooks<B, M> + 'static,
{
    launch_with_group(model, optim, schedule, device, run, display, None)
}

/// [`launch_with_progress`] as member `group.rank()` of a data-parallel group (`None`: alone).
/// Every member calls it with the same model, settings and number of batches per epoch, each
/// with its own shard of the data; member 0 writes `run` (the others write nothing there).
pub fn launch_with_group<B, M, L, H>(
    model: M,
    optim: AntmmfOptimizer<M, B>,
    schedule: AntMmfLrSchedule,
    device: B::Device,
    run: TrainRun<L, H>,
    display: ProgressDisplay,
    group: Option<Arc<dyn AllReduce<B::InnerBackend>>>,
) -> Result<(M::InnerModule, TrainSummary), TrainError>
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M as TrainStep>::Output: LossReport,
    <<M as TrainStep>::Output as ItemLazy>::ItemSync: Adaptor<LossValues> + 'static,
    <M::InnerModule as InferenceStep>::Input: 'static,
    L: ResumableLoader<<M as TrainStep>::Input> + 'static,
    H: TaskHooks<B, M> + 'static,
{
    let burn_dir = run.run.root().join("burn");
    let (mut strategy, outcome) = AntmmfTraining::new(
        run.loader.clone(),
        run.hooks,
        run.settings,
        run.run,
        device,
        run.start,
        &optim,
    );
    let link = ProgressLink::default();
    strategy.link = link.clone();
    strategy.group = group;
    let interrupter = Interrupter::new();
    // While the TUI owns the terminal: log records only to the run's log file, and signals stop
    // the loop (their default action would leave the terminal in raw mode). Both end after the
    // TUI has closed (handlers first, then the pause, which writes the held warnings), also
    // when unwinding.
    let mut stderr_pause = None;
    let mut signals = None;
    let renderer: Box<dyn MetricsRenderer> = match display {
        ProgressDisplay::Tui => {
            stderr_pause = Some(antmmf_core::logging::pause_stderr());
            signals = TerminalSignals::install(&link);
            Box::new(LazyTui::new(interrupter.clone(), &link))
        }
        ProgressDisplay::Plain => Box::new(PlainRenderer),
        ProgressDisplay::Custom(make) => make(interrupter.clone()),
    };
    let train_view: Arc<dyn burn::data::dataloader::DataLoader<B, <M as TrainStep>::Input>> =
        Arc::new(BurnLoaderView {
            inner: run.loader,
            _o: std::marker::PhantomData,
        });
    let valid_view: Arc<
        dyn burn::data::dataloader::DataLoader<
                B::InnerBackend,
                <M::InnerModule as InferenceStep>::Input,
            >,
    > = Arc::new(NoBatches(std::marker::PhantomData));
    let result = burn::train::SupervisedTraining::new(burn_dir, train_view, valid_view)
        .with_application_logger(None)
        .with_metric_logger(NoMetricFiles)
        .with_interrupter(interrupter)
        .renderer(BoxedRenderer(renderer))
        .metric_train_numeric(TotalLossMetric::new())
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train(LossPartsMetric::new())
        .metric_train(LastValidationMetric::new(link.validation.clone()))
        .with_training_strategy(burn::train::TrainingStrategy::Custom(Arc::new(strategy)))
        .launch(Learner::new(model, optim, schedule));
    // Closes the TUI (if any), giving the terminal back.
    drop(result.renderer);
    drop(signals);
    drop(stderr_pause);
    let summary = outcome.take()?;
    Ok((result.model, summary))
}
