//! Logging: one line per record to stderr and, once a run directory exists, to its log file.
//!
//! While a full-screen display owns the terminal (the training TUI), [`pause_stderr`] keeps
//! records off stderr: they still reach the log file, and warnings and errors are held and
//! written to stderr when the pause ends.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

struct Logger {
    level: LevelFilter,
    file: Mutex<Option<File>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level && metadata.target().starts_with("antmmf")
            || metadata.level() <= Level::Warn
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line = format!(
            "{} {:<5} {}: {}\n",
            format_utc(secs),
            record.level(),
            record.target(),
            record.args()
        );
        to_stderr(&line, record.level(), &mut std::io::stderr());
        if let Ok(mut guard) = self.file.lock()
            && let Some(f) = guard.as_mut()
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        if let Ok(mut guard) = self.file.lock()
            && let Some(f) = guard.as_mut()
        {
            let _ = f.flush();
        }
    }
}

/// Active [`StderrPause`]s.
static PAUSES: AtomicUsize = AtomicUsize::new(0);
/// Warnings and errors logged during a pause, and how many more were dropped.
static HELD: Mutex<(Vec<String>, usize)> = Mutex::new((Vec::new(), 0));
/// Held lines beyond this are only counted (they are in the log file).
const MAX_HELD: usize = 100;

/// Writes `line` to `stderr`, or during a pause holds it (warnings and errors) or drops it.
fn to_stderr(line: &str, level: Level, stderr: &mut dyn Write) {
    // Checked again under the lock: a pause ending meanwhile has flushed already.
    if PAUSES.load(Ordering::SeqCst) > 0
        && let Ok(mut held) = HELD.lock()
        && PAUSES.load(Ordering::SeqCst) > 0
    {
        if level <= Level::Warn {
            if held.0.len() < MAX_HELD {
                held.0.push(line.to_string());
            } else {
                held.1 += 1;
            }
        }
        return;
    }
    let _ = stderr.write_all(line.as_bytes());
}

/// Keeps log records off stderr while alive; see [`pause_stderr`].
#[must_use = "stderr logging resumes when the pause is dropped"]
pub struct StderrPause {
    active: bool,
}

/// Stops log records from reaching stderr until the returned guard drops (also when unwinding
/// from a panic): they still go to the run's log file, and warnings and errors are written to
/// stderr (the first 100, then a count) when the last pause ends.
pub fn pause_stderr() -> StderrPause {
    PAUSES.fetch_add(1, Ordering::SeqCst);
    StderrPause { active: true }
}

impl StderrPause {
    /// Ends this pause; the last one writes the held lines to `out`.
    fn end(&mut self, out: &mut dyn Write) {
        if !std::mem::take(&mut self.active) {
            return;
        }
        let Ok(mut held) = HELD.lock() else {
            PAUSES.fetch_sub(1, Ordering::SeqCst);
            return;
        };
        if PAUSES.fetch_sub(1, Ordering::SeqCst) == 1 {
            for line in held.0.drain(..) {
                let _ = out.write_all(line.as_bytes());
            }
            if held.1 > 0 {
                let _ = writeln!(
                    out,
                    "({} more warnings or errors are in the log file)",
                    held.1
                );
                held.1 = 0;
            }
        }
    }
}

impl Drop for StderrPause {
    fn drop(&mut self) {
        self.end(&mut std::io::stderr());
    }
}

/// Parses AntMMF's `logger_level` (`debug`, `info`, `warning`, `error`).
pub fn parse_level(name: &str) -> LevelFilter {
    match name.to_ascii_lowercase().as_str() {
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        "warn" | "warning" => LevelFilter::Warn,
        "error" | "critical" => LevelFilter::Error,
        _ => LevelFilter::Info,
    }
}

/// Installs the logger once (later calls only adjust nothing); safe to call from every binary.
pub fn init(level: LevelFilter) {
    let logger = LOGGER.get_or_init(|| Logger {
        level,
        file: Mutex::new(None),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level.max(LevelFilter::Warn));
    }
}

/// Also appends log lines to `path` (the run directory's log file).
pub fn log_to_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    if let Some(logger) = LOGGER.get()
        && let Ok(mut guard) = logger.file.lock()
    {
        *guard = Some(file);
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (civil-from-days, no time-zone database needed).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_keeps_lines_off_stderr_and_replays_warnings() {
        let mut pause = pause_stderr();
        let mut nested = pause_stderr();
        let mut during = Vec::new();
        to_stderr("info line\n", Level::Info, &mut during);
        to_stderr("warn line\n", Level::Warn, &mut during);
        to_stderr("error line\n", Level::Error, &mut during);
        assert!(during.is_empty(), "{}", String::from_utf8_lossy(&during));
        let mut after_inner = Vec::new();
        nested.end(&mut after_inner);
        assert!(after_inner.is_empty(), "an outer pause is still active");
        let mut after = Vec::new();
        pause.end(&mut after);
        let after = String::from_utf8(after).unwrap();
        // Other tests of this binary may log concurrently: look for ours only.
        assert!(after.contains("warn line\nerror line\n"), "{after}");
        assert!(!after.contains("info line"), "{after}");
        let mut resumed = Vec::new();
        to_stderr("info again\n", Level::Info, &mut resumed);
        assert_eq!(resumed, b"info again\n");
        drop(pause);
        drop(nested);
        assert_eq!(
            PAUSES.load(Ordering::SeqCst),
            0,
            "ended pauses do not count twice"
        );
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(parse_level("WARNING"), LevelFilter::Warn);
    }
}
