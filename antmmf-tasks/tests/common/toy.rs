//! The toy regression model of the training-loop tests (`trainer`, `data_parallel`): one
//! `Linear(3, 1)` fitted by mean squared error, with fixed initial weights, its loop settings and
//! LR schedule.

use antmmf_tasks::progress::LossValues;
use antmmf_tasks::schedule::{AntMmfLrSchedule, LrScheduleConfig};
use antmmf_tasks::trainer::{LossReport, TrainerSettings};
use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn::train::metric::Adaptor;
use burn::train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};

type B = Autodiff<Flex>;
type Inner = Flex;

/// `y = lin(x)`.
#[derive(Module, Debug)]
pub struct Toy<B: Backend> {
    /// The one layer, `[3] -> [1]`.
    pub lin: Linear<B>,
}

/// x [N, 3] and y [N, 1].
#[derive(Clone, Debug)]
pub struct Batch<B: Backend> {
    /// Inputs `[N, 3]`.
    pub x: Tensor<B, 2>,
    /// Targets `[N, 1]`.
    pub y: Tensor<B, 2>,
}

/// A step's mean squared error.
pub struct Out {
    /// The loss.
    pub loss: f64,
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

impl Adaptor<LossValues> for Out {
    fn adapt(&self) -> LossValues {
        LossValues::of(self)
    }
}

impl TrainStep for Toy<B> {
    type Input = Batch<B>;
    type Output = Out;
    fn step(&self, b: Batch<B>) -> TrainOutput<Out> {
        let loss = (self.lin.forward(b.x) - b.y).powf_scalar(2.0).mean();
        let value = loss.clone().into_scalar() as f64;
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

/// Fixed initial weights: tests of one binary run in parallel, so the backend's global seed is
/// no source of reproducible weights here.
pub fn toy_model() -> Toy<B> {
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

/// Loop settings of the toy trainer tests: logs every 5 iterations, snapshots (with validation by
/// `val/mse`, two kept) every 10, seed 7.
pub fn toy_settings(max_iterations: u64) -> TrainerSettings {
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

/// The toy trainer tests' LR schedule: lr 0.05, warm-up from 0.2x over 5 iterations, halved at
/// 25 (12 batches per epoch).
pub fn toy_schedule() -> AntMmfLrSchedule {
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
