//! How training progress reaches the user.
//!
//! - **In a terminal** (stdout is a terminal): burn-train's TUI, fed by the training loop with one
//!   event per iteration: a progress bar with an ETA over the planned iterations (`max_iterations`,
//!   or `max_epochs` times the batches per epoch), the current epoch's progress, the loss (`Loss`,
//!   plotted), its named parts (`Loss parts`), the learning rate (`Learning Rate`, plotted) and
//!   the latest validation results (`Validation`; while the loop validates, the TUI stands
//!   still). burn's status panel labels the iteration count `Epoch`; its `Items` are the batches
//!   of the current epoch. While the TUI owns the screen, log records go to the run's log file
//!   only; warnings and errors are written to stderr when it closes.
//! - **Elsewhere** (CI, `nohup`, pipes): nothing per batch (burn's own renderer for that case prints
//!   a debug line per batch; [`PlainRenderer`] prints nothing), so the loop's `progress:` log line
//!   every `log_interval` iterations is the only progress output.
//! - `ANTMMF_PROGRESS=plain|tui|auto` overrides the choice. `auto` (the default) picks the TUI when
//!   stdout is a terminal and `TERM` is not `dumb`; `tui` picks it whenever stdout is a terminal,
//!   and without one falls back to plain lines with a warning.
//!
//! Stopping a run shown in the TUI: `q`, then `s` stops it after the current iteration (the run
//! ends with [`TrainError::Interrupted`](crate::trainer::TrainError::Interrupted); its last
//! snapshot resumes it), `k` kills it at once (a panic). On Unix, Ctrl-C, SIGINT and SIGTERM
//! (`kill`) stop the run like `s`, and a second one restores the terminal and exits at once
//! (status 128 + signal). (The TUI puts the terminal in raw mode, where Ctrl-C is a key that
//! burn's TUI ignores; once it is in raw mode, Ctrl-C is made a signal again, Ctrl-Z and Ctrl-\
//! stay off.) A panic restores the terminal through burn's panic hook; an error closes the TUI
//! before it is returned. SIGKILL cannot be caught: `reset` repairs the terminal after one.
//!
//! Tests: the events through a recording renderer ([`ProgressDisplay::Custom`]), the plain output
//! through a child process with piped output. The TUI needs a terminal: a test gives it a
//! pseudo-terminal (Linux) and checks what is written there and the terminal settings left
//! behind, not what a screen would show.

use crate::trainer::LossReport;
use burn::train::logger::MetricLogger;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{
    Metric, MetricAttributes, MetricDefinition, MetricMetadata, MetricName, Numeric,
    NumericAttributes, NumericEntry, SerializedEntry,
};
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn::train::{Interrupter, LearnerSummary};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The environment variable choosing the progress display: `plain`, `tui` or `auto` (default).
pub const PROGRESS_ENV: &str = "ANTMMF_PROGRESS";

/// Makes a run's renderer from the run's interrupter (a renderer with a stop control, like burn's
/// TUI, stops training through it).
pub type RendererFactory = Box<dyn FnOnce(Interrupter) -> Box<dyn MetricsRenderer> + Send>;

/// Where training progress is shown.
pub enum ProgressDisplay {
    /// burn-train's terminal UI (progress bar with ETA, loss, loss parts, learning rate).
    Tui,
    /// Nothing per batch: the `progress:` log line every `log_interval` iterations.
    Plain,
    /// A caller's renderer receives burn-train's events (tests, embedding applications).
    Custom(RendererFactory),
}

impl std::fmt::Debug for ProgressDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tui => "Tui",
            Self::Plain => "Plain",
            Self::Custom(_) => "Custom",
        })
    }
}

impl ProgressDisplay {
    /// The display `ANTMMF_PROGRESS` asks for (`auto` when unset), for this process's stdout.
    pub fn from_env() -> Result<Self, String> {
        let setting = std::env::var(PROGRESS_ENV).ok();
        let terminal = std::io::stdout().is_terminal();
        let display = Self::resolve(
            setting.as_deref(),
            terminal,
            std::env::var("TERM").ok().as_deref(),
        )?;
        if !terminal
            && setting
                .as_deref()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("tui"))
        {
            log::warn!(
                "{PROGRESS_ENV}=tui, but stdout is not a terminal: progress is shown as log lines"
            );
        }
        Ok(display)
    }

    /// The display for a value of `ANTMMF_PROGRESS` (`None` when unset), whether stdout is a
    /// terminal, and the value of `TERM`.
    pub fn resolve(
        setting: Option<&str>,
        stdout_is_terminal: bool,
        term: Option<&str>,
    ) -> Result<Self, String> {
        let value = setting.map(str::trim);
        match value.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("auto") => Ok(if stdout_is_terminal && term != Some("dumb") {
                Self::Tui
            } else {
                Self::Plain
            }),
            Some("plain") => Ok(Self::Plain),
            Some("tui") => Ok(if stdout_is_terminal {
                Self::Tui
            } else {
                Self::Plain
            }),
            Some(_) => Err(format!(
                "{PROGRESS_ENV}=`{}`: expected `plain`, `tui` or `auto`",
                value.unwrap_or_default()
            )),
        }
    }
}

/// The loss values of one training step, as the progress metrics read them (a train step's
/// output provides them through `burn::train::metric::Adaptor<LossValues>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossValues {
    /// The total loss.
    pub total: f64,
    /// The named parts of the loss.
    pub parts: Vec<(String, f64)>,
}

impl LossValues {
    /// The values a step's output reports.
    pub fn of(report: &impl LossReport) -> Self {
        Self {
            total: report.total_loss(),
            parts: report.loss_parts(),
        }
    }
}

/// The total training loss: the step's value and the epoch's running mean. Named `Loss` like
/// burn's `LossMetric`, which reads a loss tensor where the loop has the synced value.
#[derive(Clone)]
pub struct TotalLossMetric {
    name: MetricName,
    state: NumericMetricState,
}

impl TotalLossMetric {
    /// A new metric named `Loss`.
    pub fn new() -> Self {
        Self {
            name: Arc::new("Loss".to_string()),
            state: NumericMetricState::new(),
        }
    }
}

impl Default for TotalLossMetric {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for TotalLossMetric {
    type Input = LossValues;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
    }

    fn update(&mut self, item: &LossValues, _metadata: &MetricMetadata) -> SerializedEntry {
        self.state
            .update(item.total, 1, FormatOptions::new(self.name()).precision(4))
    }

    fn clear(&mut self) {
        self.state.reset()
    }
}

impl Numeric for TotalLossMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}

/// The named loss parts of the step, as text (`masked_lm_loss 0.1234, l1_loss 0.5678`): their
/// names are known only once a step has run, after burn-train's metrics are registered.
#[derive(Clone)]
pub struct LossPartsMetric {
    name: MetricName,
}

impl LossPartsMetric {
    /// A new metric named `Loss parts`.
    pub fn new() -> Self {
        Self {
            name: Arc::new("Loss parts".to_string()),
        }
    }
}

impl Default for LossPartsMetric {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for LossPartsMetric {
    type Input = LossValues;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, item: &LossValues, _metadata: &MetricMetadata) -> SerializedEntry {
        let text = item
            .parts
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect::<Vec<_>>()
            .join(", ");
        SerializedEntry::new(text.clone(), text)
    }

    fn clear(&mut self) {}
}

/// The latest validation results, as text (`iteration 1000: val/accuracy 0.5312, ...`): the loop
/// validates every `snapshot_interval` iterations through its task hooks, not burn's events.
#[derive(Clone)]
pub struct LastValidationMetric {
    name: MetricName,
    latest: Arc<Mutex<String>>,
}

impl LastValidationMetric {
    /// A metric named `Validation` showing what the loop writes into `latest`.
    pub fn new(latest: Arc<Mutex<String>>) -> Self {
        Self {
            name: Arc::new("Validation".to_string()),
            latest,
        }
    }
}

impl Metric for LastValidationMetric {
    type Input = ();

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, _item: &(), _metadata: &MetricMetadata) -> SerializedEntry {
        let text = match self.latest.lock() {
            Ok(latest) if !latest.is_empty() => latest.clone(),
            _ => "none yet".to_string(),
        };
        SerializedEntry::new(text.clone(), text)
    }

    fn clear(&mut self) {}
}

/// A metric logger that keeps nothing: the loop writes `train_log.json`, TensorBoard events and
/// the log file itself, and burn-train's per-iteration metric files would only repeat them.
pub struct NoMetricFiles;

impl MetricLogger for NoMetricFiles {
    fn log(&mut self, _update: MetricsUpdate, _epoch: usize, _split: &Split) {}

    fn read_numeric(
        &mut self,
        name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Err(format!("metric `{name}` is not recorded"))
    }

    fn log_metric_definition(&mut self, _definition: MetricDefinition) {}

    fn log_epoch_summary(&mut self, _summary: EpochSummary) {}
}

/// Shows nothing: where burn's renderer for a non-terminal prints a debug line per batch, the
/// loop's `progress:` log line every `log_interval` iterations is the plain output.
pub struct PlainRenderer;

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, _state: MetricState) {}

    fn update_valid(&mut self, _state: MetricState) {}

    fn render_train(&mut self, _item: TrainingProgress, _indicators: Vec<ProgressType>) {}

    fn render_valid(&mut self, _item: TrainingProgress, _indicators: Vec<ProgressType>) {}

    fn on_train_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}

    fn render_test(&mut self, _item: EvaluationProgress, _indicators: Vec<ProgressType>) {}

    fn on_test_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, _definition: MetricDefinition) {}
}

/// What the loop shares with the progress display.
#[derive(Clone, Default)]
pub(crate) struct ProgressLink {
    /// The iteration the run resumed from, set before the first event.
    pub resumed_at: Arc<AtomicU64>,
    /// The stop signal received while the TUI runs (0: none).
    pub signal: Arc<AtomicI32>,
    /// Whether signal handlers are installed (then Ctrl-C may raise SIGINT in the TUI).
    pub handled: Arc<AtomicBool>,
    /// The latest validation results, for [`LastValidationMetric`].
    pub validation: Arc<Mutex<String>>,
}

impl ProgressLink {
    /// Why the run should stop: a signal received, or the interrupter (the TUI's stop control).
    pub fn stop_reason(&self, interrupter: &Interrupter) -> Option<String> {
        match self.signal.load(Ordering::SeqCst) {
            0 => interrupter.should_stop().then(|| {
                interrupter
                    .get_message()
                    .unwrap_or_else(|| "stopped by the progress display".into())
            }),
            sig => Some(format!("{} received", signal_name(sig))),
        }
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        2 => "SIGINT".into(),
        15 => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// burn's TUI, opened by the first event, when the loop has set the iteration it resumed from
/// (the ETA counts from there).
pub(crate) struct LazyTui {
    interrupter: Interrupter,
    resumed_at: Arc<AtomicU64>,
    handled: Arc<AtomicBool>,
    inner: Option<TuiMetricsRendererWrapper>,
}

impl LazyTui {
    /// A TUI to open at the first event.
    pub fn new(interrupter: Interrupter, link: &ProgressLink) -> Self {
        Self {
            interrupter,
            resumed_at: link.resumed_at.clone(),
            handled: link.handled.clone(),
            inner: None,
        }
    }

    fn tui(&mut self) -> &mut TuiMetricsRendererWrapper {
        self.inner.get_or_insert_with(|| {
            let resumed = self.resumed_at.load(Ordering::SeqCst) as usize;
            let tui = TuiMetricsRendererWrapper::new(
                self.interrupter.clone(),
                (resumed > 0).then_some(resumed),
            );
            #[cfg(unix)]
            if self.handled.load(Ordering::SeqCst) {
                unix::ctrl_c_as_sigint();
            }
            tui
        })
    }
}

impl MetricsRendererTraining for LazyTui {
    fn update_train(&mut self, state: MetricState) {
        self.tui().update_train(state)
    }

    fn update_valid(&mut self, state: MetricState) {
        self.tui().update_valid(state)
    }

    fn render_train(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        self.tui().render_train(item, indicators)
    }

    fn render_valid(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        self.tui().render_valid(item, indicators)
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        match self.inner.as_mut() {
            Some(tui) => tui.on_train_end(summary),
            None => Ok(()),
        }
    }
}

impl MetricsRendererEvaluation for LazyTui {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        self.tui().update_test(name, state)
    }

    fn render_test(&mut self, item: EvaluationProgress, indicators: Vec<ProgressType>) {
        self.tui().render_test(item, indicators)
    }

    fn on_test_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        match self.inner.as_mut() {
            Some(tui) => tui.on_test_end(summary),
            None => Ok(()),
        }
    }
}

impl MetricsRenderer for LazyTui {
    fn manual_close(&mut self) {
        if let Some(tui) = self.inner.as_mut() {
            tui.manual_close()
        }
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.tui().register_metric(definition)
    }
}

/// A boxed renderer as the `MetricsRenderer` burn-train's builder takes.
pub(crate) struct BoxedRenderer(pub Box<dyn MetricsRenderer>);

impl MetricsRendererTraining for BoxedRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.0.update_train(state)
    }

    fn update_valid(&mut self, state: MetricState) {
        self.0.update_valid(state)
    }

    fn render_train(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        self.0.render_train(item, indicators)
    }

    fn render_valid(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        self.0.render_valid(item, indicators)
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.0.on_train_end(summary)
    }
}

impl MetricsRendererEvaluation for BoxedRenderer {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        self.0.update_test(name, state)
    }

    fn render_test(&mut self, item: EvaluationProgress, indicators: Vec<ProgressType>) {
        self.0.render_test(item, indicators)
    }

    fn on_test_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.0.on_test_end(summary)
    }
}

impl MetricsRenderer for BoxedRenderer {
    fn manual_close(&mut self) {
        self.0.manual_close()
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.0.register_metric(definition)
    }
}

/// While alive (Unix): the first SIGINT or SIGTERM asks the loop to stop after the current
/// iteration; a second one restores the terminal as it was before the TUI and exits at once.
/// Dropping it puts back the signals' previous actions.
pub(crate) struct TerminalSignals {
    #[cfg(unix)]
    _handlers: unix::Handlers,
}

impl TerminalSignals {
    /// Installs the handlers, recording a received signal in `link`; `None` where they cannot be
    /// installed (or another run's are active): signals then keep their actions.
    pub fn install(link: &ProgressLink) -> Option<Self> {
        #[cfg(unix)]
        {
            let handlers = unix::Handlers::install(link.signal.clone())?;
            link.handled.store(true, Ordering::SeqCst);
            Some(Self {
                _handlers: handlers,
            })
        }
        #[cfg(not(unix))]
        {
            let _ = link;
            None
        }
    }
}

#[cfg(unix)]
mod unix {
    use std::io::IsTerminal;
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

    /// Where the handler records a signal (the active run's flag), or null.
    static TARGET: AtomicPtr<AtomicI32> = AtomicPtr::new(std::ptr::null_mut());
    /// The terminal settings from before the TUI, or null.
    static SAVED: AtomicPtr<libc::termios> = AtomicPtr::new(std::ptr::null_mut());
    /// The terminal's descriptor for `SAVED`.
    static TTY_FD: AtomicI32 = AtomicI32::new(-1);

    /// Only atomics and async-signal-safe calls (tcsetattr, write, _exit).
    extern "C" fn on_signal(sig: libc::c_int) {
        let target = TARGET.load(Ordering::SeqCst);
        if target.is_null() {
            return;
        }
        // SAFETY: TARGET points into an Arc that `Handlers` keeps alive until the previous
        // actions are back.
        let first = unsafe { &*target }
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if first {
            return;
        }
        // A second signal: the loop did not get to stop. Restore the terminal settings, leave
        // the alternate screen, show the cursor, exit.
        const RESTORE: &[u8] = b"\x1b[?1049l\x1b[?25h\n";
        let saved = SAVED.load(Ordering::SeqCst);
        // SAFETY: SAVED is null or a live termios owned by `Handlers`; the calls are
        // async-signal-safe.
        unsafe {
            if !saved.is_null() {
                libc::tcsetattr(TTY_FD.load(Ordering::SeqCst), libc::TCSANOW, saved);
            }
            libc::write(libc::STDOUT_FILENO, RESTORE.as_ptr().cast(), RESTORE.len());
            libc::_exit(128 + sig);
        }
    }

    /// Once the TUI has switched the terminal to raw mode (waiting up to 2 s for it), makes its
    /// interrupt key (Ctrl-C) raise SIGINT again, with the quit and suspend keys off (stopping
    /// the process would leave the terminal raw). crossterm restores the settings from before
    /// raw mode when the TUI closes, and so does a second signal.
    pub(super) fn ctrl_c_as_sigint() {
        let fd = TTY_FD.load(Ordering::SeqCst);
        if fd < 0 {
            return;
        }
        for _ in 0..200 {
            // SAFETY: an all-zero termios is a valid value for tcgetattr to fill.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: tcgetattr/tcsetattr on the terminal's descriptor, kept open by `Handlers`.
            unsafe {
                if libc::tcgetattr(fd, &mut t) != 0 {
                    return;
                }
                if t.c_lflag & libc::ICANON == 0 {
                    t.c_lflag |= libc::ISIG;
                    t.c_cc[libc::VQUIT] = libc::_POSIX_VDISABLE as libc::cc_t;
                    t.c_cc[libc::VSUSP] = libc::_POSIX_VDISABLE as libc::cc_t;
                    libc::tcsetattr(fd, libc::TCSANOW, &t);
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub(super) struct Handlers {
        received: Arc<AtomicI32>,
        previous: Vec<(libc::c_int, libc::sigaction)>,
        saved: *mut libc::termios,
        /// `/dev/tty` when stdin is not the terminal: `TTY_FD` stays open while it lives.
        _tty: Option<std::fs::File>,
    }

    impl Handlers {
        pub(super) fn install(received: Arc<AtomicI32>) -> Option<Self> {
            let target = Arc::as_ptr(&received).cast_mut();
            TARGET
                .compare_exchange(
                    std::ptr::null_mut(),
                    target,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .ok()?;
            received.store(0, Ordering::SeqCst);
            // The descriptor crossterm switches to raw mode: stdin if it is a terminal, else
            // /dev/tty. Without one there is nothing to restore, but a signal still stops.
            let tty = if std::io::stdin().is_terminal() {
                None
            } else {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/tty")
                    .ok()
            };
            let fd = tty.as_ref().map_or(libc::STDIN_FILENO, |f| f.as_raw_fd());
            // SAFETY: an all-zero termios is a valid value for tcgetattr to fill.
            let mut termios: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: tcgetattr on a descriptor we hold, writing into a local.
            let saved = if unsafe { libc::tcgetattr(fd, &mut termios) } == 0 {
                Box::into_raw(Box::new(termios))
            } else {
                std::ptr::null_mut()
            };
            TTY_FD.store(fd, Ordering::SeqCst);
            SAVED.store(saved, Ordering::SeqCst);
            let mut handlers = Self {
                received,
                previous: Vec::new(),
                saved,
                _tty: tty,
            };
            for sig in [libc::SIGINT, libc::SIGTERM] {
                // SAFETY: zeroed sigactions are valid; sigaction installs a handler that only
                // does async-signal-safe work, SA_RESTART keeps blocking calls from failing
                // with EINTR.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                    action.sa_flags = libc::SA_RESTART;
                    libc::sigemptyset(&mut action.sa_mask);
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, &action, &mut old) == 0 {
                        handlers.previous.push((sig, old));
                    }
                }
            }
            if handlers.previous.is_empty() {
                return None; // dropping restores the statics
            }
            Some(handlers)
        }
    }

    impl Drop for Handlers {
        fn drop(&mut self) {
            for (sig, old) in self.previous.drain(..) {
                // SAFETY: puts back the action sigaction reported.
                unsafe {
                    libc::sigaction(sig, &old, std::ptr::null_mut());
                }
            }
            SAVED.store(std::ptr::null_mut(), Ordering::SeqCst);
            TTY_FD.store(-1, Ordering::SeqCst);
            if !self.saved.is_null() {
                // SAFETY: from Box::into_raw above; the handler no longer reads it.
                drop(unsafe { Box::from_raw(self.saved) });
            }
            let _ = TARGET.compare_exchange(
                Arc::as_ptr(&self.received).cast_mut(),
                std::ptr::null_mut(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_setting_and_terminal_choose_the_display() {
        let d = |setting, terminal, term| ProgressDisplay::resolve(setting, terminal, term);
        assert!(matches!(
            d(None, true, Some("xterm")),
            Ok(ProgressDisplay::Tui)
        ));
        assert!(matches!(
            d(None, false, Some("xterm")),
            Ok(ProgressDisplay::Plain)
        ));
        assert!(matches!(
            d(None, true, Some("dumb")),
            Ok(ProgressDisplay::Plain)
        ));
        assert!(matches!(
            d(Some("auto"), true, None),
            Ok(ProgressDisplay::Tui)
        ));
        assert!(matches!(
            d(Some(""), false, None),
            Ok(ProgressDisplay::Plain)
        ));
        assert!(matches!(
            d(Some("plain"), true, None),
            Ok(ProgressDisplay::Plain)
        ));
        assert!(matches!(
            d(Some(" TUI "), true, Some("dumb")),
            Ok(ProgressDisplay::Tui)
        ));
        // No terminal to draw on: plain lines (from_env warns).
        assert!(matches!(
            d(Some("tui"), false, None),
            Ok(ProgressDisplay::Plain)
        ));
        let err = d(Some("Fancy "), true, None).unwrap_err();
        assert!(err.contains("ANTMMF_PROGRESS=`Fancy`"), "{err}");
        assert!(err.contains("`plain`, `tui` or `auto`"), "{err}");
    }

    #[test]
    fn loss_metrics_show_the_total_and_the_parts() {
        let meta = MetricMetadata {
            progress: burn::data::dataloader::Progress::new(1, 10),
            global_progress: burn::data::dataloader::Progress::new(1, 100),
            iteration: Some(1),
            lr: Some(0.01),
        };
        let step = |total: f64| LossValues {
            total,
            parts: vec![("mlm".into(), total * 0.25), ("l1".into(), total * 0.75)],
        };
        let mut total = TotalLossMetric::new();
        total.update(&step(2.0), &meta);
        let entry = total.update(&step(1.0), &meta);
        assert_eq!(total.value().current(), 1.0);
        assert_eq!(total.running_value().current(), 1.5);
        assert!(entry.formatted.contains("1.5000"), "{}", entry.formatted);
        let parts = LossPartsMetric::new().update(&step(2.0), &meta);
        assert_eq!(parts.formatted, "mlm 0.5000, l1 1.5000");
    }

    #[cfg(unix)]
    #[test]
    fn a_signal_during_the_tui_asks_the_loop_to_stop() {
        let link = ProgressLink::default();
        let interrupter = Interrupter::new();
        assert_eq!(link.stop_reason(&interrupter), None);
        let guard = TerminalSignals::install(&link).expect("handlers installed");
        // A second run cannot take the handlers over while these are active.
        assert!(TerminalSignals::install(&ProgressLink::default()).is_none());
        // The first signal is only recorded (a second would exit the test binary).
        // SAFETY: raising a signal whose handler is installed.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        assert_eq!(
            link.stop_reason(&interrupter).as_deref(),
            Some("SIGTERM received")
        );
        drop(guard);
        // The previous action is back: SIGTERM's default (terminate), not our handler.
        // SAFETY: reading the current action without changing it.
        let current = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGTERM, std::ptr::null(), &mut old);
            old.sa_sigaction
        };
        assert_eq!(current, libc::SIG_DFL);
    }

    #[test]
    fn the_interrupter_stops_the_loop_with_its_message() {
        let link = ProgressLink::default();
        let interrupter = Interrupter::new();
        interrupter.stop(Some("Stopping training from user input."));
        assert_eq!(
            link.stop_reason(&interrupter).as_deref(),
            Some("Stopping training from user input.")
        );
    }
}
