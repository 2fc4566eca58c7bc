//! Crash-safe file writing: write to a temporary file in the same folder, flush, fsync, rename.
//! A crash at any moment leaves either the old file or the new one, never a torn file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically (temporary file + fsync + rename + folder fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        // Kill tests stop the program here (`ANTMMF_TEST_PAUSE_AT=write:model_4.ckpt`): the
        // temporary file is complete, the rename not done.
        if std::env::var_os("ANTMMF_TEST_PAUSE_AT").is_some() {
            crate::testing_pause(&format!("write:{}", name.to_string_lossy()));
        }
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes temporary files that [`write_atomic`] left in `dir` when its process was killed
/// mid-write (`.<name>.tmp-<pid>` of a process that no longer runs). Returns what was removed.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp-"))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/metrics.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("metrics.json")]);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // pid 4194304 is above Linux's pid_max, so no process has it.
        let stale = dir.path().join(".model_4.ckpt.tmp-4194304");
        let live = dir
            .path()
            .join(format!(".model_6.ckpt.tmp-{}", std::process::id()));
        let other = dir.path().join("model_2.ckpt");
        for p in [&stale, &live, &other] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()), vec![stale.clone()]);
        assert!(!stale.exists() && live.exists() && other.exists());
    }
}
