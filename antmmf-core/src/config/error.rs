//! Configuration errors: each names the file, the include chain or the key path involved.

use std::path::PathBuf;

/// Everything that can go wrong while loading, overriding or reading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file could not be read.
    #[error("cannot read config file {path}: {source}{}", chain_suffix(.chain))]
    Read {
        /// The file.
        path: PathBuf,
        /// The include chain that led to it (empty for the top-level file).
        chain: Vec<PathBuf>,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An included file does not exist.
    #[error("missing include {path}{}", chain_suffix(.chain))]
    MissingInclude {
        /// The include as resolved.
        path: PathBuf,
        /// The chain of files that included it, outermost first.
        chain: Vec<PathBuf>,
    },
    /// A file includes itself, directly or through others.
    #[error("include cycle: {}", render_chain(.chain))]
    IncludeCycle {
        /// The cycle, starting and ending with the same file.
        chain: Vec<PathBuf>,
    },
    /// The `includes` entry is not a list of paths.
    #[error("{path}: `includes` must be a list of file paths, found {found}")]
    BadIncludes {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        found: String,
    },
    /// A file is not valid YAML (tabs for indentation, unbalanced brackets, ...).
    #[error("invalid YAML in {path}{}: {message}", location_suffix(*.line, *.column))]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A config file's top level is not a mapping.
    #[error("{path}: the top level of a config file must be a mapping of keys, found {found}")]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        found: String,
    },
    /// A key that the defaults do not declare.
    #[error("{file}: unknown config key `{key}`{}", suggestion_suffix(.suggestions))]
    UnknownKey {
        /// The file that sets it.
        file: PathBuf,
        /// The full key path.
        key: String,
        /// The closest declared keys.
        suggestions: Vec<String>,
    },
    /// A command-line override of a key that does not exist.
    #[error("override of unknown config key `{key}`{}", suggestion_suffix(.suggestions))]
    UnknownOverrideKey {
        /// The key as given.
        key: String,
        /// The closest existing keys.
        suggestions: Vec<String>,
    },
    /// A malformed override key (`a..b`, `a[x]`, ...).
    #[error("invalid override key `{key}`: {reason}")]
    BadOverrideKey {
        /// The key as given.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Overrides come in `key value` pairs.
    #[error(
        "odd number of override tokens ({count}): overrides are `key value` pairs; `{last}` has no value"
    )]
    OddOverrides {
        /// How many tokens were given.
        count: usize,
        /// The last token.
        last: String,
    },
    /// A value of the wrong type or out of range.
    #[error("invalid value for `{key}`: {value}: {message}")]
    InvalidValue {
        /// The full key path.
        key: String,
        /// The value, rendered.
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// The defaults document itself is malformed.
    #[error("invalid defaults: {0}")]
    Defaults(String),
    /// The merged config could not be rendered as YAML.
    #[error("cannot render config: {0}")]
    Serialize(String),
}

fn render_chain(chain: &[PathBuf]) -> String {
    chain
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn chain_suffix(chain: &[PathBuf]) -> String {
    if chain.is_empty() {
        String::new()
    } else {
        format!(" (included from {})", render_chain(chain))
    }
}

fn location_suffix(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn suggestion_suffix(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            suggestions
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    }
}
