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
//!
//! `annotations_loader: auto_split` ([`LineShard`], [`read_records_sharded`]) reads one rank's
//! share of each file, as AntMMF's `AutoSplitAnnotated`
//! (`prj/cnvid_vtp/roi_univl/univl/pretrain_video_text/dataset.py`): a first pass counts the
//! annotation lines without keeping or parsing them, a second pass parses only the rank's
//! contiguous block of them, so memory and parsing scale with the share, not the file. Lines of
//! other ranks' blocks are never parsed (their errors are those ranks' to report). The blocks
//! differ from AntMMF's on purpose: AntMMF gives every rank `ceil(n / world_size)` lines and
//! pads the last rank's block by re-reading lines of the one before it (lines read twice,
//! equal lengths); here rank `r` gets lines `floor(n * r / w)..floor(n * (r + 1) / w)`, so every
//! line is read by exactly one rank and block sizes differ by at most one.

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
    /// The `auto_split` shard does not exist.
    #[error(
        "annotations_loader auto_split: rank {rank} is not below world size {world_size} (world size must be positive)"
    )]
    BadShard {
        /// The rank.
        rank: usize,
        /// The world size.
        world_size: usize,
    },
    /// An `auto_split` shard holds no annotation line (more ranks than lines).
    #[error(
        "annotation file {path}: annotations_loader auto_split leaves rank {rank} of {world_size} no line: the file has {lines} annotation lines; use fewer ranks or the normal loader"
    )]
    EmptyShard {
        /// The file.
        path: PathBuf,
        /// The rank.
        rank: usize,
        /// The world size.
        world_size: usize,
        /// Annotation lines in the file.
        lines: usize,
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

/// One rank's share of an annotation file (`annotations_loader: auto_split`): rank `rank` of
/// `world_size` takes the contiguous block [`LineShard::range`] of the file's annotation
/// (non-blank) lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineShard {
    rank: usize,
    world_size: usize,
}

impl Default for LineShard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl LineShard {
    /// The whole file (rank 0 of 1).
    pub const WHOLE: Self = Self {
        rank: 0,
        world_size: 1,
    };

    /// Rank `rank` of `world_size`.
    pub fn new(rank: usize, world_size: usize) -> Result<Self, AnnotationError> {
        if world_size == 0 || rank >= world_size {
            return Err(AnnotationError::BadShard { rank, world_size });
        }
        Ok(Self { rank, world_size })
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Indices (0-based, among the annotation lines) of this rank's lines when a file has
    /// `lines` of them: `floor(lines * rank / world_size)..floor(lines * (rank + 1) /
    /// world_size)`. Over all ranks the blocks tile `0..lines` in order.
    pub fn range(&self, lines: usize) -> std::ops::Range<usize> {
        let at = |r: usize| (lines as u128 * r as u128 / self.world_size as u128) as usize;
        at(self.rank)..at(self.rank + 1)
    }
}

/// Streams the lines of `path` (BOM and `\r` removed) to `f(line_number, bytes)` until `f`
/// returns `false`.
fn stream_lines<F>(path: &Path, mut f: F) -> Result<(), AnnotationError>
where
    F: FnMut(usize, &[u8]) -> Result<bool, AnnotationError>,
{
    use std::io::BufRead;
    let io = |error| AnnotationError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            return Ok(());
        }
        number += 1;
        let mut raw = buf.strip_suffix(b"\n").unwrap_or(&buf);
        raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if number == 1 {
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        if !f(number, raw)? {
            return Ok(());
        }
    }
}

/// Whether a raw line is an annotation line: not empty or whitespace only. Bytes that are not
/// UTF-8 count as an annotation line (the rank reading it reports them).
fn is_annotation_line(raw: &[u8]) -> bool {
    std::str::from_utf8(raw).map_or(true, |t| !t.trim().is_empty())
}

/// Counts the annotation (non-blank) lines of a file without parsing or keeping them.
pub fn count_annotation_lines(path: &Path) -> Result<usize, AnnotationError> {
    let mut n = 0;
    stream_lines(path, |_, raw| {
        n += usize::from(is_annotation_line(raw));
        Ok(true)
    })?;
    Ok(n)
}

/// [`for_each_line`] over `shard`'s block of the file's annotation lines only (line numbers
/// stay those of the file). A file without annotation lines, or a shard left without any, is an
/// error.
pub fn for_each_line_in_shard<F>(
    path: &Path,
    shard: LineShard,
    mut f: F,
) -> Result<(), AnnotationError>
where
    F: FnMut(LineRef, &str) -> Result<(), AnnotationError>,
{
    let lines = count_annotation_lines(path)?;
    if lines == 0 {
        return Err(AnnotationError::Empty {
            path: path.to_path_buf(),
        });
    }
    let range = shard.range(lines);
    if range.is_empty() {
        return Err(AnnotationError::EmptyShard {
            path: path.to_path_buf(),
            rank: shard.rank,
            world_size: shard.world_size,
            lines,
        });
    }
    let shared: Arc<Path> = Arc::from(path);
    let mut index = 0;
    stream_lines(path, |number, raw| {
        if !is_annotation_line(raw) {
            return Ok(true);
        }
        let i = index;
        index += 1;
        if i < range.start {
            return Ok(true);
        }
        let at = LineRef {
            path: shared.clone(),
            line: number,
        };
        let text =
            std::str::from_utf8(raw).map_err(|_| AnnotationError::NotUtf8 { at: at.clone() })?;
        f(at, text)?;
        Ok(index < range.end)
    })
}

/// [`read_records`] of `shard`'s block of each file (every file is split on its own, as AntMMF
/// builds one `AutoSplitAnnotated` per file).
pub fn read_records_sharded<T: DeserializeOwned, P: AsRef<Path>>(
    paths: &[P],
    shard: LineShard,
) -> Result<Vec<Record<T>>, AnnotationError> {
    if paths.is_empty() {
        return Err(AnnotationError::NoFiles);
    }
    let mut out = Vec::new();
    for path in paths {
        for_each_line_in_shard(path.as_ref(), shard, |at, text| {
            let value = parse_line(&at, text)?;
            out.push(Record { at, value });
            Ok(())
        })?;
    }
    Ok(out)
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

    /// A jsonl file of `n` annotation lines `{"i": k}` with blank lines, `\r\n` endings, a BOM
    /// and no final newline mixed in; returns it with the file line number of each annotation.
    fn numbered_file(dir: &Path, n: usize) -> (PathBuf, Vec<usize>) {
        let mut text = String::from("\u{feff}");
        let mut numbers = Vec::new();
        let mut line = 1;
        for k in 0..n {
            if k % 3 == 1 {
                text.push_str("   \n");
                line += 1;
            }
            text.push_str(&format!("{{\"i\": {k}}}"));
            numbers.push(line);
            line += 1;
            if k + 1 < n {
                text.push_str(if k % 2 == 0 { "\r\n" } else { "\n" });
            }
        }
        let path = dir.join(format!("n{n}.jsonl"));
        std::fs::write(&path, text).expect("write");
        (path, numbers)
    }

    #[derive(serde::Deserialize)]
    struct Numbered {
        i: usize,
    }

    #[test]
    fn auto_split_shards_cover_every_line_exactly_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in [1, 2, 3, 4, 5, 7, 10, 11] {
            let (path, numbers) = numbered_file(dir.path(), n);
            assert_eq!(count_annotation_lines(&path).expect("count"), n);
            for world in 1..=4 {
                let mut seen = Vec::new();
                let mut sizes = Vec::new();
                for rank in 0..world {
                    let shard = LineShard::new(rank, world).expect("shard");
                    match read_records_sharded::<Numbered, _>(&[&path], shard) {
                        Ok(records) => {
                            sizes.push(records.len());
                            for r in records {
                                // Line numbers are the file's, BOM, blanks and `\r\n` included.
                                assert_eq!(r.at.line, numbers[r.value.i], "n {n} w {world}");
                                seen.push(r.value.i);
                            }
                        }
                        Err(AnnotationError::EmptyShard { lines, .. }) => {
                            assert!(n < world, "n {n} w {world} rank {rank}");
                            assert_eq!(lines, n);
                        }
                        Err(e) => panic!("n {n} w {world} rank {rank}: {e}"),
                    }
                }
                // In order, each line once, blocks of sizes differing by at most one.
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n {n} w {world}");
                if n >= world {
                    assert_eq!(sizes.len(), world);
                    let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
                    assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{sizes:?}");
                }
            }
        }
        // The blocks of 10 lines over 4 ranks, by hand: 0..2, 2..5, 5..7, 7..10.
        let blocks: Vec<_> = (0..4)
            .map(|r| LineShard::new(r, 4).expect("shard").range(10))
            .collect();
        assert_eq!(blocks, [0..2, 2..5, 5..7, 7..10]);
        assert_eq!(LineShard::WHOLE.range(10), 0..10);
    }

    #[test]
    fn auto_split_errors_name_the_file_line_and_shard() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.jsonl");
        // Annotation lines 0..4 on file lines 1, 2, 4, 5; line 4 is broken JSON.
        std::fs::write(&path, "{\"i\": 0}\n{\"i\": 1}\n\n{\"i\": 2\n{\"i\": 3}\n").expect("write");
        let shard = |r| LineShard::new(r, 2).expect("shard");
        // Rank 0 reads lines 0..2 and never sees the broken line.
        let ok = read_records_sharded::<Numbered, _>(&[&path], shard(0)).expect("rank 0");
        assert_eq!(ok.len(), 2);
        let err = read_records_sharded::<Numbered, _>(&[&path], shard(1))
            .err()
            .expect("rank 1 parses the broken line");
        assert!(matches!(err, AnnotationError::Json { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{}:4:", path.display())),
            "{err}"
        );

        let small = dir.path().join("small.jsonl");
        std::fs::write(&small, "{\"i\": 0}\n\n{\"i\": 1}\n").expect("write");
        let err =
            read_records_sharded::<Numbered, _>(&[&small], LineShard::new(0, 3).expect("shard"))
                .err()
                .expect("rank 0 of 3 has no line of 2");
        let msg = err.to_string();
        assert!(
            msg.contains(&small.display().to_string())
                && msg.contains("rank 0 of 3 no line")
                && msg.contains("has 2 annotation lines"),
            "{msg}"
        );

        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "\n  \n").expect("write");
        let err = read_records_sharded::<Numbered, _>(&[&empty], LineShard::WHOLE)
            .err()
            .expect("empty file");
        assert!(matches!(err, AnnotationError::Empty { .. }), "{err}");

        let missing = dir.path().join("missing.jsonl");
        let err = read_records_sharded::<Numbered, _>(&[&missing], LineShard::WHOLE)
            .err()
            .expect("missing file");
        assert!(err.to_string().contains("missing.jsonl"), "{err}");

        let utf = dir.path().join("latin1.jsonl");
        std::fs::write(&utf, b"{\"i\": 0}\n{\"i\": \xe9}\n").expect("write");
        let err =
            read_records_sharded::<Numbered, _>(&[&utf], LineShard::new(1, 2).expect("shard"))
                .err()
                .expect("not UTF-8");
        assert_eq!(
            err.to_string(),
            format!("{}:2: not valid UTF-8", utf.display())
        );

        for (rank, world) in [(0, 0), (2, 2), (5, 4)] {
            let err = LineShard::new(rank, world).expect_err("no such shard");
            assert!(
                err.to_string()
                    .contains(&format!("rank {rank} is not below world size {world}")),
                "{err}"
            );
        }
    }

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
