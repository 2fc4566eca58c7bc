//! Shared plumbing of the antmmf-rs binaries: the common command line (AntMMF's flags), config
//! loading with overrides, and the one-time dispatch from `--backend` to a generic entry point.
//!
//! Binaries stay thin: everything they do is reachable through this crate's functions, so tests
//! can drive it.

pub mod backend;
pub mod cli;

pub use backend::{
    BackendVisitor, collective_compiled, compiled_backends, ensure_collective, with_backend,
    with_backend_checkpointing,
};
pub use cli::{ACTED_ON_KEYS, CommonArgs, LaunchArgs, load_config, warn_ignored_keys};

/// Lets a closed standard output (`antmmf-data check ... | head`) end the process the way Unix
/// command-line tools end, by SIGPIPE, instead of a panic in `println!` (Rust ignores SIGPIPE by
/// default). Called first thing by the reporting tools; not by `antmmf-train`, whose runs must
/// not die with a reader of their output.
pub fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// An error and its causes on one line, each cause shown once: library errors usually put their
/// cause in their own message already, so a cause whose text is already there is not repeated.
pub fn render_error(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_shown_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x.jsonl: {source}")]
        struct E {
            source: std::io::Error,
        }
        let err = anyhow::Error::new(E { source: io }).context("building the dataset");
        assert_eq!(
            render_error(&err),
            "building the dataset: cannot read x.jsonl: No such file"
        );
    }
}
