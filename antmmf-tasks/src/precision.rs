//! Training precision: `training_parameters.enable_amp`.
//!
//! Burn 0.21 has no autocast and no loss scaling, and its CPU backend computes a binary op on
//! two tensors of different dtypes as garbage (the check is a debug assertion). What it has is a
//! per-device default float dtype ([`burn::tensor::set_default_dtypes`]) that every tensor
//! created on the device follows. So `enable_amp: True` trains in **pure bf16**: the default
//! float dtype of the training device is set to bf16 before anything touches the device, every
//! parameter is cast to bf16 after the model is built (pretrained files are read as f32), and
//! activations, gradients and the AdamW moments are then bf16 too. bf16 keeps f32's exponent
//! range, so no loss scaling is needed (AntMMF's fp16 `GradScaler` settings, `amp_attributes`,
//! have nothing to act on). Checkpoints are written in f32 as always and load into either
//! precision. The accuracy cost against f32 is measured on the synthetic learning task
//! (docs/BENCHMARKS.md). Runs with MoCo (`with_moco`) train in f32 whatever `enable_amp` says:
//! the momentum encoders' updates, `1 - M` = 1e-4 of a weight, vanish in bf16. f32 master
//! weights (bf16 compute, f32 optimizer) would need every record loaded on the bf16 device
//! (weights, AdamW moments) cast back to f32, since loads and creations follow the device's
//! default dtype; a missed cast mixes dtypes in one op.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element, FloatDType, IntDType, Tensor};

/// The training precision could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PrecisionError {
    /// The backend cannot compute in bf16 on this device.
    #[error(
        "training_parameters.enable_amp: this backend cannot train in bf16 on {device}: {reason}"
    )]
    Unsupported {
        /// The device.
        device: String,
        /// Burn's reason.
        reason: String,
    },
}

/// Makes bf16 the default float dtype of `device` when `enable_amp` is set (else nothing).
///
/// Must run before any tensor is created on the device. A device already initialised with bf16
/// (a second run in the same process) is accepted; one initialised with f32 is an error, since
/// its tensors would silently mix dtypes.
pub fn set_training_precision<B: Backend>(
    device: &B::Device,
    enable_amp: bool,
) -> Result<(), PrecisionError> {
    if !enable_amp {
        return Ok(());
    }
    let int: IntDType = <B::IntElem as Element>::dtype().into();
    match burn::tensor::set_default_dtypes::<B>(device, FloatDType::BF16, int) {
        Ok(()) => Ok(()),
        Err(e) => {
            // Already initialised: fine when it is bf16 already.
            let probe = Tensor::<B, 1>::zeros([1], device);
            if probe.dtype() == DType::BF16 {
                Ok(())
            } else {
                Err(PrecisionError::Unsupported {
                    device: format!("{device:?}"),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// Casts every float parameter of a module to `dtype`, keeping parameter ids and whether each
/// one requires a gradient (the cast parameters are leaves again).
pub fn cast_float_params<B: Backend, M: Module<B>>(module: M, dtype: FloatDType) -> M {
    module.map(&mut CastFloats(dtype))
}

/// [`ModuleMapper`] behind [`cast_float_params`].
struct CastFloats(FloatDType);

impl<B: Backend> ModuleMapper<B> for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        if tensor.dtype() == DType::from(self.0) {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let grad = tensor.is_require_grad();
        let cast = tensor.cast(self.0).detach();
        let cast = if grad { cast.require_grad() } else { cast };
        Param::from_mapped_value(id, cast, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::LinearConfig;

    type B = Autodiff<Flex>;

    #[test]
    fn cast_keeps_ids_and_gradients() {
        let device = Default::default();
        let linear = LinearConfig::new(3, 2).init::<B>(&device);
        let id = linear.weight.id;
        let cast = cast_float_params(linear, FloatDType::BF16);
        assert_eq!(cast.weight.id, id);
        assert_eq!(cast.weight.val().dtype(), DType::BF16);
        assert!(cast.weight.val().is_require_grad());
        let bias = cast.bias.as_ref().expect("bias");
        assert_eq!(bias.val().dtype(), DType::BF16);
        // A bf16 forward and backward reach the cast leaves.
        let x = Tensor::<B, 2>::ones([4, 3], &device).cast(FloatDType::BF16);
        let grads = cast.forward(x).sum().backward();
        let g = cast.weight.grad(&grads).expect("a weight gradient");
        assert_eq!(g.dtype(), DType::BF16);
        // Each input is 1, so each weight's gradient is the batch size.
        let values: Vec<f32> = g.into_data().iter::<f32>().collect();
        assert!(values.iter().all(|v| *v == 4.0), "{values:?}");
    }
}
