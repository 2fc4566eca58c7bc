//! MoCo state of the UniVL L1 contrastive loss: momentum key encoders and key queues.
//!
//! Mirrors `prj/base_vtp/roi_univl/univl/model/moco_utils.py` (`MocoUtils`): the key encoders
//! are copies of the text encoder (BERT with pooler) and of the image encoder (backbone +
//! `img_fc`), updated as `k = m * k + (1 - m) * q` outside autodiff; the queues are `[H, K]`,
//! drawn from N(0, 1) and L2-normalised per column, with a write pointer each.
//!
//! # How the state is recorded (Burn 0.21)
//! - Key encoder weights are ordinary `Param`s whose tensors do not require gradients
//!   (`Module::no_grad`): they are saved and loaded with the module record like any weight, keep
//!   `require_grad = false` through `load_record`, get no gradient and so are never touched by
//!   the optimizer.
//! - A queue and its pointer are [`RunningState`] tensors, Burn's recorded non-trainable state
//!   (BatchNorm's running statistics): the record holds them as float tensors, and they can be
//!   updated through `&self`, i.e. from inside a `TrainStep::step`. The pointer is stored as a
//!   one-element f32 tensor (exact for queue lengths up to 2^24, which the config enforces).
//! - Plain `Tensor` fields would *not* be recorded (Burn gives them an empty record), and
//!   primitive fields (`usize`) are constants, not state.
//!
//! `RunningState` averages the updates made by different threads at the next read; the queues
//! are therefore meant to be updated from one training thread (single-device training). Under a
//! multi-device strategy, gather the keys on one device before enqueueing (AntMMF all-gathers).

use burn::module::{
    AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId, RunningState,
};
use burn::optim::{GradientsParams, LearningRate, MultiGradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor, TensorData};

use crate::bert::Bert;
use crate::losses::{l2_normalize, moco_enqueue};

use super::UnivlError;
use super::visual::VisualEncoder;

/// MoCo key encoders and queues.
#[derive(Module, Debug)]
pub struct Moco<B: Backend> {
    /// Momentum copy of the text encoder (no gradients).
    pub text_key: Bert<B>,
    /// Momentum copy of the image encoder incl. `img_fc` (no gradients).
    pub video_key: VisualEncoder<B>,
    /// Past text keys, `[hidden, K]` (AntMMF `txt_queue`).
    pub text_queue: RunningState<Tensor<B, 2>>,
    /// Past clip keys, `[hidden, K_video]` (AntMMF `img_queue`).
    pub video_queue: RunningState<Tensor<B, 2>>,
    /// Write position in `text_queue`, as a `[1]` float tensor.
    pub text_queue_ptr: RunningState<Tensor<B, 1>>,
    /// Write position in `video_queue`, as a `[1]` float tensor.
    pub video_queue_ptr: RunningState<Tensor<B, 1>>,
}

/// A random `[hidden, len]` queue with unit-norm columns (`F.normalize(randn, dim=0)`).
fn random_queue<B: Backend>(hidden: usize, len: usize, device: &B::Device) -> Tensor<B, 2> {
    l2_normalize(
        Tensor::random([hidden, len], Distribution::Normal(0.0, 1.0), device),
        0,
    )
}

impl<B: Backend> Moco<B> {
    /// Key encoders copied from the query encoders (fresh parameter ids, no gradients) and
    /// random queues.
    pub(crate) fn new(
        text: &Bert<B>,
        video: &VisualEncoder<B>,
        hidden: usize,
        text_len: usize,
        video_len: usize,
        device: &B::Device,
    ) -> Self {
        let zero = || RunningState::new(Tensor::zeros([1], device));
        Self {
            text_key: fresh_copy(text, Some(false)),
            video_key: fresh_copy(video, Some(false)),
            text_queue: RunningState::new(random_queue(hidden, text_len, device)),
            video_queue: RunningState::new(random_queue(hidden, video_len, device)),
            text_queue_ptr: zero(),
            video_queue_ptr: zero(),
        }
    }

    /// Writes keys into one queue at its pointer and advances it (see [`moco_enqueue`]).
    pub(crate) fn enqueue(
        queue: &RunningState<Tensor<B, 2>>,
        pointer: &RunningState<Tensor<B, 1>>,
        keys: Tensor<B, 2>,
    ) -> Result<(), UnivlError> {
        let ptr = read_pointer(pointer);
        let (updated, next) = moco_enqueue(queue.value_sync(), keys, ptr)?;
        queue.update(updated.detach());
        let device = pointer.value().device();
        pointer.update(Tensor::from_data(
            TensorData::new(vec![next as f32], [1]),
            &device,
        ));
        // Flush this thread's pending updates into the stored values now: `Module::visit`
        // (burn-store snapshots) reads the stored value without syncing.
        let _ = queue.value_sync();
        let _ = pointer.value_sync();
        Ok(())
    }
}

/// Checks that keys fit a queue (`[n, hidden]` with `n <= K`) without touching it.
pub(crate) fn check_keys<B: Backend>(
    what: &str,
    queue: &RunningState<Tensor<B, 2>>,
    keys: &Tensor<B, 2>,
) -> Result<(), UnivlError> {
    let [h, k] = queue.value().dims();
    let [n, hk] = keys.dims();
    if hk != h || n > k {
        return Err(UnivlError::Shape(format!(
            "{what} keys [{n}, {hk}] do not fit the [{h}, {k}] queue"
        )));
    }
    Ok(())
}

/// The pointer as an index (the stored f32 is an exact integer).
pub(crate) fn read_pointer<B: Backend>(pointer: &RunningState<Tensor<B, 1>>) -> usize {
    pointer
        .value_sync()
        .into_data()
        .convert::<f32>()
        .iter::<f32>()
        .next()
        .map(|v| v.max(0.0) as usize)
        .unwrap_or(0)
}

/// Initialises every lazily initialised parameter of `module` in place.
///
/// Burn 0.21 parameters are lazy, and a *clone* of a still-lazy parameter initialises on its own
/// (with other random values): a module must be materialised before it is cloned to be copied.
pub fn materialize<B: Backend, M: Module<B>>(module: &M) {
    struct Touch;
    impl<B: Backend> ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, burn::tensor::Int>>) {
            let _ = param.val();
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, burn::tensor::Bool>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// A copy of `module` with new parameter ids and new tensors (so that the copy is a separate
/// parameter for autodiff and the optimizer), optionally forcing `require_grad`.
pub fn fresh_copy<B: Backend, M: Module<B>>(module: &M, require_grad: Option<bool>) -> M {
    materialize(module);
    let module = module.clone();
    struct Fresh {
        require_grad: Option<bool>,
    }
    impl<B: Backend> ModuleMapper<B> for Fresh {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (_, tensor, mapper) = param.consume();
            let grad = self.require_grad.unwrap_or(tensor.is_require_grad());
            let device = tensor.device();
            let copy = Tensor::<B, D>::from_data(tensor.into_data(), &device);
            Param::from_mapped_value(ParamId::new(), copy.set_require_grad(grad), mapper)
        }
    }
    module.map(&mut Fresh { require_grad })
}

/// `key = m * key + (1 - m) * query`, parameter by parameter in visit order, outside autodiff.
///
/// Returns the updated key module and whether the two modules had the same parameter shapes
/// (a key parameter without a matching query parameter is left unchanged).
pub fn momentum_blend<B: Backend, M: Module<B>>(key: M, query: &M, m: f64) -> (M, bool) {
    struct Collect<B: Backend> {
        tensors: Vec<(Vec<usize>, Tensor<B, 1>)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Collect<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val().detach();
            let dims = t.dims().to_vec();
            let n = dims.iter().product::<usize>();
            self.tensors.push((dims, t.reshape([n])));
        }
    }
    struct Blend<B: Backend> {
        query: std::vec::IntoIter<(Vec<usize>, Tensor<B, 1>)>,
        m: f64,
        matched: bool,
    }
    impl<B: Backend> ModuleMapper<B> for Blend<B> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, key, mapper) = param.consume();
            let next = self.query.next();
            let updated = match next {
                Some((dims, q)) if dims.as_slice() == key.dims().as_slice() => {
                    let q: Tensor<B, D> = q.reshape(key.shape());
                    (key.detach().mul_scalar(self.m) + q.mul_scalar(1.0 - self.m)).detach()
                }
                _ => {
                    self.matched = false;
                    key
                }
            };
            Param::from_mapped_value(id, updated, mapper)
        }
    }
    let mut collect = Collect {
        tensors: Vec::new(),
    };
    query.visit(&mut collect);
    let mut blend = Blend {
        query: collect.tensors.into_iter(),
        m,
        matched: true,
    };
    let key = key.map(&mut blend);
    let matched = blend.matched && blend.query.next().is_none();
    (key, matched)
}

/// A model whose MoCo key encoders follow its query encoders by momentum (implemented by
/// [`super::Univl`]; a task model wrapping it forwards to it).
pub trait MomentumKeys {
    /// The key momentum `m` (`model_attributes.univl.M`).
    fn key_momentum(&self) -> f64;
    /// `key = m * key + (1 - m) * query`, outside autodiff.
    fn momentum_keys(self, m: f64) -> Self;
}

/// An optimizer followed by the MoCo momentum update of the key encoders.
///
/// A Burn `TrainStep` sees the model immutably, so the momentum update (AntMMF's
/// `momentum_update_key_encoder` at the start of each step) happens right after each optimizer
/// step instead, which yields the same sequence of key weights. The optimizer record is the
/// inner optimizer's.
#[derive(Debug, Clone)]
pub struct WithMomentumUpdate<O> {
    inner: O,
}

impl<O> WithMomentumUpdate<O> {
    /// Wraps `inner`.
    pub fn new(inner: O) -> Self {
        Self { inner }
    }

    /// The wrapped optimizer.
    pub fn into_inner(self) -> O {
        self.inner
    }
}

impl<M, B, O> Optimizer<M, B> for WithMomentumUpdate<O>
where
    M: AutodiffModule<B> + MomentumKeys,
    B: AutodiffBackend,
    O: Optimizer<M, B>,
{
    type Record = O::Record;

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        let module = self.inner.step(lr, module, grads);
        let m = module.key_momentum();
        module.momentum_keys(m)
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        let module = self.inner.step_multi(lr, module, grads);
        let m = module.key_momentum();
        module.momentum_keys(m)
    }

    fn to_record(&self) -> Self::Record {
        self.inner.to_record()
    }

    fn load_record(self, record: Self::Record) -> Self {
        Self {
            inner: self.inner.load_record(record),
        }
    }
}
