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

/// The weights of a `model` section, with Burn's parameter ids blanked out. A model record stores
/// each parameter's `ParamId` next to its tensor, and Burn draws those ids at random in every
/// process: two runs with identical weights write different bytes there (a resumed run keeps the
/// ids of the checkpoint it loads). The ids are serialized as a 13-byte length prefix then 13
/// base-36 characters; everything else (tensor bytes, shapes, dtypes) is compared bit for bit.
pub fn weights(section: &[u8]) -> Vec<u8> {
    let mut out = section.to_vec();
    let mut ids = 0;
    let mut i = 0;
    while i + 14 <= out.len() {
        if out[i] == 13
            && out[i + 1..i + 14]
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        {
            out[i + 1..i + 14].fill(b'_');
            ids += 1;
            i += 14;
        } else {
            i += 1;
        }
    }
    assert!(ids > 10, "parameter ids found in the model record: {ids}");
    out
}
