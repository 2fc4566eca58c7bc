//! Run-time backend and device selection (`--backend`, `--devices`).
//!
//! The binaries compile a set of Burn backends selected by cargo features and pick one at run
//! time; a backend that was not compiled in is an error naming the feature to enable.

use std::fmt;
use std::str::FromStr;

/// A Burn backend the binaries can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// burn-flex: the fast pure-Rust CPU backend (default).
    Flex,
    /// burn-ndarray: the reference CPU backend.
    NdArray,
    /// burn-wgpu: Vulkan/Metal/DX12 GPUs (lavapipe on CPU-only machines).
    Wgpu,
    /// burn-cuda: NVIDIA GPUs, production training.
    Cuda,
}

impl BackendKind {
    /// All backends, in the order `--help` lists them.
    pub const ALL: [BackendKind; 4] = [Self::Flex, Self::NdArray, Self::Wgpu, Self::Cuda];

    /// The `--backend` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::NdArray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// The cargo feature of the `antmmf-apps` package that compiles this backend in.
    pub fn cargo_feature(self) -> &'static str {
        self.name()
    }

    /// Whether this backend runs on GPUs (so `--devices` indices are meaningful).
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::Wgpu | Self::Cuda)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown backend name or a malformed device list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend at all.
    #[error("unknown backend `{0}`: choose one of flex, ndarray, wgpu, cuda")]
    Unknown(String),
    /// The backend exists but this binary was built without it.
    #[error(
        "backend `{backend}` is not compiled into this binary; rebuild with `cargo build -p antmmf-apps --features {feature}` (compiled in: {available})"
    )]
    NotCompiled {
        /// The backend asked for.
        backend: BackendKind,
        /// The cargo feature that enables it.
        feature: &'static str,
        /// The backends this binary has.
        available: String,
    },
    /// `--devices` is not a comma-separated list of indices.
    #[error("invalid --devices `{0}`: expected comma-separated GPU indices such as 0 or 0,1,2,3")]
    Devices(String),
}

impl FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| BackendError::Unknown(s.to_string()))
    }
}

/// Checks that `kind` is among the `compiled` backends.
pub fn ensure_compiled(kind: BackendKind, compiled: &[BackendKind]) -> Result<(), BackendError> {
    if compiled.contains(&kind) {
        Ok(())
    } else {
        Err(BackendError::NotCompiled {
            backend: kind,
            feature: kind.cargo_feature(),
            available: compiled
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// Parses `--devices 0,1,3` (duplicates rejected).
pub fn parse_devices(s: &str) -> Result<Vec<usize>, BackendError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let idx = part
            .trim()
            .parse::<usize>()
            .map_err(|_| BackendError::Devices(s.to_string()))?;
        if out.contains(&idx) {
            return Err(BackendError::Devices(s.to_string()));
        }
        out.push(idx);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for b in BackendKind::ALL {
            assert_eq!(b.name().parse::<BackendKind>().unwrap(), b);
        }
        assert_eq!("CUDA".parse::<BackendKind>().unwrap(), BackendKind::Cuda);
        assert_eq!(
            "tpu".parse::<BackendKind>().unwrap_err().to_string(),
            "unknown backend `tpu`: choose one of flex, ndarray, wgpu, cuda"
        );
    }

    #[test]
    fn not_compiled_names_the_feature() {
        let err = ensure_compiled(BackendKind::Cuda, &[BackendKind::Flex]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend `cuda` is not compiled into this binary; rebuild with `cargo build -p antmmf-apps --features cuda` (compiled in: flex)"
        );
        assert!(ensure_compiled(BackendKind::Flex, &[BackendKind::Flex]).is_ok());
    }

    #[test]
    fn devices() {
        assert_eq!(parse_devices("0").unwrap(), vec![0]);
        assert_eq!(parse_devices("0, 1,3").unwrap(), vec![0, 1, 3]);
        assert!(parse_devices("0,,1").is_err());
        assert!(parse_devices("a").is_err());
        assert!(parse_devices("1,1").is_err());
    }
}
