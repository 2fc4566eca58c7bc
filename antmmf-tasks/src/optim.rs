//! AntMMF's optimizer setup as one Burn [`Optimizer`]: AdamW over parameter groups and global
//! gradient-norm clipping.
//!
//! Mirrors `get_optimizer_parameters` of AntMMF's UniVL models and `antmmf/utils/general.py`
//! (`clip_gradients`):
//! - no weight decay for biases and LayerNorm parameters (AntMMF matches the names `bias`,
//!   `LayerNorm.weight`, `LayerNorm.bias`; in Burn those are exactly the 1-D parameters: biases,
//!   norm `gamma`/`beta`), weight decay for the rest;
//! - an LR factor for parameters under given module paths (`encoder_lr_decay` for the pretrained
//!   encoders in retrieval and MC-QA fine-tuning);
//! - clipping by the global L2 norm over all gradients, as `torch.nn.utils.clip_grad_norm_`
//!   (Burn's own `GradientClipping::Norm` clips each tensor separately, which is a different rule).
//!
//! The global norm is computed on every step anyway, so it doubles as the detector of non-finite
//! gradients: [`AntmmfOptimizer::last_grad_norm`] exposes it to the training loop.

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, MultiGradientsParams, Optimizer};
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A rule giving parameters under some module paths their own LR factor.
#[derive(Debug, Clone, PartialEq)]
pub struct LrGroupRule {
    /// Module path prefixes (`bert.encoder`, `visual`), matched on whole segments.
    pub prefixes: Vec<String>,
    /// Multiplier of the scheduled LR for these parameters.
    pub lr_factor: f64,
}

/// AdamW settings plus AntMMF's grouping and clipping.
#[derive(Debug, Clone)]
pub struct AntmmfOptimizerConfig {
    /// Adam beta 1.
    pub beta_1: f32,
    /// Adam beta 2.
    pub beta_2: f32,
    /// Adam epsilon.
    pub epsilon: f32,
    /// Decoupled weight decay for matrices (1-D parameters get none).
    pub weight_decay: f32,
    /// LR groups; a parameter takes the first rule whose prefix matches, else factor 1.
    pub lr_rules: Vec<LrGroupRule>,
    /// Clip gradients to this global L2 norm.
    pub max_grad_norm: Option<f64>,
}

impl Default for AntmmfOptimizerConfig {
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            lr_rules: Vec::new(),
            max_grad_norm: None,
        }
    }
}

/// One parameter group: its key (LR factor bits, decay), LR factor and AdamW state.
///
/// Membership is decided from each parameter's module path and rank at every step, not from
/// parameter ids: loading a checkpoint restores the saved ids.
#[derive(Clone)]
struct Group<M: AutodiffModule<B>, B: AutodiffBackend> {
    key: (u64, bool),
    lr_factor: f64,
    optim: OptimizerAdaptor<AdamW, M, B>,
}

/// AdamW with AntMMF's parameter groups and global-norm clipping.
///
/// A step whose global gradient norm is not finite leaves the parameters and the AdamW state
/// untouched (the training loop then stops or counts a skipped step).
#[derive(Clone)]
pub struct AntmmfOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    groups: Vec<Group<M, B>>,
    rules: Arc<Vec<LrGroupRule>>,
    max_grad_norm: Option<f64>,
    last_grad_norm: Arc<Mutex<Option<f64>>>,
    snapshot: Arc<Mutex<SnapshotSlot<AntmmfOptimizerRecord<M, B>>>>,
}

/// Where a requested copy of the optimizer state is left after the next step.
struct SnapshotSlot<R> {
    requested: bool,
    record: Option<R>,
}

/// Asks an [`AntmmfOptimizer`] (living inside a learner) for a copy of its state after its next
/// step, and collects it: how the training loop checkpoints the optimizer synchronously.
pub struct OptimizerSnapshot<R>(Arc<Mutex<SnapshotSlot<R>>>);

impl<R> Clone for OptimizerSnapshot<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R> OptimizerSnapshot<R> {
    /// Requests a copy of the state after the next step.
    pub fn request(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.requested = true;
            s.record = None;
        }
    }

    /// Takes the copy made by the last requested step, if any.
    pub fn take(&self) -> Option<R> {
        self.0.lock().ok().and_then(|mut s| s.record.take())
    }
}

/// Which group each parameter of a module falls into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamGrouping {
    /// `(lr_factor, decay)` -> parameter ids, in a stable order.
    pub groups: Vec<((u64, bool), Vec<ParamId>)>,
    /// Number of scalar parameters per group, same order.
    pub sizes: Vec<usize>,
}

struct GroupingVisitor<'a> {
    rules: &'a [LrGroupRule],
    path: Vec<String>,
    groups: HashMap<(u64, bool), (Vec<ParamId>, usize)>,
    order: Vec<(u64, bool)>,
}

impl<B: Backend> ModuleVisitor<B> for GroupingVisitor<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let key = group_key(self.rules, &self.path, D);
        let numel = param.shape().num_elements();
        let entry = self.groups.entry(key).or_insert_with(|| {
            self.order.push(key);
            (Vec::new(), 0)
        });
        entry.0.push(param.id);
        entry.1 += numel;
    }
}

/// The group of a parameter at `path` with `rank` dimensions: (LR factor bits, decay).
fn group_key(rules: &[LrGroupRule], path: &[String], rank: usize) -> (u64, bool) {
    let factor = rules
        .iter()
        .find(|r| r.prefixes.iter().any(|p| path_has_prefix(path, p)))
        .map(|r| r.lr_factor)
        .unwrap_or(1.0);
    (factor.to_bits(), rank >= 2)
}

fn path_has_prefix(path: &[String], prefix: &str) -> bool {
    let segs: Vec<&str> = prefix.split('.').filter(|s| !s.is_empty()).collect();
    segs.len() <= path.len() && segs.iter().zip(path).all(|(a, b)| a == b)
}

/// Groups a module's float parameters by LR factor and by decay (matrices) / no decay (1-D).
pub fn group_parameters<B: Backend, M: burn::module::Module<B>>(
    module: &M,
    rules: &[LrGroupRule],
) -> ParamGrouping {
    let mut v = GroupingVisitor {
        rules,
        path: Vec::new(),
        groups: HashMap::new(),
        order: Vec::new(),
    };
    module.visit(&mut v);
    let mut out = ParamGrouping::default();
    for key in v.order {
        if let Some((ids, size)) = v.groups.remove(&key) {
            out.groups.push((key, ids));
            out.sizes.push(size);
        }
    }
    out
}

/// Moves every gradient into its group's container and accumulates the squared global norm.
struct SplitVisitor<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    rules: &'a [LrGroupRule],
    keys: &'a [(u64, bool)],
    path: Vec<String>,
    out: Vec<GradientsParams>,
    sq_norm: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SplitVisitor<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let sq = grad.clone().powf_scalar(2.0).sum();
        self.sq_norm = Some(match self.sq_norm.take() {
            Some(acc) => acc + sq,
            None => sq,
        });
        let key = group_key(self.rules, &self.path, D);
        if let Some(g) = self.keys.iter().position(|k| *k == key) {
            self.out[g].register::<B::InnerBackend, D>(param.id, grad);
        }
    }
}

/// Scales every gradient of a container by a factor.
struct ScaleVisitor<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    factor: f64,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaleVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads
                .register::<B::InnerBackend, D>(param.id, g.mul_scalar(self.factor));
        }
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> AntmmfOptimizer<M, B> {
    /// Builds the groups for `module` (call with the model that will be trained).
    pub fn new(config: &AntmmfOptimizerConfig, module: &M) -> Self {
        let grouping = group_parameters::<B, M>(module, &config.lr_rules);
        let groups = grouping
            .groups
            .into_iter()
            .map(|((factor_bits, decay), _ids)| {
                let adamw = AdamWConfig::new()
                    .with_beta_1(config.beta_1)
                    .with_beta_2(config.beta_2)
                    .with_epsilon(config.epsilon)
                    .with_weight_decay(if decay { config.weight_decay } else { 0.0 });
                Group {
                    key: (factor_bits, decay),
                    lr_factor: f64::from_bits(factor_bits),
                    optim: adamw.init::<B, M>(),
                }
            })
            .collect();
        Self {
            groups,
            rules: Arc::new(config.lr_rules.clone()),
            max_grad_norm: config.max_grad_norm,
            last_grad_norm: Arc::new(Mutex::new(None)),
            snapshot: Arc::new(Mutex::new(SnapshotSlot {
                requested: false,
                record: None,
            })),
        }
    }

    /// A handle to request and collect copies of the optimizer state.
    pub fn snapshot_handle(&self) -> OptimizerSnapshot<AntmmfOptimizerRecord<M, B>> {
        OptimizerSnapshot(self.snapshot.clone())
    }

    /// The global gradient L2 norm of the last step (before clipping); NaN or infinite when a
    /// gradient was not finite.
    pub fn last_grad_norm(&self) -> Option<f64> {
        self.last_grad_norm.lock().ok().and_then(|g| *g)
    }

    /// A handle that keeps reporting the last gradient norm after the optimizer moves into a
    /// learner.
    pub fn grad_norm_handle(&self) -> GradNormHandle {
        GradNormHandle(self.last_grad_norm.clone())
    }

    /// Number of parameter groups (for logs and tests).
    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }
}

/// Reads the last global gradient norm of an [`AntmmfOptimizer`].
#[derive(Clone, Debug)]
pub struct GradNormHandle(Arc<Mutex<Option<f64>>>);

impl GradNormHandle {
    /// The last global gradient norm, if a step happened.
    pub fn get(&self) -> Option<f64> {
        self.0.lock().ok().and_then(|g| *g)
    }
}

/// The saved state of an [`AntmmfOptimizer`]: one AdamW record per group, in group order.
pub type AntmmfOptimizerRecord<M, B> =
    Vec<<OptimizerAdaptor<AdamW, M, B> as Optimizer<M, B>>::Record>;

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for AntmmfOptimizer<M, B>
where
    <OptimizerAdaptor<AdamW, M, B> as Optimizer<M, B>>::Record: Record<B>,
{
    type Record = AntmmfOptimizerRecord<M, B>;

    fn step(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        let keys: Vec<(u64, bool)> = self.groups.iter().map(|g| g.key).collect();
        let mut split = SplitVisitor::<B> {
            grads: &mut grads,
            rules: &self.rules,
            keys: &keys,
            path: Vec::new(),
            out: (0..self.groups.len())
                .map(|_| GradientsParams::new())
                .collect(),
            sq_norm: None,
        };
        module.visit(&mut split);
        let SplitVisitor {
            mut out, sq_norm, ..
        } = split;
        let norm = sq_norm.map(|s| s.into_scalar().elem::<f64>().sqrt());
        if let Ok(mut last) = self.last_grad_norm.lock() {
            *last = norm;
        }
        if let Some(norm) = norm
            && !norm.is_finite()
        {
            log::debug!("gradient norm is {norm}: parameters and optimizer state left unchanged");
            return module;
        }
        if let (Some(max), Some(norm)) = (self.max_grad_norm, norm) {
            // clip_grad_norm_: scale by max / (norm + 1e-6) when above the threshold.
            let factor = max / (norm + 1e-6);
            if factor < 1.0 {
                for group_grads in out.iter_mut() {
                    let mut scale = ScaleVisitor::<B> {
                        grads: group_grads,
                        factor,
                        _b: std::marker::PhantomData,
                    };
                    module.visit(&mut scale);
                }
            }
        }
        let mut module = module;
        for (group, group_grads) in self.groups.iter_mut().zip(out) {
            if group_grads.is_empty() {
                continue;
            }
            module = group.optim.step(lr * group.lr_factor, module, group_grads);
        }
        let wants_copy = self.snapshot.lock().map(|s| s.requested).unwrap_or(false);
        if wants_copy {
            let record = self.to_record();
            if let Ok(mut s) = self.snapshot.lock() {
                s.requested = false;
                s.record = Some(record);
            }
        }
        module
    }

    fn step_multi(&mut self, lr: f64, module: M, grads: MultiGradientsParams) -> M {
        // Gather every device's gradients onto the parameter's device, then step as usual.
        let mut merged = GradientsParams::new();
        let mut gather = GatherVisitor::<B> {
            from: grads,
            into: &mut merged,
            _b: std::marker::PhantomData,
        };
        module.visit(&mut gather);
        self.step(lr, module, merged)
    }

    fn to_record(&self) -> Self::Record {
        self.groups.iter().map(|g| g.optim.to_record()).collect()
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        if record.len() == self.groups.len() {
            for (group, rec) in self.groups.iter_mut().zip(record) {
                group.optim = group.optim.clone().load_record(rec);
            }
        } else {
            log::warn!(
                "optimizer state has {} parameter groups, the model {}: starting the optimizer afresh",
                record.len(),
                self.groups.len()
            );
        }
        self
    }
}

struct GatherVisitor<'a, B: AutodiffBackend> {
    from: MultiGradientsParams,
    into: &'a mut GradientsParams,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GatherVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some((g, _device)) = self.from.remove::<B::InnerBackend, D>(param.id) {
            self.into.register::<B::InnerBackend, D>(param.id, g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Module;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};

    type B = Autodiff<Flex>;

    #[derive(Module, Debug)]
    struct Enc<B: Backend> {
        proj: Linear<B>,
        norm: LayerNorm<B>,
    }

    #[derive(Module, Debug)]
    struct Net<B: Backend> {
        encoder: Enc<B>,
        head: Linear<B>,
    }

    fn net() -> Net<B> {
        let d = Default::default();
        Net {
            encoder: Enc {
                proj: LinearConfig::new(3, 4).init(&d),
                norm: LayerNormConfig::new(4).init(&d),
            },
            head: LinearConfig::new(4, 2).init(&d),
        }
    }

    #[test]
    fn groups_split_decay_and_encoder_lr() {
        let model = net();
        let rules = vec![LrGroupRule {
            prefixes: vec!["encoder".into()],
            lr_factor: 0.01,
        }];
        let g = group_parameters::<B, _>(&model, &rules);
        // encoder matrices, encoder 1-D (bias + gamma + beta), head matrix, head bias.
        let sizes: HashMap<(u64, bool), usize> = g
            .groups
            .iter()
            .map(|(k, _)| *k)
            .zip(g.sizes.iter().copied())
            .collect();
        assert_eq!(sizes[&(0.01f64.to_bits(), true)], 12);
        assert_eq!(sizes[&(0.01f64.to_bits(), false)], 4 + 4 + 4);
        assert_eq!(sizes[&(1.0f64.to_bits(), true)], 8);
        assert_eq!(sizes[&(1.0f64.to_bits(), false)], 2);
        assert!(path_has_prefix(
            &["encoder".into(), "proj".into()],
            "encoder"
        ));
        assert!(!path_has_prefix(&["encoders".into()], "encoder"));
    }

    #[test]
    fn global_norm_is_reported_and_clipping_bounds_the_update() {
        let d = Default::default();
        let model = net();
        let x = Tensor::<B, 2>::from_floats([[100.0, -50.0, 30.0]], &d);
        let loss = model
            .head
            .forward(model.encoder.norm.forward(model.encoder.proj.forward(x)))
            .sum()
            .mul_scalar(1000.0);
        let grads = GradientsParams::from_grads::<B, _>(loss.backward(), &model);
        // Norm computed independently from the gradients.
        let mut expect = 0.0f64;
        let mut v = NormCheck::<B> {
            grads: &grads,
            sq: &mut expect,
            _b: std::marker::PhantomData,
        };
        model.visit(&mut v);
        let config = AntmmfOptimizerConfig {
            max_grad_norm: Some(1.0),
            ..Default::default()
        };
        let mut optim = AntmmfOptimizer::<_, B>::new(&config, &model);
        let before = model.head.weight.val().into_data();
        let model2 = optim.step(1e-3, model, grads);
        let norm = optim.last_grad_norm().unwrap();
        assert!(
            (norm - expect.sqrt()).abs() <= 1e-3 * expect.sqrt(),
            "{norm} vs {}",
            expect.sqrt()
        );
        assert!(norm > 1.0);
        // Adam's first step moves each weight by at most ~lr regardless of clipping.
        let after = model2.head.weight.val().into_data();
        let b: Vec<f32> = before.to_vec().unwrap();
        let a: Vec<f32> = after.to_vec().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1.01e-3, "{x} {y}");
        }
        assert_eq!(optim.to_record().len(), optim.num_groups());
    }

    struct NormCheck<'a, Bk: AutodiffBackend> {
        grads: &'a GradientsParams,
        sq: &'a mut f64,
        _b: std::marker::PhantomData<Bk>,
    }

    impl<Bk: AutodiffBackend> ModuleVisitor<Bk> for NormCheck<'_, Bk> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
            if let Some(g) = self.grads.get::<Bk::InnerBackend, D>(param.id) {
                let v: Vec<f32> = g.into_data().to_vec().unwrap();
                *self.sq += v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>();
            }
        }
    }
}
