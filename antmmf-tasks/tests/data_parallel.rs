//! The training loop as a member of a data-parallel group, on a toy regression task, with an
//! in-process group (threads meeting at a barrier) standing in for burn-collective: averaged
//! gradients reproduce a single run on the union of the shards, the members end identical,
//! only member 0 writes the run directory, and a failed step, an early stop or a disagreement
//! on one member is everyone's. (The multi-process run over burn-collective is
//! `tests/multinode.rs`, `scripts/test-multinode.sh`.)

use crate::common::toy::{Batch, Toy, toy_model as model, toy_schedule, toy_settings};
use antmmf_core::run_dir::RunDir;
use antmmf_tasks::distributed::{AllReduce, DistributedError, all_gather_u64};
use antmmf_tasks::optim::{AntmmfOptimizer, AntmmfOptimizerConfig};
use antmmf_tasks::progress::ProgressDisplay;
use antmmf_tasks::trainer::{
    ResumableLoader, StartFrom, TaskHooks, TrainError, TrainRun, TrainSummary, TrainerSettings,
    launch_with_group,
};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn::train::InferenceStep;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

type B = Autodiff<Flex>;
type Inner = Flex;

/// Members (threads) of one process summing host copies of their tensors at a barrier.
struct ThreadGroup {
    rank: usize,
    world: usize,
    shared: Arc<(Mutex<Round>, Condvar)>,
}

#[derive(Default)]
struct Round {
    generation: u64,
    arrived: usize,
    acc: Vec<f32>,
    result: Arc<Vec<f32>>,
}

impl ThreadGroup {
    fn group(world: usize) -> Vec<Arc<dyn AllReduce<Inner>>> {
        let shared = Arc::new((Mutex::new(Round::default()), Condvar::new()));
        (0..world)
            .map(|rank| {
                Arc::new(ThreadGroup {
                    rank,
                    world,
                    shared: shared.clone(),
                }) as Arc<dyn AllReduce<Inner>>
            })
            .collect()
    }
}

impl AllReduce<Inner> for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, t: Tensor<Inner, 1>) -> Result<Tensor<Inner, 1>, DistributedError> {
        let device = t.device();
        let values: Vec<f32> = t.into_data().to_vec().unwrap();
        let (lock, cv) = &*self.shared;
        let mut round = lock.lock().unwrap();
        if round.arrived == 0 {
            round.acc = values;
        } else {
            assert_eq!(
                round.acc.len(),
                values.len(),
                "members sent different lengths"
            );
            for (a, v) in round.acc.iter_mut().zip(values) {
                *a += v;
            }
        }
        round.arrived += 1;
        let generation = round.generation;
        if round.arrived == self.world {
            round.result = Arc::new(std::mem::take(&mut round.acc));
            round.arrived = 0;
            round.generation += 1;
            cv.notify_all();
        } else {
            let timeout = std::time::Duration::from_secs(60);
            let (r, wait) = cv
                .wait_timeout_while(round, timeout, |r| r.generation == generation)
                .unwrap();
            assert!(!wait.timed_out(), "member {} waited in vain", self.rank);
            round = r;
        }
        let n = round.result.len();
        Ok(Tensor::from_data(
            TensorData::new(round.result.as_ref().clone(), [n]),
            &device,
        ))
    }
}

/// Global batches of 16 rows of y = x . [1, -2, 0.5] + 0.3 from (epoch, batch); shard `r` of
/// `n` holds rows `r*16/n..(r+1)*16/n` of each (the whole batch when `n` is 1).
struct Data {
    shard: (usize, usize),
    batches: usize,
    /// A non-finite input in this (shard, epoch, batch).
    poison: Option<(usize, usize, usize)>,
}

impl Data {
    fn batch<Bk: Backend>(&self, epoch: usize, index: usize) -> Batch<Bk> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((epoch * 100 + index) as u64);
        let rows: Vec<[f32; 3]> = (0..16)
            .map(|_| {
                [
                    rng.random_range(-1.0..1.0),
                    rng.random_range(-1.0..1.0),
                    rng.random_range(-1.0..1.0),
                ]
            })
            .collect();
        let (r, n) = self.shard;
        let mine = &rows[r * 16 / n..(r + 1) * 16 / n];
        let mut x: Vec<f32> = mine.iter().flatten().copied().collect();
        let y: Vec<f32> = mine
            .iter()
            .map(|a| a[0] - 2.0 * a[1] + 0.5 * a[2] + 0.3)
            .collect();
        if self.poison == Some((r, epoch, index)) {
            x[0] = f32::NAN;
        }
        let d = Default::default();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [mine.len(), 3]), &d),
            y: Tensor::from_data(TensorData::new(y, [mine.len(), 1]), &d),
        }
    }
}

impl ResumableLoader<Batch<B>> for Data {
    fn batches_per_epoch(&self) -> usize {
        self.batches
    }
    fn iter_from(&self, epoch: usize, batch: usize) -> Box<dyn Iterator<Item = Batch<B>> + '_> {
        Box::new((batch..self.batches).map(move |i| self.batch::<B>(epoch, i)))
    }
}

/// Validation on the whole of batch 0 of epoch 99.
struct Hooks;

impl TaskHooks<B, Toy<B>> for Hooks {
    fn validate(&self, model: &Toy<Inner>) -> Result<BTreeMap<String, f64>, String> {
        let data = Data {
            shard: (0, 1),
            batches: 1,
            poison: None,
        };
        let loss = InferenceStep::step(model, data.batch::<Inner>(99, 0)).loss;
        Ok(BTreeMap::from([("val/mse".to_string(), loss)]))
    }
}

type Trained = Result<(Toy<Inner>, TrainSummary), TrainError>;

/// One member's run (alone when `group` is `None`), writing to `dir`.
fn member(
    dir: &Path,
    data: Data,
    group: Option<Arc<dyn AllReduce<Inner>>>,
    tweak: &(dyn Fn(&mut TrainerSettings) + Sync),
) -> Trained {
    let m = model();
    let optim = AntmmfOptimizer::<_, B>::new(
        &AntmmfOptimizerConfig {
            weight_decay: 0.01,
            max_grad_norm: Some(5.0),
            ..Default::default()
        },
        &m,
    );
    let mut s = toy_settings(30);
    tweak(&mut s);
    let run = RunDir::at(dir, "toy");
    if group.as_ref().is_none_or(|g| g.rank() == 0) {
        std::fs::create_dir_all(run.models_dir()).unwrap();
        std::fs::create_dir_all(run.logs_dir()).unwrap();
    }
    let train_run = TrainRun {
        loader: Arc::new(data),
        hooks: Arc::new(Hooks),
        settings: s,
        run,
        start: StartFrom::Scratch,
    };
    launch_with_group(
        m,
        optim,
        toy_schedule(),
        Default::default(),
        train_run,
        ProgressDisplay::Plain,
        group,
    )
}

/// Runs `world` members in threads, member `r` on shard `r`, each in its own directory.
fn members(
    world: usize,
    batches: impl Fn(usize) -> usize + Sync,
    poison: Option<(usize, usize, usize)>,
    tweak: &(dyn Fn(&mut TrainerSettings) + Sync),
) -> (Vec<Trained>, Vec<tempfile::TempDir>) {
    let dirs: Vec<tempfile::TempDir> = (0..world).map(|_| tempfile::tempdir().unwrap()).collect();
    let groups = ThreadGroup::group(world);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .zip(&dirs)
            .enumerate()
            .map(|(r, (g, dir))| {
                let batches = &batches;
                s.spawn(move || {
                    let data = Data {
                        shard: (r, world),
                        batches: batches(r),
                        poison,
                    };
                    member(dir.path(), data, Some(g), tweak)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("member thread"))
            .collect()
    });
    (results, dirs)
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

/// Files and folders under `dir`, recursively.
fn entries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(list) = std::fs::read_dir(dir) {
        for e in list.flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() {
                out.extend(entries(&p));
            }
        }
    }
    out
}

#[test]
fn two_members_match_one_process_on_the_union_of_their_shards() {
    let single_dir = tempfile::tempdir().unwrap();
    let single = Data {
        shard: (0, 1),
        batches: 12,
        poison: None,
    };
    let (alone, alone_summary) = member(single_dir.path(), single, None, &|_| {}).unwrap();
    let (results, dirs) = members(2, |_| 12, None, &|_| {});
    let mut trained = results.into_iter().map(Result::unwrap);
    let (m0, s0) = trained.next().unwrap();
    let (m1, s1) = trained.next().unwrap();
    // The replicas applied the same averaged gradients: identical bits.
    assert_eq!(weights(&m0), weights(&m1));
    // The mean of the two halves' MSE gradients is the whole batch's gradient: the run matches
    // the single process up to float rounding.
    for (a, b) in weights(&m0).iter().zip(weights(&alone)) {
        assert!(
            (a - b).abs() < 1e-4,
            "{:?} vs {:?}",
            weights(&m0),
            weights(&alone)
        );
    }
    // Logged losses are the mean over members: the whole batch's MSE, the same on both.
    assert_eq!(s0.history.len(), alone_summary.history.len());
    for ((h0, h1), h) in s0
        .history
        .iter()
        .zip(&s1.history)
        .zip(&alone_summary.history)
    {
        assert_eq!((h0.iteration, h0.loss), (h1.iteration, h1.loss));
        assert!(
            (h0.loss - h.loss).abs() < 1e-4 * h.loss.max(1e-3),
            "{h0:?} vs {h:?}"
        );
        assert_eq!(h0.parts["mse"], h0.loss);
    }
    // Member 0 wrote the run directory; member 1 wrote nothing.
    let run0 = dirs[0].path();
    assert!(run0.join("models/model_30.ckpt").is_file());
    assert!(s0.final_checkpoint.is_file());
    assert!(run0.join("logs/train_log.json").is_file());
    assert!(run0.join("logs/metrics.jsonl").is_file());
    let written = entries(dirs[1].path());
    assert!(written.is_empty(), "member 1 wrote {written:?}");
}

#[test]
fn a_failed_step_on_one_member_is_skipped_or_fatal_on_all() {
    // Member 1's batch 3 of epoch 0 (iteration 4) has a NaN input.
    let poison = Some((1, 0, 3));
    let (results, _dirs) = members(2, |_| 12, poison, &|_| {});
    for (r, result) in results.into_iter().enumerate() {
        match result {
            Err(TrainError::NonFinite {
                what, iteration, ..
            }) => {
                assert_eq!(iteration, 4);
                if r == 0 {
                    assert_eq!(what, "a non-finite loss on another node");
                } else {
                    assert!(what.contains("mse"), "{what}");
                }
            }
            other => panic!("member {r}: {:?}", other.map(|(_, s)| s.state)),
        }
    }
    let skip = |s: &mut TrainerSettings| s.skip_nan_steps = true;
    let (results, _dirs) = members(2, |_| 12, poison, &skip);
    let trained: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    for (_, s) in &trained {
        assert_eq!(s.state.skipped_nan_steps, 1);
        assert_eq!(s.state.iteration, 30);
    }
    assert_eq!(weights(&trained[0].0), weights(&trained[1].0));
}

#[test]
fn member_zero_decides_early_stopping_for_all() {
    let tweak = |s: &mut TrainerSettings| {
        s.max_iterations = Some(200);
        s.should_early_stop = true;
        s.patience = 20;
        // Maximising an error: it improves at first only by chance, then stops.
        s.metric_minimize = false;
    };
    let (results, _dirs) = members(2, |_| 12, None, &tweak);
    let summaries: Vec<TrainSummary> = results.into_iter().map(|r| r.unwrap().1).collect();
    assert!(summaries[0].early_stopped && summaries[1].early_stopped);
    assert_eq!(summaries[0].state.iteration, summaries[1].state.iteration);
    assert!(summaries[0].state.iteration < 200);
}

#[test]
fn members_with_different_epochs_refuse_to_start() {
    let (results, _dirs) = members(2, |r| 12 - r, None, &|_| {});
    for result in results {
        match result {
            Err(TrainError::Distributed(e)) => {
                let text = e.to_string();
                assert!(
                    text.starts_with(
                        "the nodes disagree on the batches per epoch (node 0: 12, node 1: 11)"
                    ),
                    "{text}"
                );
            }
            other => panic!("{:?}", other.map(|(_, s)| s.state)),
        }
    }
}

#[test]
fn all_gather_returns_every_members_value() {
    let groups = ThreadGroup::group(3);
    let values = [u64::MAX, 0, 0x1234_5678_9abc_def0];
    let gathered: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|g| {
                let g = g.clone();
                s.spawn(move || {
                    all_gather_u64(g.as_ref(), values[g.rank()], &Default::default()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for g in gathered {
        assert_eq!(g, values);
    }
}

#[test]
fn gathered_rows_carry_gradients_of_the_local_block_only() {
    use antmmf_tasks::distributed::{GroupRowGather, gather_rows};
    let groups = ThreadGroup::group(2);
    let results: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|g| {
                let g = g.clone();
                s.spawn(move || {
                    let d = Default::default();
                    let r = g.rank() as f32;
                    let gather = GroupRowGather::<Inner> {
                        group: g,
                        device: d,
                    };
                    // Member r's rows: [[r, r+1, r+2], [r+3, r+4, r+5]].
                    let local: Tensor<B, 2> = Tensor::from_data(
                        TensorData::new((0..6).map(|i| r + i as f32).collect::<Vec<_>>(), [2, 3]),
                        &d,
                    )
                    .require_grad();
                    let all = gather_rows(&gather, local.clone()).unwrap();
                    // loss = sum(all * w) with w[i][j] = 10 i + j over the 4 gathered rows.
                    let w: Tensor<B, 2> = Tensor::from_data(
                        TensorData::new(
                            (0..12)
                                .map(|k| (10 * (k / 3) + k % 3) as f32)
                                .collect::<Vec<_>>(),
                            [4, 3],
                        ),
                        &d,
                    );
                    let values: Vec<f32> = all.clone().into_data().to_vec().unwrap();
                    let grads = (all * w).sum().backward();
                    let grad: Vec<f32> = local.grad(&grads).unwrap().into_data().to_vec().unwrap();
                    (values, grad)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rows = |r: f32| (0..6).map(|i| r + i as f32).collect::<Vec<f32>>();
    let expected: Vec<f32> = rows(0.0).into_iter().chain(rows(1.0)).collect();
    // Rows of the block in w: member 0 gets w's rows 0-1, member 1 rows 2-3.
    let w_rows = |first: usize| -> Vec<f32> {
        (first * 3..first * 3 + 6)
            .map(|k| (10 * (k / 3) + k % 3) as f32)
            .collect()
    };
    assert_eq!(results[0], (expected.clone(), w_rows(0)));
    assert_eq!(results[1], (expected, w_rows(2)));
}
