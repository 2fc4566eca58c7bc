//! antmmf-core: configuration (AntMMF YAML with includes and overrides), run directories and
//! atomic files, backend and device selection, logging.
//!
//! This crate has no Burn dependency: everything here is shared by the data, model and task
//! crates and by the binaries.

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod fsutil;
pub mod logging;
pub mod run_dir;

pub use config::{Config, ConfigError, ConfigSources};
