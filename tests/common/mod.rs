//! Shared by the end-to-end tests of the binaries.

use std::path::{Path, PathBuf};
use std::process::Output;

/// Asserts a zero exit status, showing the last 30 lines of stderr otherwise.
pub fn assert_success(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    assert!(o.status.success(), "{what}: {}\n{tail}", o.status);
}

/// The one run directory (`<task>_<model>[_<seed>]`) a run created under `save_dir`.
pub fn run_dir(save_dir: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(save_dir)
        .expect("save_dir exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one run directory in {save_dir:?}: {dirs:?}");
    dirs.into_iter().next().unwrap_or_default()
}
