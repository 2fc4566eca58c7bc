//! The training loop on a toy regression task: iteration counting, snapshots and rotation, best
//! checkpoint, bit-exact resume with `restart False`, non-finite losses, early stopping.

use antmmf_core::run_dir::RunDir;
use antmmf_tasks::optim::{AntmmfOptimizer, AntmmfOptimizerConfig};
use antmmf_tasks::schedule::{AntMmfLrSchedule, LrScheduleConfig};
use antmmf_tasks::trainer::{
    LossReport, ResumableLoader, StartFrom, TaskHooks, TrainError, TrainRun, TrainerSettings,
    launch,
};
use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::nn::Linear;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use burn::train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;

type B = Autodiff<Flex>;
type Inner = Flex;

#[derive(Module, Debug)]
struct Toy<B: Backend> {
    lin: Linear<B>,
}

/// x [N, 3] and y [N, 1].
#[derive(Clone, Debug)]
struct Batch<B: Backend> {
    x: Tensor<B, 2>,
    y: Tensor<B, 2>,
}

struct Out {
    loss: f64,
}

impl ItemLazy for Out {
    type ItemSync = Out;
    fn sync(self) -> Out {
        self
    }
}

impl LossReport for Out {
    fn total_loss(&self) -> f64 {
        self.loss
    }
    fn loss_parts(&self) -> Vec<(String, f64)> {
        vec![("mse".into(), self.loss)]
    }
}

impl TrainStep for Toy<B> {
    type Input = Batch<B>;
    type Output = Out;
    fn step(&self, b: Batch<B>) -> TrainOutput<Out> {
        let pred = self.lin.forward(b.x);
        let loss = (pred - b.y).powf_scalar(2.0).mean();
        let value: f64 = loss.clone().into_scalar() as f64;
        TrainOutput::new(self, loss.backward(), Out { loss: value })
    }
}

impl InferenceStep for Toy<Inner> {
    type Input = Batch<Inner>;
    type Output = Out;
    fn step(&self, b: Batch<Inner>) -> Out {
        let loss = (self.lin.forward(b.x) - b.y).powf_scalar(2.0).mean();
        Out {
            loss: loss.into_scalar() as f64,
        }
    }
}

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

fn settings(max_iterations: u64) -> TrainerSettings {
    TrainerSettings {
        max_iterations: Some(max_iterations),
        max_epochs: None,
        log_interval: 5,
        snapshot_interval: 10,
        max_ckpt_num: Some(2),
        monitored_metric: "val/mse".into(),
        metric_minimize: true,
        should_early_stop: false,
        patience: 1000,
        grad_accumulation: 1,
        skip_nan_steps: false,
        seed: 7,
        validate: true,
    }
}

/// Fixed initial weights: tests of one binary run in parallel, so the backend's global seed is
/// no source of reproducible weights here.
fn model() -> Toy<B> {
    let d = Default::default();
    let weight = Tensor::<B, 2>::from_data(TensorData::new(vec![0.1f32, 0.2, -0.3], [3, 1]), &d);
    let bias = Tensor::<B, 1>::from_data(TensorData::new(vec![0.05f32], [1]), &d);
    Toy {
        lin: Linear {
            weight: burn::module::Param::from_tensor(weight),
            bias: Some(burn::module::Param::from_tensor(bias)),
        },
    }
}

fn schedule() -> AntMmfLrSchedule {
    let cfg = LrScheduleConfig {
        lr_scheduler: true,
        lr_steps: vec![25],
        lr_ratio: 0.5,
        use_warmup: true,
        warmup_factor: 0.2,
        warmup_iterations: 5,
        ..Default::default()
    };
    AntMmfLrSchedule::new(0.05, &cfg, 12).unwrap()
}

fn run(
    dir: &std::path::Path,
    max_iterations: u64,
    start: StartFrom,
    poison: Option<(usize, usize)>,
    tweak: impl FnOnce(&mut TrainerSettings),
) -> Result<(Toy<Inner>, antmmf_tasks::trainer::TrainSummary), TrainError> {
    let m = model();
    let optim = AntmmfOptimizer::<_, B>::new(
        &AntmmfOptimizerConfig {
            weight_decay: 0.01,
            max_grad_norm: Some(5.0),
            ..Default::default()
        },
        &m,
    );
    let mut s = settings(max_iterations);
    tweak(&mut s);
    let run = RunDir::at(dir, "toy");
    std::fs::create_dir_all(run.models_dir()).unwrap();
    launch(
        m,
        optim,
        schedule(),
        Default::default(),
        TrainRun {
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
        },
    )
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
