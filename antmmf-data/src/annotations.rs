//! AntMMF annotation files: one reader per jsonl format, returning typed items.
//!
//! Mirrors AntMMF's `AnnotatedDatabase._load_jsonl` (`antmmf/datasets/database/annotated.py`) and
//! the `process_annotation` of each UniVL dataset (`prj/base_vtp/roi_univl/univl/...`):
//! - [`pretrain`]: video/image-text pretraining (`PretrainAnnotated`);
//! - [`asr`]: ASR transcripts that give captions to uncaptioned pretraining videos
//!   (`ImageClipMixDatabase._get_text`);
//! - [`retrieval`]: text-video retrieval (`RetrivalAnnotated`);
//! - [`classification`]: classification and open QA (`ClassificationAnnotated` + `add_label`);
//! - [`mcqa`]: multiple-choice QA (`RetrivalAnnotated_MC_QA`).
//!
//! Reading rules shared by every format (AntMMF would raise a bare `JSONDecodeError` or
//! `KeyError`; here every error names `file:line` and the key):
//! - a list of files (`annotations.train: [a.jsonl, b.jsonl]`) is read in order and concatenated;
//! - each line is one JSON object; lines that are empty or whitespace only are skipped;
//!   `\r\n` endings and a UTF-8 byte-order mark at the start of the file are accepted;
//! - a last line without a newline is read like any other (an invalid one is an error);
//! - bytes that are not UTF-8 are an error naming the line;
//! - a file without any annotation line is an error ([`AnnotationError::Empty`]): an empty split
//!   is almost always a wrong path or a failed export, and AntMMF would fail later with an
//!   unrelated message.
//! - Keys the format does not use (`title`, `label` in pretraining files, ...) are ignored.

pub mod asr;
pub mod classification;
pub mod mcqa;
pub mod pretrain;
pub mod retrieval;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A line of an annotation file, shown as `path:line` (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRef {
    /// The annotation file.
    pub path: Arc<Path>,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for LineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// Errors of annotation reading; each names the file and, where there is one, the line and key.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    /// The file could not be read.
    #[error("cannot read annotation file {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it is shown once).
        error: std::io::Error,
    },
    /// No annotation file was given.
    #[error("no annotation file given")]
    NoFiles,
    /// The file holds no annotation line.
    #[error("annotation file {path} is empty: it holds no annotation line")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line is not valid UTF-8.
    #[error("{at}: not valid UTF-8")]
    NotUtf8 {
        /// The line.
        at: LineRef,
    },
    /// A line is not valid JSON.
    #[error("{at}:{column}: invalid JSON: {message}")]
    Json {
        /// The line.
        at: LineRef,
        /// 1-based column of the error within the line.
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// A key is missing or has a wrong value.
    #[error("{at}: {}{message}", key_prefix(.key))]
    Field {
        /// The line.
        at: LineRef,
        /// The key path within the line's object (empty for the object itself).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An ASR transcript file is unreadable or malformed.
    #[error("ASR transcript {path}: {message}")]
    Asr {
        /// The transcript file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("key `{key}`: ")
    }
}

impl AnnotationError {
    /// A wrong value of `key` at line `at`.
    pub fn field(at: &LineRef, key: &str, message: impl Into<String>) -> Self {
        Self::Field {
            at: at.clone(),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// One parsed annotation line and where it came from.
#[derive(Debug, Clone)]
pub struct Record<T> {
    /// Where the line is.
    pub at: LineRef,
    /// The parsed line.
    pub value: T,
}

/// Whether a clip is a video or a still image (`type`, default `video`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A video file or keyframe folder.
    #[default]
    Video,
    /// An image file (under `images`).
    Image,
}

/// Calls `f` on each non-blank line of one annotation file (UTF-8 checked), without copying the
/// lines; an empty file is an error.
pub fn for_each_line<F>(path: &Path, mut f: F) -> Result<(), AnnotationError>
where
    F: FnMut(LineRef, &str) -> Result<(), AnnotationError>,
{
    let bytes = std::fs::read(path).map_err(|error| AnnotationError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let shared: Arc<Path> = Arc::from(path);
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut any = false;
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let at = LineRef {
            path: shared.clone(),
            line: i + 1,
        };
        let text =
            std::str::from_utf8(raw).map_err(|_| AnnotationError::NotUtf8 { at: at.clone() })?;
        if text.trim().is_empty() {
            continue;
        }
        any = true;
        f(at, text)?;
    }
    if !any {
        return Err(AnnotationError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Reads the non-blank lines of one annotation file, checking UTF-8.
pub fn read_lines(path: &Path) -> Result<Vec<(LineRef, String)>, AnnotationError> {
    let mut out = Vec::new();
    for_each_line(path, |at, text| {
        out.push((at, text.to_owned()));
        Ok(())
    })?;
    Ok(out)
}

/// Parses one line into `T`, naming the key path of a wrong value.
pub fn parse_line<T: DeserializeOwned>(at: &LineRef, text: &str) -> Result<T, AnnotationError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let key = err.path().to_string();
        json_error(
            at,
            if key == "." { String::new() } else { key },
            err.into_inner(),
        )
    })?;
    de.end().map_err(|e| json_error(at, String::new(), e))?;
    Ok(value)
}

/// Turns a serde_json error of a line into a typed error (syntax vs. wrong value).
fn json_error(at: &LineRef, key: String, inner: serde_json::Error) -> AnnotationError {
    let column = inner.column();
    let mut message = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), column);
    if let Some(stripped) = message.strip_suffix(&suffix) {
        message = stripped.to_owned();
    }
    match inner.classify() {
        serde_json::error::Category::Data => AnnotationError::Field {
            at: at.clone(),
            key,
            message,
        },
        _ => AnnotationError::Json {
            at: at.clone(),
            column,
            message,
        },
    }
}

/// Reads and parses every line of every file, in order.
pub fn read_records<T: DeserializeOwned, P: AsRef<Path>>(
    paths: &[P],
) -> Result<Vec<Record<T>>, AnnotationError> {
    if paths.is_empty() {
        return Err(AnnotationError::NoFiles);
    }
    let mut out = Vec::new();
    for path in paths {
        for_each_line(path.as_ref(), |at, text| {
            let value = parse_line(&at, text)?;
            out.push(Record { at, value });
            Ok(())
        })?;
    }
    Ok(out)
}

/// Where a clip's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClipLocation {
    /// A video file to decode.
    VideoFile(PathBuf),
    /// A folder of keyframe images.
    KeyframeDir(PathBuf),
}

/// Resolves `clip_name` under `videos_dir` like AntMMF's `VideoClipsDatabase`: a folder of that
/// name (or of `<name>.mp4`) is a keyframe folder; a name without extension is
/// `<name>.mp4` (MSR-VTT style); otherwise the file itself. (LMDB sources are handled by the media
/// module.)
pub fn resolve_clip(videos_dir: &Path, clip_name: &str) -> ClipLocation {
    let direct = videos_dir.join(clip_name);
    if direct.is_dir() {
        return ClipLocation::KeyframeDir(direct);
    }
    if Path::new(clip_name).extension().is_none() {
        let with_ext = videos_dir.join(format!("{clip_name}.mp4"));
        if with_ext.is_dir() {
            return ClipLocation::KeyframeDir(with_ext);
        }
        return ClipLocation::VideoFile(with_ext);
    }
    ClipLocation::VideoFile(direct)
}

/// Deserializes a string or an integer as a string (`qid`, `retrieval_key`).
pub(crate) fn string_or_int<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(de)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a string or an integer, found {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_clip_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("frames9771")).expect("mkdir");
        assert_eq!(
            resolve_clip(dir.path(), "video9770"),
            ClipLocation::VideoFile(dir.path().join("video9770.mp4"))
        );
        assert_eq!(
            resolve_clip(dir.path(), "clip.avi"),
            ClipLocation::VideoFile(dir.path().join("clip.avi"))
        );
        assert_eq!(
            resolve_clip(dir.path(), "frames9771"),
            ClipLocation::KeyframeDir(dir.path().join("frames9771"))
        );
    }
}
