//! AntMMF's learning-rate schedule: linear warmup, then step decay.
//!
//! Mirrors `antmmf/utils/general.py::lr_lambda_update`, which `antmmf/trainers/base_trainer.py`
//! wraps in `torch.optim.lr_scheduler.LambdaLR` when `training_parameters.lr_scheduler` is true:
//! - while `use_warmup` and `i <= warmup_iterations`:
//!   `factor = warmup_factor * (1 - alpha) + alpha` with `alpha = i / warmup_iterations`;
//! - afterwards `factor = lr_ratio ^ bisect_right(decay_steps, i)`, where `decay_steps` is
//!   `lr_steps`, or `iterations_per_epoch * lr_epochs` when `lr_epochs` is not empty;
//! - `lr = optimizer_attributes.params.lr * factor`; `i` counts optimizer updates from 0
//!   (`LambdaLR` applies `factor(0)` before the first update).
//!
//! Without `lr_scheduler` the learning rate stays constant (warmup included, as in AntMMF).
//!
//! Differences from AntMMF, on purpose: the iteration is part of the scheduler's record, so a
//! resumed run continues the same schedule (AntMMF restarts it); unsorted `lr_steps`, a zero
//! `warmup_iterations` with warmup on, and `lr_epochs` without an epoch length are errors.
//! AntMMF computes the epoch length as `len(dataset) // batch_size + 1`; callers pass it.

use burn::lr_scheduler::LrScheduler;
use burn::optim::LearningRate;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// Errors in the schedule's configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A numeric setting is not finite or out of range.
    #[error("training_parameters.{key}: {detail}")]
    Invalid {
        /// Config key, under `training_parameters` (`lr` is `optimizer_attributes.params.lr`).
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
}

fn invalid(key: &'static str, detail: String) -> ScheduleError {
    ScheduleError::Invalid { key, detail }
}

/// The `training_parameters` keys that drive the schedule, with AntMMF's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LrScheduleConfig {
    /// `lr_scheduler`: apply warmup and decay at all (default false: constant LR).
    pub lr_scheduler: bool,
    /// `lr_steps`: iterations after which the LR is multiplied by `lr_ratio`.
    pub lr_steps: Vec<usize>,
    /// `lr_epochs`: epochs after which the LR decays; takes precedence over `lr_steps`.
    pub lr_epochs: Vec<usize>,
    /// `lr_ratio`: decay factor per step (default 0.1).
    pub lr_ratio: f64,
    /// `use_warmup`: linear warmup at the start (default false).
    pub use_warmup: bool,
    /// `warmup_factor`: LR factor at iteration 0 (default 0.2).
    pub warmup_factor: f64,
    /// `warmup_iterations`: iteration at which warmup reaches factor 1 (default 1000).
    pub warmup_iterations: usize,
}

impl Default for LrScheduleConfig {
    fn default() -> Self {
        Self {
            lr_scheduler: false,
            lr_steps: Vec::new(),
            lr_epochs: Vec::new(),
            lr_ratio: 0.1,
            use_warmup: false,
            warmup_factor: 0.2,
            warmup_iterations: 1000,
        }
    }
}

/// AntMMF's warmup + step-decay schedule, usable as Burn's [`LrScheduler`].
#[derive(Debug, Clone, PartialEq)]
pub struct AntMmfLrSchedule {
    base_lr: f64,
    enabled: bool,
    use_warmup: bool,
    warmup_factor: f64,
    warmup_iterations: usize,
    decay_steps: Vec<usize>,
    lr_ratio: f64,
    batches_per_update: usize,
    /// Number of `step()` calls so far (batches seen); saved in the record.
    batches: usize,
}

impl AntMmfLrSchedule {
    /// Builds the schedule for base LR `base_lr`; `iterations_per_epoch` converts `lr_epochs`.
    pub fn new(
        base_lr: f64,
        config: &LrScheduleConfig,
        iterations_per_epoch: usize,
    ) -> Result<Self, ScheduleError> {
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            return Err(invalid(
                "lr",
                format!("must be finite and >= 0, got {base_lr}"),
            ));
        }
        if !config.lr_ratio.is_finite() {
            return Err(invalid(
                "lr_ratio",
                format!("must be finite, got {}", config.lr_ratio),
            ));
        }
        if !config.warmup_factor.is_finite() {
            return Err(invalid(
                "warmup_factor",
                format!("must be finite, got {}", config.warmup_factor),
            ));
        }
        if config.lr_scheduler && config.use_warmup && config.warmup_iterations == 0 {
            return Err(invalid(
                "warmup_iterations",
                "must be > 0 when use_warmup is true".to_string(),
            ));
        }
        let decay_steps: Vec<usize> = if config.lr_epochs.is_empty() {
            config.lr_steps.clone()
        } else {
            if config.lr_scheduler && iterations_per_epoch == 0 {
                return Err(invalid(
                    "lr_epochs",
                    "needs the number of iterations per epoch (got 0)".to_string(),
                ));
            }
            config
                .lr_epochs
                .iter()
                .map(|&e| e.saturating_mul(iterations_per_epoch))
                .collect()
        };
        if decay_steps.windows(2).any(|w| w[0] > w[1]) {
            let key = if config.lr_epochs.is_empty() {
                "lr_steps"
            } else {
                "lr_epochs"
            };
            return Err(invalid(
                key,
                format!("must be in increasing order, got {decay_steps:?}"),
            ));
        }
        Ok(Self {
            base_lr,
            enabled: config.lr_scheduler,
            use_warmup: config.use_warmup,
            warmup_factor: config.warmup_factor,
            warmup_iterations: config.warmup_iterations,
            decay_steps,
            lr_ratio: config.lr_ratio,
            batches_per_update: 1,
            batches: 0,
        })
    }

    /// Advances the schedule once per `n` batches (gradient accumulation): AntMMF counts
    /// optimizer updates, while Burn's learner calls `step()` on every batch.
    pub fn with_batches_per_update(mut self, n: usize) -> Self {
        self.batches_per_update = n.max(1);
        self
    }

    /// The multiplier of the base LR after `iteration` optimizer updates.
    pub fn factor_at(&self, iteration: usize) -> f64 {
        if !self.enabled {
            return 1.0;
        }
        if self.use_warmup && iteration <= self.warmup_iterations {
            let alpha = iteration as f64 / self.warmup_iterations as f64;
            return self.warmup_factor * (1.0 - alpha) + alpha;
        }
        let passed = self.decay_steps.partition_point(|&s| s <= iteration);
        let exponent = i32::try_from(passed).unwrap_or(i32::MAX);
        self.lr_ratio.powi(exponent)
    }

    /// The learning rate after `iteration` optimizer updates (used for update `iteration + 1`).
    pub fn lr_at(&self, iteration: usize) -> f64 {
        self.base_lr * self.factor_at(iteration)
    }

    /// Optimizer updates counted so far (the `i` of the next `step()`).
    pub fn iteration(&self) -> usize {
        self.batches / self.batches_per_update
    }

    /// Decay boundaries in iterations (`lr_steps`, or `lr_epochs` converted).
    pub fn decay_steps(&self) -> &[usize] {
        &self.decay_steps
    }
}

impl LrScheduler for AntMmfLrSchedule {
    /// Number of `step()` calls made so far.
    type Record<B: Backend> = usize;

    fn step(&mut self) -> LearningRate {
        let lr = self.lr_at(self.iteration());
        self.batches = self.batches.saturating_add(1);
        lr
    }

    fn to_record<B: Backend>(&self) -> Self::Record<B> {
        self.batches
    }

    fn load_record<B: Backend>(mut self, record: Self::Record<B>) -> Self {
        self.batches = record;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_without_lr_scheduler() {
        let config = LrScheduleConfig {
            use_warmup: true,
            lr_steps: vec![1],
            ..Default::default()
        };
        let s = AntMmfLrSchedule::new(1e-4, &config, 10).unwrap();
        assert_eq!(s.lr_at(0), 1e-4);
        assert_eq!(s.lr_at(5000), 1e-4);
    }

    #[test]
    fn errors() {
        let bad_steps = LrScheduleConfig {
            lr_scheduler: true,
            lr_steps: vec![10, 5],
            ..Default::default()
        };
        assert!(AntMmfLrSchedule::new(1.0, &bad_steps, 1).is_err());
        let zero_warmup = LrScheduleConfig {
            lr_scheduler: true,
            use_warmup: true,
            warmup_iterations: 0,
            ..Default::default()
        };
        assert!(AntMmfLrSchedule::new(1.0, &zero_warmup, 1).is_err());
        let epochs = LrScheduleConfig {
            lr_scheduler: true,
            lr_epochs: vec![2],
            ..Default::default()
        };
        assert!(AntMmfLrSchedule::new(1.0, &epochs, 0).is_err());
        assert!(AntMmfLrSchedule::new(f64::NAN, &LrScheduleConfig::default(), 1).is_err());
    }
}
