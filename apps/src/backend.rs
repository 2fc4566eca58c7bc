//! Run-time backend selection: `--backend NAME` picks one of the backends compiled in through the
//! `antmmf-apps` cargo features and calls a generic entry point with it, once, at the top of a
//! binary. Everything below that point is generic over Burn's `AutodiffBackend`.

use antmmf_core::backend::{BackendError, BackendKind, ensure_compiled};
use burn::tensor::backend::AutodiffBackend;

/// The backends compiled into this binary.
pub fn compiled_backends() -> Vec<BackendKind> {
    let mut out = Vec::new();
    if cfg!(feature = "flex") {
        out.push(BackendKind::Flex);
    }
    if cfg!(feature = "ndarray") {
        out.push(BackendKind::NdArray);
    }
    if cfg!(feature = "wgpu") {
        out.push(BackendKind::Wgpu);
    }
    if cfg!(feature = "cuda") {
        out.push(BackendKind::Cuda);
    }
    out
}

/// Whether this binary can train over several nodes (cargo feature `collective`).
pub fn collective_compiled() -> bool {
    cfg!(feature = "collective")
}

/// Fails, naming the cargo feature, when `nodes` > 1 and this binary has no collective engine.
pub fn ensure_collective(nodes: usize) -> Result<(), antmmf_tasks::distributed::DistributedError> {
    if nodes > 1 && !collective_compiled() {
        return Err(antmmf_tasks::distributed::DistributedError::NotCompiled { nodes });
    }
    Ok(())
}

/// A generic entry point, called with the selected backend and its devices.
pub trait BackendVisitor {
    /// What the entry point returns.
    type Output;
    /// Runs with backend `B` on `devices` (at least one).
    fn visit<B: AutodiffBackend>(self, kind: BackendKind, devices: Vec<B::Device>) -> Self::Output;
}

/// Calls `visitor` with the backend `kind` on the GPUs `device_ids` (CPU backends have one device
/// and reject indices other than 0).
pub fn with_backend<V: BackendVisitor>(
    kind: BackendKind,
    device_ids: &[usize],
    visitor: V,
) -> Result<V::Output, BackendError> {
    with_backend_checkpointing(kind, device_ids, false, visitor)
}

/// [`with_backend`], with gradient checkpointing when `checkpointing` is set: the autodiff
/// backend is then `Autodiff<B, BalancedCheckpointing>`, which keeps the outputs of
/// compute-bound operations (matmuls, convolutions) and recomputes memory-bound ones
/// (activations, normalisations, element-wise ops) in the backward pass. Burn 0.21 checkpoints
/// per backend, not per module, so a `gradient_checkpointing` flag on any stage turns it on for
/// the whole model.
pub fn with_backend_checkpointing<V: BackendVisitor>(
    kind: BackendKind,
    device_ids: &[usize],
    checkpointing: bool,
    visitor: V,
) -> Result<V::Output, BackendError> {
    use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
    ensure_compiled(kind, &compiled_backends())?;
    let ids: Vec<usize> = if device_ids.is_empty() {
        vec![0]
    } else {
        device_ids.to_vec()
    };
    if !kind.is_gpu() && ids != [0] {
        return Err(BackendError::Devices(format!(
            "{} (the {kind} backend runs on the CPU: use --devices 0 or leave it out)",
            ids.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )));
    }
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => {
            use burn::backend::{Autodiff, Flex, flex::FlexDevice};
            Ok(if checkpointing {
                visitor.visit::<Autodiff<Flex, BalancedCheckpointing>>(kind, vec![FlexDevice])
            } else {
                visitor.visit::<Autodiff<Flex>>(kind, vec![FlexDevice])
            })
        }
        #[cfg(feature = "ndarray")]
        BackendKind::NdArray => {
            use burn::backend::{Autodiff, NdArray, ndarray::NdArrayDevice};
            Ok(if checkpointing {
                visitor.visit::<Autodiff<NdArray, BalancedCheckpointing>>(
                    kind,
                    vec![NdArrayDevice::Cpu],
                )
            } else {
                visitor.visit::<Autodiff<NdArray>>(kind, vec![NdArrayDevice::Cpu])
            })
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            use burn::backend::{Autodiff, Wgpu, wgpu::WgpuDevice};
            let devices = if device_ids.is_empty() {
                vec![WgpuDevice::DefaultDevice]
            } else {
                ids.iter().map(|i| WgpuDevice::DiscreteGpu(*i)).collect()
            };
            Ok(if checkpointing {
                visitor.visit::<Autodiff<Wgpu, BalancedCheckpointing>>(kind, devices)
            } else {
                visitor.visit::<Autodiff<Wgpu>>(kind, devices)
            })
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            use burn::backend::{Autodiff, Cuda, cuda::CudaDevice};
            let devices = ids.iter().map(|i| CudaDevice { index: *i }).collect();
            Ok(if checkpointing {
                visitor.visit::<Autodiff<Cuda, BalancedCheckpointing>>(kind, devices)
            } else {
                visitor.visit::<Autodiff<Cuda>>(kind, devices)
            })
        }
        #[allow(unreachable_patterns)]
        other => Err(BackendError::NotCompiled {
            backend: other,
            feature: other.cargo_feature(),
            available: String::new(),
        }),
    }
}
