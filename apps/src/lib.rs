//! Shared plumbing of the antmmf-rs binaries: the common command line (AntMMF's flags), config
//! loading with overrides, and the one-time dispatch from `--backend` to a generic entry point.
//!
//! Binaries stay thin: everything they do is reachable through this crate's functions, so tests
//! can drive it.

pub mod backend;
pub mod cli;

pub use backend::{BackendVisitor, compiled_backends, with_backend};
pub use cli::{ACTED_ON_KEYS, CommonArgs, load_config, warn_ignored_keys};
