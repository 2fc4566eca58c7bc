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
pub mod tensorboard;

pub use config::{Config, ConfigError, ConfigSources};

/// Kill-test hook: when the environment variable `ANTMMF_TEST_PAUSE_AT` names `point`, prints
/// `ANTMMF_PAUSED_AT <point>` on stderr and waits to be killed, so a test can SIGKILL the
/// program at a precise place (during a step, a checkpoint write, a validation) instead of at a
/// random time. Does nothing otherwise.
pub fn testing_pause(point: &str) {
    if std::env::var("ANTMMF_TEST_PAUSE_AT").ok().as_deref() == Some(point) {
        eprintln!("ANTMMF_PAUSED_AT {point}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// [`testing_pause`] at one iteration only: pauses when `ANTMMF_TEST_PAUSE_AT` names `point` and
/// `ANTMMF_TEST_PAUSE_ITER` is unset or equals `iteration` (so a kill test can stop the program
/// in the middle of, say, the third step rather than the first).
pub fn testing_pause_at_iteration(point: &str, iteration: u64) {
    let wanted = std::env::var("ANTMMF_TEST_PAUSE_ITER")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if wanted.is_none_or(|w| w == iteration) {
        testing_pause(point);
    }
}
