//! Gradient checkpointing (`gradient_checkpointing` in the encoder params): training on
//! `Autodiff<Flex, BalancedCheckpointing>`, which recomputes memory-bound activations in the
//! backward pass, gives the same loss and the same gradients as `Autodiff<Flex>`, dropout and
//! the task's random masking included.

use crate::common;

use antmmf_data::dataset_config::Split;
use antmmf_data::loader::{DeterministicLoader, LoaderConfig};
use antmmf_tasks::run::{RunPlan, build_model};
use antmmf_tasks::univl_task::task_forward;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use std::path::Path;
use std::sync::Arc;

type Plain = Autodiff<Flex>;
type Checkpointed = Autodiff<Flex, BalancedCheckpointing>;

/// The synthetic retrieval config with `gradient_checkpointing` on every Swin stage (dropout on).
fn plan(save: &Path) -> RunPlan {
    common::synthetic_retrieval(
        save,
        Some(
            "model_attributes:\n  univl:\n    image_encoder:\n      params:\n        gradient_checkpointing: [true, true]\n",
        ),
    )
}

/// The loss of one training forward of `weights` (the model's record) on the first training
/// batch, and every parameter's gradient (zeros where a parameter gets none), on backend `B`.
fn loss_and_grads<B: AutodiffBackend>(
    plan: &RunPlan,
    weights: Option<Vec<u8>>,
) -> (f32, Vec<f32>, Vec<u8>) {
    let device = Default::default();
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let mut model = build_model::<B>(plan, &device).unwrap();
    if let Some(bytes) = weights {
        model = model.load_record(recorder.load(bytes, &device).unwrap());
    }
    let bytes = recorder.record(model.clone().into_record(), ()).unwrap();
    let dataset = Arc::new(plan.dataset(Split::Train).unwrap());
    let loader =
        DeterministicLoader::<B>::new(dataset, LoaderConfig::eval(4, 0, plan.seed), device)
            .unwrap();
    let batch = loader.iter_from(0, 0).next().unwrap();
    // The same dropout and masking draws on both backends.
    B::seed(&Default::default(), 7);
    let fwd = task_forward(&model.univl, &model.settings, &batch, true).unwrap();
    let loss = fwd.total.clone().into_scalar().elem::<f32>();
    let grads = fwd.total.backward();
    struct Grads<'a, B: AutodiffBackend> {
        grads: &'a B::Gradients,
        out: Vec<f32>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Grads<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val();
            match t.grad(self.grads) {
                Some(g) => self.out.extend(g.into_data().to_vec::<f32>().unwrap()),
                None => self
                    .out
                    .extend(std::iter::repeat_n(0.0, t.shape().num_elements())),
            }
        }
    }
    let mut visitor = Grads::<B> {
        grads: &grads,
        out: Vec::new(),
    };
    model.visit(&mut visitor);
    (loss, visitor.out, bytes)
}

#[test]
fn checkpointed_backend_gives_the_same_loss_and_gradients() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = plan(tmp.path());
    assert!(plan.model.gradient_checkpointing(), "the flag is read");
    let (loss_a, grads_a, weights) = loss_and_grads::<Plain>(&plan, None);
    let (loss_b, grads_b, _) = loss_and_grads::<Checkpointed>(&plan, Some(weights));
    assert!(loss_a.is_finite() && loss_a > 0.0, "{loss_a}");
    assert!(
        (loss_a - loss_b).abs() <= 1e-5 * loss_a.abs(),
        "{loss_a} vs {loss_b}"
    );
    assert_eq!(grads_a.len(), grads_b.len());
    // Most of the parameters are the word embeddings, which get gradients only for the batch's
    // tokens: the rest of the model (about 120,000 values) must get them.
    let nonzero = grads_a.iter().filter(|g| **g != 0.0).count();
    assert!(
        nonzero > 50_000,
        "only {nonzero} of {} gradients are non-zero",
        grads_a.len()
    );
    let nonzero_b = grads_b.iter().filter(|g| **g != 0.0).count();
    assert_eq!(nonzero, nonzero_b, "the same parameters get gradients");
    let scale = grads_a.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    let worst = grads_a
        .iter()
        .zip(&grads_b)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-5 * scale,
        "largest gradient difference {worst} (largest gradient {scale})"
    );
}
