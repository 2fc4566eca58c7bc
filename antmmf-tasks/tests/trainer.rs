//! The training loop on a toy regression task: iteration counting, snapshots and rotation, best
//! checkpoint, bit-exact resume with `restart False`, non-finite losses, early stopping, and the
//! progress events and plain progress output, and burn's TUI on a pseudo-terminal.

use crate::common::toy::{Batch, Toy, toy_model as model, toy_schedule, toy_settings};
use antmmf_core::run_dir::RunDir;
use antmmf_tasks::optim::{AntmmfOptimizer, AntmmfOptimizerConfig};
use antmmf_tasks::progress::{PROGRESS_ENV, ProgressDisplay};
use antmmf_tasks::trainer::{
    ResumableLoader, StartFrom, TaskHooks, TrainError, TrainRun, TrainerSettings, launch,
    launch_with_progress,
};
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use burn::train::metric::{MetricDefinition, MetricId};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn::train::{InferenceStep, Interrupter, LearnerSummary};
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

type B = Autodiff<Flex>;
type Inner = Flex;

/// Deterministic batches of y = x . [1, -2, 0.5] + 0.3, from (seed, epoch, batch); one batch
/// can be poisoned with NaN.
struct Data {
    seed: u64,
    batches: usize,
    poison: Option<(usize, usize)>,
}

impl Data {
    fn batch<Bk: Backend>(&self, epoch: usize, index: usize, device: &Bk::Device) -> Batch<Bk> {
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(self.seed * 1000 + (epoch * 100 + index) as u64);
        let n = 8;
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let a: [f32; 3] = [
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            ];
            x.extend_from_slice(&a);
            y.push(a[0] - 2.0 * a[1] + 0.5 * a[2] + 0.3);
        }
        if self.poison == Some((epoch, index)) {
            x[0] = f32::NAN;
        }
        Batch {
            x: Tensor::from_data(TensorData::new(x, [n, 3]), device),
            y: Tensor::from_data(TensorData::new(y, [n, 1]), device),
        }
    }
}

impl ResumableLoader<Batch<B>> for Data {
    fn batches_per_epoch(&self) -> usize {
        self.batches
    }
    fn iter_from(&self, epoch: usize, batch: usize) -> Box<dyn Iterator<Item = Batch<B>> + '_> {
        Box::new((batch..self.batches).map(move |i| self.batch::<B>(epoch, i, &Default::default())))
    }
}

struct Hooks {
    val: Data,
}

impl<Bk: AutodiffBackend<InnerBackend = Inner>> TaskHooks<Bk, Toy<Bk>> for Hooks
where
    Toy<Bk>: AutodiffModule<Bk, InnerModule = Toy<Inner>>,
{
    fn validate(&self, model: &Toy<Inner>) -> Result<BTreeMap<String, f64>, String> {
        let mut total = 0.0;
        for i in 0..self.val.batches {
            total +=
                InferenceStep::step(model, self.val.batch::<Inner>(0, i, &Default::default())).loss;
        }
        Ok(BTreeMap::from([(
            "val/mse".to_string(),
            total / self.val.batches as f64,
        )]))
    }
}

type Trained = (Toy<Inner>, antmmf_tasks::trainer::TrainSummary);

/// A run with plain progress (a developer's terminal must not open the TUI under `cargo test`).
fn run(
    dir: &std::path::Path,
    max_iterations: u64,
    start: StartFrom,
    poison: Option<(usize, usize)>,
    tweak: impl FnOnce(&mut TrainerSettings),
) -> Result<Trained, TrainError> {
    run_shown(
        dir,
        max_iterations,
        start,
        poison,
        tweak,
        Some(ProgressDisplay::Plain),
    )
}

/// A run with the given progress display; `None`: as `ANTMMF_PROGRESS` and stdout decide.
fn run_shown(
    dir: &std::path::Path,
    max_iterations: u64,
    start: StartFrom,
    poison: Option<(usize, usize)>,
    tweak: impl FnOnce(&mut TrainerSettings),
    display: Option<ProgressDisplay>,
) -> Result<Trained, TrainError> {
    let m = model();
    let optim = AntmmfOptimizer::<_, B>::new(
        &AntmmfOptimizerConfig {
            weight_decay: 0.01,
            max_grad_norm: Some(5.0),
            ..Default::default()
        },
        &m,
    );
    let mut s = toy_settings(max_iterations);
    tweak(&mut s);
    let run = RunDir::at(dir, "toy");
    std::fs::create_dir_all(run.models_dir()).unwrap();
    let train_run = TrainRun {
        loader: Arc::new(Data {
            seed: 1,
            batches: 12,
            poison,
        }),
        hooks: Arc::new(Hooks {
            val: Data {
                seed: 99,
                batches: 3,
                poison: None,
            },
        }),
        settings: s,
        run,
        start,
    };
    match display {
        Some(display) => launch_with_progress(
            m,
            optim,
            toy_schedule(),
            Default::default(),
            train_run,
            display,
        ),
        None => launch(m, optim, toy_schedule(), Default::default(), train_run),
    }
}

fn weights(m: &Toy<Inner>) -> Vec<f32> {
    let mut w: Vec<f32> = m.lin.weight.val().into_data().to_vec().unwrap();
    w.extend(
        m.lin
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap(),
    );
    w
}

#[test]
fn trains_snapshots_rotates_and_keeps_best() {
    let dir = tempfile::tempdir().unwrap();
    let (_, summary) = run(dir.path(), 40, StartFrom::Scratch, None, |_| {}).unwrap();
    assert_eq!(summary.state.iteration, 40);
    // 12 batches per epoch: iteration 40 is batch 4 of epoch 3.
    assert_eq!((summary.state.epoch, summary.state.batch_in_epoch), (3, 4));
    let first = summary.history.first().unwrap().loss;
    let last = summary.history.last().unwrap().loss;
    assert!(last < first * 0.2, "loss should fall: {first} -> {last}");
    // Log every 5 iterations.
    let logged: Vec<u64> = summary.history.iter().map(|h| h.iteration).collect();
    assert_eq!(logged, vec![5, 10, 15, 20, 25, 30, 35, 40]);
    // LR: warmup from 0.2 * 0.05 over 5 iterations, then halved after iteration 25.
    let lr_at = |it: u64| {
        summary
            .history
            .iter()
            .find(|h| h.iteration == it)
            .unwrap()
            .lr
    };
    assert!((lr_at(20) - 0.05).abs() < 1e-12, "{}", lr_at(20));
    assert!((lr_at(30) - 0.025).abs() < 1e-12, "{}", lr_at(30));
    // max_ckpt_num 2: only the last two snapshots remain; best and final exist.
    let run = RunDir::at(dir.path(), "toy");
    let kept: Vec<u64> = run
        .list_iteration_checkpoints("ckpt")
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(kept, vec![30, 40]);
    assert!(run.best_checkpoint("ckpt").is_file());
    assert!(summary.final_checkpoint.ends_with("toy_final.ckpt"));
    assert!(summary.final_checkpoint.is_file());
    let best = summary.state.best_metric.unwrap();
    let hooks = Hooks {
        val: Data {
            seed: 99,
            batches: 3,
            poison: None,
        },
    };
    let initial = TaskHooks::<B, Toy<B>>::validate(&hooks, &model().valid()).unwrap()["val/mse"];
    assert!(
        best < initial * 0.2,
        "best val/mse {best}, initial {initial}"
    );
    let metrics = std::fs::read_to_string(run.logs_dir().join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 4);
    // TensorBoard: train scalars at every log line, validation metrics at every snapshot.
    let event_file = std::fs::read_dir(run.logs_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .expect("an event file");
    let scalars =
        antmmf_core::tensorboard::read_scalars(&std::fs::read(event_file).unwrap()).unwrap();
    let losses: Vec<i64> = scalars
        .iter()
        .filter(|s| s.1 == "train/total_loss")
        .map(|s| s.0)
        .collect();
    assert_eq!(losses, vec![5, 10, 15, 20, 25, 30, 35, 40]);
    let vals: Vec<i64> = scalars
        .iter()
        .filter(|s| s.1 == "val/mse")
        .map(|s| s.0)
        .collect();
    assert_eq!(vals, vec![10, 20, 30, 40]);
}

#[test]
fn resume_restart_false_is_bit_exact() {
    let full = tempfile::tempdir().unwrap();
    let (m_full, s_full) = run(full.path(), 40, StartFrom::Scratch, None, |s| {
        s.max_ckpt_num = None
    })
    .unwrap();

    let part = tempfile::tempdir().unwrap();
    let (_, s_part) = run(part.path(), 20, StartFrom::Scratch, None, |s| {
        s.max_ckpt_num = None
    })
    .unwrap();
    assert_eq!(s_part.state.iteration, 20);
    let ckpt = RunDir::at(part.path(), "toy").iteration_checkpoint(20, "ckpt");
    let saved = antmmf_core::checkpoint::Checkpoint::load(&ckpt).unwrap();
    assert!(
        saved.section("optimizer").is_some(),
        "snapshots carry the optimizer state"
    );
    assert_eq!(saved.state["iteration"], 20);
    let (m_resumed, s_resumed) = run(part.path(), 40, StartFrom::Resume(ckpt), None, |s| {
        s.max_ckpt_num = None
    })
    .unwrap();

    assert_eq!(s_resumed.state.iteration, 40);
    assert_eq!(
        s_resumed.state.scheduler_steps,
        s_full.state.scheduler_steps
    );
    assert_eq!(
        weights(&m_resumed),
        weights(&m_full),
        "resumed weights differ"
    );
    // The resumed run's log continues the interrupted one: the whole history equals the
    // uninterrupted run's (LR, loss, gradient norm; timings aside), and so does metrics.jsonl.
    // Records before the resume point come back from logs/train_log.json (serde_json's float
    // parsing is exact to about 1e-16 relative, not bit for bit); the ones after are computed.
    assert_eq!(s_resumed.history.len(), s_full.history.len());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(1.0);
    for (r, f) in s_resumed.history.iter().zip(&s_full.history) {
        assert_eq!((r.iteration, r.lr), (f.iteration, f.lr));
        assert!(close(r.loss, f.loss), "{r:?} vs {f:?}");
        assert!(
            close(r.grad_norm.unwrap(), f.grad_norm.unwrap()),
            "{r:?} vs {f:?}"
        );
        if r.iteration > 20 {
            assert_eq!(
                (r.loss, r.grad_norm),
                (f.loss, f.grad_norm),
                "computed after resume"
            );
        }
    }
    let metrics = |dir: &std::path::Path| {
        std::fs::read_to_string(RunDir::at(dir, "toy").logs_dir().join("metrics.jsonl")).unwrap()
    };
    assert_eq!(metrics(part.path()), metrics(full.path()));
    assert_eq!(s_resumed.state.best_metric, s_full.state.best_metric);
}

#[test]
fn non_finite_loss_stops_with_loss_and_iteration_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    // Batch 2 of epoch 1 = iteration 15.
    let err = run(dir.path(), 40, StartFrom::Scratch, Some((1, 2)), |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("non-finite loss `mse`"), "{msg}");
    assert!(msg.contains("at iteration 15"), "{msg}");
    assert!(msg.contains("model_10.ckpt"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let (m, summary) = run(dir.path(), 40, StartFrom::Scratch, Some((1, 2)), |s| {
        s.skip_nan_steps = true
    })
    .unwrap();
    assert_eq!(summary.state.skipped_nan_steps, 1);
    assert!(weights(&m).iter().all(|w| w.is_finite()));
}

#[test]
fn early_stopping_on_a_metric_that_cannot_improve() {
    let dir = tempfile::tempdir().unwrap();
    let (_, summary) = run(dir.path(), 200, StartFrom::Scratch, None, |s| {
        s.should_early_stop = true;
        s.patience = 20;
        // Maximising an error: it improves at first only by chance, then stops.
        s.metric_minimize = false;
    })
    .unwrap();
    assert!(summary.early_stopped);
    assert!(summary.state.iteration < 200);
    assert_eq!(summary.state.iteration % 10, 0);
}

/// What a renderer saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// A metric registered (burn-train's `Start` event).
    Registered(String),
    /// One `ProcessedItem`: its progress and the metric updates that came with it.
    Item {
        iteration: Option<usize>,
        global: (usize, usize),
        batch: Option<(usize, usize)>,
        values: BTreeMap<String, f64>,
        text: BTreeMap<String, String>,
    },
    /// burn-train's `End` event.
    End,
}

/// A renderer recording every call; it can stop the run when it sees an iteration.
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    names: HashMap<MetricId, String>,
    values: BTreeMap<String, f64>,
    text: BTreeMap<String, String>,
    stop_at: Option<(usize, Interrupter)>,
}

impl Recorder {
    /// A display feeding a new recorder, and what it sees.
    fn display(stop_at: Option<usize>) -> (ProgressDisplay, Arc<Mutex<Vec<Seen>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        let display = ProgressDisplay::Custom(Box::new(move |interrupter| {
            Box::new(Recorder {
                seen: shared,
                names: HashMap::new(),
                values: BTreeMap::new(),
                text: BTreeMap::new(),
                stop_at: stop_at.map(|i| (i, interrupter)),
            }) as Box<dyn MetricsRenderer>
        }));
        (display, seen)
    }

    fn name(&self, id: &MetricId) -> String {
        self.names.get(id).cloned().unwrap_or_default()
    }
}

impl MetricsRendererTraining for Recorder {
    fn update_train(&mut self, state: MetricState) {
        match state {
            MetricState::Numeric(entry, value) => {
                let name = self.name(&entry.metric_id);
                self.text
                    .insert(name.clone(), entry.serialized_entry.formatted.clone());
                self.values.insert(name, value.current());
            }
            MetricState::Generic(entry) => {
                let name = self.name(&entry.metric_id);
                self.text.insert(name, entry.serialized_entry.formatted);
            }
        }
    }
    fn update_valid(&mut self, _state: MetricState) {
        panic!("the loop validates through its hooks, not burn's validation events");
    }
    fn render_train(&mut self, item: TrainingProgress, _indicators: Vec<ProgressType>) {
        if let Some((at, interrupter)) = &self.stop_at
            && item.iteration == Some(*at)
        {
            interrupter.stop(Some("stop requested by the test"));
        }
        self.seen.lock().unwrap().push(Seen::Item {
            iteration: item.iteration,
            global: (
                item.global_progress.items_processed,
                item.global_progress.items_total,
            ),
            batch: item.progress.map(|p| (p.items_processed, p.items_total)),
            values: std::mem::take(&mut self.values),
            text: std::mem::take(&mut self.text),
        });
    }
    fn render_valid(&mut self, _item: TrainingProgress, _indicators: Vec<ProgressType>) {
        panic!("no validation events expected");
    }
    fn on_train_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.seen.lock().unwrap().push(Seen::End);
        Ok(())
    }
}

impl MetricsRendererEvaluation for Recorder {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
    fn render_test(&mut self, _item: EvaluationProgress, _indicators: Vec<ProgressType>) {}
}

impl MetricsRenderer for Recorder {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.clone());
        self.seen
            .lock()
            .unwrap()
            .push(Seen::Registered(definition.name));
    }
}

/// The `Item`s seen, as (iteration, global, batch, values, text).
#[allow(clippy::type_complexity)]
fn items_of(
    seen: &[Seen],
) -> Vec<(
    Option<usize>,
    (usize, usize),
    Option<(usize, usize)>,
    BTreeMap<String, f64>,
    BTreeMap<String, String>,
)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Item {
                iteration,
                global,
                batch,
                values,
                text,
            } => Some((*iteration, *global, *batch, values.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

/// `Start` (the metric registrations) first, then items, then one `End`, last.
fn assert_start_items_end(seen: &[Seen]) {
    let first_item = seen
        .iter()
        .position(|s| matches!(s, Seen::Item { .. }))
        .expect("progress items");
    let registered: Vec<&Seen> = seen
        .iter()
        .filter(|s| matches!(s, Seen::Registered(_)))
        .collect();
    let names: BTreeSet<String> = seen[..first_item]
        .iter()
        .filter_map(|s| match s {
            Seen::Registered(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "Learning Rate".into(),
            "Loss".into(),
            "Loss parts".into(),
            "Validation".into()
        ])
    );
    assert_eq!(registered.len(), 4, "registered once, before any item");
    assert_eq!(seen.iter().filter(|s| **s == Seen::End).count(), 1);
    assert_eq!(seen.last(), Some(&Seen::End));
}

#[test]
fn progress_events_carry_iteration_lr_and_losses() {
    let dir = tempfile::tempdir().unwrap();
    let (display, seen) = Recorder::display(None);
    let (_, summary) = run_shown(
        dir.path(),
        40,
        StartFrom::Scratch,
        None,
        |s| s.max_ckpt_num = None,
        Some(display),
    )
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_start_items_end(&seen);
    let items = items_of(&seen);
    assert_eq!(items.len(), 40, "one item per iteration");
    for (k, (iteration, global, batch, values, text)) in items.iter().enumerate() {
        let i = k + 1;
        assert_eq!(*iteration, Some(i));
        // Progress over the planned 40 iterations; the batch within the 12-batch epoch.
        assert_eq!(*global, (i, 40));
        assert_eq!(*batch, Some(((i - 1) % 12 + 1, 12)));
        assert!(values["Loss"].is_finite() && values["Learning Rate"] > 0.0);
        assert!(
            text["Loss parts"].starts_with("mse "),
            "{}",
            text["Loss parts"]
        );
    }
    // The latest validation (every 10 iterations) as the loop logs it, read when burn's event
    // thread handles the item: the one before the item's iteration, or one the loop has done
    // since (it runs at most one iteration ahead of that thread).
    for (k, item) in items.iter().enumerate() {
        let i = k + 1;
        let shown = &item.4["Validation"];
        let at = match shown.as_str() {
            "none yet" => 0,
            _ => shown
                .strip_prefix("iteration ")
                .and_then(|r| r.split_once(": val/mse "))
                .and_then(|(at, _)| at.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("item {i}: {shown}")),
        };
        assert!(
            at % 10 == 0 && (i - 1) / 10 * 10 <= at && at <= i + 1,
            "item {i}: {shown}"
        );
    }
    // The LR of each item is the step's: the logged LR at the log points (warmup, then halved
    // after iteration 25).
    let lr = |i: usize| items[i - 1].3["Learning Rate"];
    for h in &summary.history {
        assert_eq!(lr(h.iteration as usize), h.lr, "iteration {}", h.iteration);
    }
    assert!(lr(1) < lr(5), "warmup: {} -> {}", lr(1), lr(5));
    assert_eq!((lr(20), lr(30)), (0.05, 0.025));
    // The per-iteration losses average to the logged interval means.
    for h in &summary.history {
        let end = h.iteration as usize;
        let mean = (end - 4..=end).map(|i| items[i - 1].3["Loss"]).sum::<f64>() / 5.0;
        assert!(
            (mean - h.loss).abs() <= 1e-12 * h.loss.abs().max(1.0),
            "iteration {end}: {mean} vs {}",
            h.loss
        );
    }
    // `EndEpoch` after each epoch: the epoch's running mean restarts at iterations 13, 25, 37.
    let epoch_and_batch = |i: usize| {
        let shown = &items[i - 1].4["Loss"];
        let (epoch, batch) = shown
            .strip_prefix("epoch ")
            .and_then(|r| r.split_once(" - batch "))
            .unwrap_or_else(|| panic!("{shown}"));
        (epoch.to_string(), batch.to_string())
    };
    for i in [1, 13, 25, 37] {
        let (epoch, batch) = epoch_and_batch(i);
        assert_eq!(epoch, batch, "iteration {i} starts an epoch");
    }
    let (epoch, batch) = epoch_and_batch(12);
    assert_ne!(epoch, batch, "iteration 12: the mean of 12 losses");

    // A resumed run's progress continues from the snapshot.
    let part = tempfile::tempdir().unwrap();
    run(part.path(), 20, StartFrom::Scratch, None, |_| {}).unwrap();
    let ckpt = RunDir::at(part.path(), "toy").iteration_checkpoint(20, "ckpt");
    let (display, seen) = Recorder::display(None);
    run_shown(
        part.path(),
        40,
        StartFrom::Resume(ckpt),
        None,
        |_| {},
        Some(display),
    )
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_start_items_end(&seen);
    let resumed = items_of(&seen);
    assert_eq!(resumed.len(), 20);
    assert_eq!(
        (resumed[0].0, resumed[0].1, resumed[0].2),
        (Some(21), (21, 40), Some((9, 12)))
    );
    assert_eq!(resumed[19].0, Some(40));
    for (r, f) in resumed.iter().zip(&items[20..]) {
        assert_eq!(r.3["Learning Rate"], f.3["Learning Rate"]);
    }
}

#[test]
fn the_renderer_stop_control_interrupts_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (display, seen) = Recorder::display(Some(12));
    let err = run_shown(
        dir.path(),
        40,
        StartFrom::Scratch,
        None,
        |_| {},
        Some(display),
    )
    .unwrap_err();
    let TrainError::Interrupted {
        iteration,
        reason,
        last_good,
    } = &err
    else {
        panic!("{err}");
    };
    // The renderer runs on burn's event thread: the loop stops within a few iterations.
    assert!((12..=16).contains(iteration), "{err}");
    assert_eq!(reason, "stop requested by the test");
    assert!(
        last_good.as_ref().unwrap().ends_with("model_10.ckpt"),
        "{err}"
    );
    assert!(err.to_string().contains("resume from"), "{err}");
    let run = RunDir::at(dir.path(), "toy");
    assert!(
        !run.final_checkpoint("ckpt").exists(),
        "an interrupted run is not final"
    );
    let seen = seen.lock().unwrap().clone();
    assert_start_items_end(&seen);
    assert_eq!(items_of(&seen).len(), *iteration as usize);
}

/// Set by [`plain_progress_is_one_log_line_per_interval`] for its child processes.
const CHILD_DIR: &str = "ANTMMF_TRAINER_TEST_CHILD_DIR";

/// Runs only as a child of [`plain_progress_is_one_log_line_per_interval`]: 40 iterations with
/// the progress display `ANTMMF_PROGRESS` and stdout choose, logging as the binaries do.
#[test]
fn plain_progress_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    antmmf_core::logging::init(log::LevelFilter::Info);
    let iterations = std::env::var("ANTMMF_TRAINER_TEST_CHILD_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    match run_shown(
        std::path::Path::new(&dir),
        iterations,
        StartFrom::Scratch,
        None,
        |_| {},
        None,
    ) {
        Ok(_) => eprintln!("CHILD OK"),
        Err(e) => eprintln!("CHILD ERROR: {e}"),
    }
}

/// This test binary re-run as `plain_progress_child` alone (its libtest name is its module path
/// without the crate's name), writing into `dir`.
fn child_command(dir: &std::path::Path) -> std::process::Command {
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    let name = if module.is_empty() {
        "plain_progress_child".to_string()
    } else {
        format!("{module}::plain_progress_child")
    };
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir);
    cmd
}

#[test]
fn plain_progress_is_one_log_line_per_interval() {
    let child = |setting: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = child_command(dir.path());
        cmd.stdin(std::process::Stdio::null());
        match setting {
            Some(v) => cmd.env(PROGRESS_ENV, v),
            None => cmd.env_remove(PROGRESS_ENV),
        };
        // Piped stdout and stderr: no terminal, as under CI or nohup.
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for setting in [None, Some("auto"), Some("plain"), Some("tui")] {
        let (stdout, stderr) = child(setting);
        assert!(stderr.contains("CHILD OK"), "{setting:?}: {stderr}");
        let progress: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.split_once("trainer: progress: ").map(|(_, r)| r))
            .map(|r| r.split(',').next().unwrap())
            .collect();
        let expected: Vec<String> = (1..=8).map(|k| format!("{}/40", k * 5)).collect();
        assert_eq!(progress, expected, "{setting:?}: {stderr}");
        // Nothing per batch: no renderer output (burn's renderer for a non-terminal prints
        // `TrainingProgress { .. }` per batch) besides the test harness's own lines...
        let other: Vec<&str> = stdout
            .lines()
            .filter(|l| {
                !l.trim().is_empty()
                    && !l.starts_with("running ")
                    && !l.starts_with("test ")
                    && !l.starts_with("test result")
            })
            .collect();
        assert!(other.is_empty(), "{setting:?}: {stdout}");
        // ...and on stderr 8 progress lines, 4 validation lines and little else, where a line
        // per batch would make 40 more.
        assert!(stderr.lines().count() <= 16, "{setting:?}: {stderr}");
        assert_eq!(
            stderr.contains("stdout is not a terminal"),
            setting == Some("tui"),
            "{setting:?}: {stderr}"
        );
    }
    let (_, stderr) = child(Some("fancy"));
    assert!(
        stderr.contains("CHILD ERROR: ANTMMF_PROGRESS=`fancy`: expected `plain`, `tui` or `auto`"),
        "{stderr}"
    );
}

/// What [`tui_child`] types.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq)]
enum Keys {
    /// Nothing.
    None,
    /// Ctrl-C once the TUI shows the metrics.
    CtrlC,
    /// Ctrl-C twice while the loop is stuck in iteration 15 (the kill-test pause).
    CtrlCTwiceWhenStuck,
}

/// Runs [`plain_progress_child`] on a new pseudo-terminal (stdin, stdout and stderr), so that
/// `auto` picks burn's TUI, typing `keys`. Returns the exit code, everything written to the
/// terminal, and whether the terminal's settings after the run equal those before.
#[cfg(target_os = "linux")]
fn tui_child(iterations: u64, keys: Keys) -> (Option<i32>, String, bool) {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors; the name and termios arguments may be null.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    let settings = || {
        // SAFETY: tcgetattr fills a zeroed termios for the slave side we hold open.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::tcgetattr(slave, &mut t) }, 0);
        (t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, t.c_cc)
    };
    let before = settings();
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: dup of a descriptor we own, each given to the child as one of its stdio.
    let stdio = || std::process::Stdio::from(unsafe { OwnedFd::from_raw_fd(libc::dup(slave)) });
    let mut cmd = child_command(dir.path());
    cmd.env(
        "ANTMMF_TRAINER_TEST_CHILD_ITERATIONS",
        iterations.to_string(),
    )
    .env("TERM", "xterm-256color")
    .env_remove(PROGRESS_ENV)
    .env_remove("ANTMMF_TEST_PAUSE_AT")
    .stdin(stdio())
    .stdout(stdio())
    .stderr(stdio());
    // SAFETY: setsid and ioctl are async-signal-safe: the child gets the pseudo-terminal as its
    // controlling terminal, as a shell would give it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    if keys == Keys::CtrlCTwiceWhenStuck {
        cmd.env("ANTMMF_TEST_PAUSE_AT", "step")
            .env("ANTMMF_TEST_PAUSE_ITER", "15");
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    // SAFETY: the master descriptor from openpty, owned from here on.
    let mut terminal = unsafe { std::fs::File::from_raw_fd(master) };
    let mut writer = terminal.try_clone().unwrap();
    let shown = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = shown.clone();
    // Reads until the test binary exits (the slave stays open here for `settings`).
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = terminal.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    let wait_for = |what: &str| {
        while !text().contains(what) {
            assert!(Instant::now() < deadline, "no `{what}` on the terminal");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    match keys {
        Keys::None => {}
        Keys::CtrlC => {
            wait_for("Loss parts");
            writer.write_all(b"\x03").unwrap();
        }
        Keys::CtrlCTwiceWhenStuck => {
            wait_for("ANTMMF_PAUSED_AT step");
            writer.write_all(b"\x03").unwrap();
            std::thread::sleep(Duration::from_millis(300));
            writer.write_all(b"\x03").unwrap();
        }
    }
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the TUI run did not end: {}", text());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The end of the output: the harness's summary, or the restoring sequence at a forced exit.
    wait_for(if keys == Keys::CtrlCTwiceWhenStuck {
        "\x1b[?1049l\x1b[?25h"
    } else {
        "test result"
    });
    let restored = settings() == before;
    (status.code(), text(), restored)
}

/// burn's TUI on a pseudo-terminal: it opens and closes the alternate screen, no log line is
/// written while it is up, Ctrl-C stops the run cleanly, a second Ctrl-C while the loop is stuck
/// exits at once, and each time the terminal's settings (raw mode off) are as before. What the
/// screen shows is not checked beyond the metric names.
#[cfg(target_os = "linux")]
#[test]
fn tui_on_a_pseudo_terminal_leaves_it_as_it_was() {
    const ENTER: &str = "\x1b[?1049h";
    const LEAVE: &str = "\x1b[?1049l";
    for (iterations, keys) in [
        (40, Keys::None),
        (1_000_000, Keys::CtrlC),
        (40, Keys::CtrlCTwiceWhenStuck),
    ] {
        let (code, shown, restored) = tui_child(iterations, keys);
        let expected_code = if keys == Keys::CtrlCTwiceWhenStuck {
            128 + libc::SIGINT
        } else {
            0
        };
        assert_eq!(code, Some(expected_code), "{keys:?}: {shown}");
        let enter = shown
            .find(ENTER)
            .unwrap_or_else(|| panic!("no TUI: {shown}"));
        let leave = shown.rfind(LEAVE).expect("the TUI left its screen");
        assert!(enter < leave);
        let during = &shown[enter..leave];
        assert!(
            !during.contains("trainer: progress:") && !during.contains(" INFO "),
            "log lines while the TUI was up"
        );
        let after = &shown[leave..];
        assert!(!after.contains("trainer: progress:"), "{after}");
        assert!(restored, "terminal settings differ after the run");
        if keys == Keys::CtrlCTwiceWhenStuck {
            assert!(!after.contains("CHILD"), "{after}");
        } else if keys == Keys::CtrlC {
            assert!(during.contains("Learning Rate"), "{during}");
            assert!(
                after.contains("CHILD ERROR: training interrupted at iteration")
                    && after.contains("(SIGINT received); resume from"),
                "{after}"
            );
            // The warning held while the TUI was up reaches stderr after it.
            assert!(
                after.contains("WARN  antmmf_tasks::trainer: training stopped"),
                "{after}"
            );
        } else {
            assert!(after.contains("CHILD OK"), "{after}");
        }
    }
}
