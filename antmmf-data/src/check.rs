//! The logic of `antmmf-data check`: read every annotation line and open every media file of a
//! configured dataset, report counts and statistics, and list every bad line or file.
//!
//! Annotations are read through the same readers the dataset uses
//! ([`PretrainAnnotations::load`] and its siblings), so a line is bad here exactly when the
//! dataset would reject it. Those readers stop at the first error; when a file has one, each of
//! its lines is read again on its own (through the reader, from a one-line temporary file), so
//! that every bad line is listed with its `file:line` and the reader's message, and the good
//! lines still count in the statistics.
//!
//! Media are resolved as [`crate::dataset::VideoTextDataset`] resolves them (the `videos` /
//! `images` folders of the split, else `data_root_dir`; `.lmdb` entries; keyframe folders) and
//! opened cheaply: a video is probed and demuxed without decoding (exact frame count and
//! duration, the decoder's own open), an image's header is read, a keyframe folder listed.
//! Each distinct file is opened once, whatever the number of lines or splits naming it.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::annotations::classification::ClassificationAnnotations;
use crate::annotations::mcqa::McQaAnnotations;
use crate::annotations::pretrain::PretrainAnnotations;
use crate::annotations::retrieval::{RetrievalAnnotations, RetrievalMode};
use crate::annotations::{AnnotationError, ClipLocation, LineRef, MediaKind, resolve_clip};
use crate::dataset::TaskKind;
use crate::dataset_config::{DatasetAttributes, DatasetConfigError, Split};
use crate::media::source::{LmdbVideos, list_keyframes};
use crate::media::{DecodeOptions, MediaError, MediaSource, VideoDecoder};
use crate::text::CaptionProcessor;

/// Errors that stop a check before it can report (the configuration, not the data).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A split to check has no annotation entry, or a dataset key is wrong.
    #[error(transparent)]
    Config(#[from] DatasetConfigError),
    /// A temporary file for re-reading a bad annotation file could not be written.
    #[error("temporary file {path}: {source}")]
    TempFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Settings of a check that do not come from the dataset node.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Key path of the dataset node (starts configuration errors).
    pub prefix: String,
    /// Working directory for `data_root_dir` resolution; `None`: the process's.
    pub cwd: Option<PathBuf>,
    /// `model_attributes.univl.num_labels` (class count when the dataset has no `labels`).
    pub num_labels: Option<usize>,
    /// Time limit of opening one video.
    pub decode: DecodeOptions,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            prefix: "dataset_attributes".into(),
            cwd: None,
            num_labels: None,
            decode: DecodeOptions::default(),
        }
    }
}

/// One bad annotation line, annotation file or media file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// What is wrong, starting with the `file:line` or the file concerned.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Summary statistics of a list of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// How many values.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median (lower middle for an even count).
    pub median: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// Statistics of `values` (all zero when empty).
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            count: n,
            min: v[0],
            mean: v.iter().sum::<f64>() / n as f64,
            median: v[(n - 1) / 2],
            p95: rank(0.95),
            max: v[n - 1],
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return f.write_str("none");
        }
        let p = f.precision().unwrap_or(1);
        write!(
            f,
            "n={} min={:.p$} mean={:.p$} median={:.p$} p95={:.p$} max={:.p$}",
            self.count, self.min, self.mean, self.median, self.p95, self.max
        )
    }
}

/// One annotation file of a split.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Annotation lines read (non-blank).
    pub lines: usize,
    /// Lines rejected.
    pub bad_lines: usize,
}

/// What a split holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitReport {
    /// The split.
    pub split: Split,
    /// The dataset kind it was read as.
    pub kind: TaskKind,
    /// Its annotation files.
    pub files: Vec<FileReport>,
    /// Good annotation lines.
    pub records: usize,
    /// Dataset items built from them (`len()` of the split's dataset).
    pub items: usize,
    /// Distinct videos named.
    pub videos: usize,
    /// Distinct images named.
    pub images: usize,
    /// What the texts are (`captions`, `questions`, `options`).
    pub text_kind: &'static str,
    /// Text lengths in whitespace-separated words.
    pub words: Stats,
    /// Text lengths in WordPiece tokens of the configured tokenizer (no `[CLS]`/`[SEP]`), when
    /// the caption processor could be built.
    pub tokens: Option<Stats>,
    /// Room for text tokens (`max_seq_length` less the special tokens), when known.
    pub token_budget: Option<usize>,
    /// Texts longer than `token_budget` tokens (truncated by the caption processor).
    pub truncated: usize,
    /// Durations in seconds of the videos that opened (0-length ones excluded).
    pub durations: Stats,
    /// Frame counts of the videos and keyframe folders that opened.
    pub frames: Stats,
    /// Media of this split that could not be opened.
    pub bad_media: usize,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// Per split.
    pub splits: Vec<SplitReport>,
    /// Why the caption tokenizer is not used for statistics, if it is not.
    pub tokenizer_note: Option<String>,
    /// Every bad line or file, sorted, each once.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether nothing is bad.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.splits {
            writeln!(
                f,
                "split {} ({:?}): {} annotation lines in {} file(s) -> {} items; {} videos, {} images",
                s.split.as_str(),
                s.kind,
                s.records,
                s.files.len(),
                s.items,
                s.videos,
                s.images
            )?;
            for file in &s.files {
                writeln!(
                    f,
                    "  {}: {} lines, {} bad",
                    file.path.display(),
                    file.lines,
                    file.bad_lines
                )?;
            }
            writeln!(
                f,
                "  {} length in words (whitespace-separated): {}",
                s.text_kind, s.words
            )?;
            if let Some(tokens) = &s.tokens {
                write!(
                    f,
                    "  {} length in WordPiece tokens (without [CLS]/[SEP]): {}",
                    s.text_kind, tokens
                )?;
                if let Some(budget) = s.token_budget {
                    write!(
                        f,
                        "; {} longer than the {budget} that max_seq_length leaves (truncated)",
                        s.truncated
                    )?;
                }
                writeln!(f)?;
            }
            writeln!(f, "  video duration in seconds: {:.2}", s.durations)?;
            writeln!(f, "  frames per video: {:.0}", s.frames)?;
            writeln!(f, "  media that cannot be opened: {}", s.bad_media)?;
        }
        if let Some(note) = &self.tokenizer_note {
            writeln!(f, "note: token statistics skipped: {note}")?;
        }
        if self.problems.is_empty() {
            writeln!(f, "check: OK, no problem found")
        } else {
            writeln!(f, "problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
            writeln!(f, "check: {} problem(s)", self.problems.len())
        }
    }
}

/// Outcome of opening one media source.
#[derive(Debug, Clone)]
enum Opened {
    Video { frames: usize, duration_s: f64 },
    Keyframes { frames: usize },
    Image,
    Bad(String),
}

/// One annotation line's contribution: the clip, its kind and its texts.
struct Entry {
    clip_name: String,
    kind: MediaKind,
    texts: Vec<String>,
    /// `[start, end]` in seconds (pretraining lines).
    window: Option<(f64, f64)>,
    /// The annotation file.
    file: Arc<Path>,
}

/// A parsed annotation file.
struct Parsed {
    entries: Vec<Entry>,
    items: usize,
}

/// Checks the annotations and media of `splits` (each read as its [`TaskKind`]).
pub fn check_dataset(
    attrs: &DatasetAttributes,
    config_dir: &Path,
    splits: &[(Split, TaskKind)],
    options: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let cwd = match &options.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let root = attrs.data_root(&cwd, config_dir);
    let labels = attrs.label_space(options.num_labels);
    let mut problems: Vec<Problem> = Vec::new();

    let mut tokenizer_note = None;
    let caption = match &attrs.processors.caption_processor {
        None => {
            tokenizer_note = Some("processors.caption_processor is not set".to_string());
            None
        }
        Some(spec) => {
            let search: Vec<&Path> = vec![config_dir, root.as_path()];
            match CaptionProcessor::from_params(spec.params.clone(), &search) {
                Ok(c) => Some(c),
                Err(e) => {
                    tokenizer_note = Some(format!(
                        "{}.processors.caption_processor: {e}",
                        options.prefix
                    ));
                    None
                }
            }
        }
    };

    let mut opened: HashMap<PathBuf, Opened> = HashMap::new();
    let mut reports = Vec::new();
    for &(split, kind) in splits {
        let paths = attrs.annotation_paths(split, &cwd, config_dir, &options.prefix)?;
        let mut files = Vec::new();
        let mut entries = Vec::new();
        let mut items = 0;
        for path in &paths {
            let (parsed, lines, bad) = read_annotation_file(path, kind, &labels, &mut problems)?;
            files.push(FileReport {
                path: path.clone(),
                lines,
                bad_lines: bad,
            });
            if let Some(p) = parsed {
                items += p.items;
                entries.extend(p.entries);
            }
        }

        let dirs_or_root = |entry| {
            let d = attrs.split_dirs(entry, split, &cwd, config_dir);
            if d.is_empty() { vec![root.clone()] } else { d }
        };
        let video_dirs = dirs_or_root(attrs.videos.as_ref());
        let image_dirs = dirs_or_root(attrs.images.as_ref());

        let mut words = Vec::new();
        let mut tokens = Vec::new();
        for e in &entries {
            for t in &e.texts {
                words.push(t.split_whitespace().count() as f64);
                if let Some(c) = &caption {
                    tokens.push(c.tokenizer().tokenize(t).len() as f64);
                }
            }
        }
        let token_budget = caption.as_ref().map(CaptionProcessor::content_len);
        let truncated =
            token_budget.map_or(0, |b| tokens.iter().filter(|&&n| n > b as f64).count());

        // Distinct clips, in order of first appearance.
        let mut lines_of: HashMap<(MediaKind, &str), Vec<&Entry>> = HashMap::new();
        let mut ordered: Vec<(MediaKind, &str)> = Vec::new();
        for e in &entries {
            let key = (e.kind, e.clip_name.as_str());
            let of_clip = lines_of.entry(key).or_default();
            if of_clip.is_empty() {
                ordered.push(key);
            }
            of_clip.push(e);
        }
        let (mut videos, mut images, mut bad_media) = (0, 0, 0);
        let mut durations = Vec::new();
        let mut frame_counts = Vec::new();
        for (media_kind, clip_name) in ordered {
            match media_kind {
                MediaKind::Video => videos += 1,
                MediaKind::Image => images += 1,
            }
            let source = media_source(&video_dirs, &image_dirs, clip_name, media_kind);
            let key = source.path();
            let outcome = opened
                .entry(key)
                .or_insert_with(|| open_media(&source, options.decode))
                .clone();
            match outcome {
                Opened::Video { frames, duration_s } => {
                    frame_counts.push(frames as f64);
                    if duration_s > 0.0 {
                        durations.push(duration_s);
                        let of_clip = lines_of.get(&(media_kind, clip_name));
                        late_windows(
                            of_clip.map_or(&[][..], Vec::as_slice),
                            duration_s,
                            &mut problems,
                        );
                    }
                }
                Opened::Keyframes { frames } => frame_counts.push(frames as f64),
                Opened::Image => {}
                Opened::Bad(why) => {
                    bad_media += 1;
                    problems.push(Problem {
                        message: format!("{why} (clip `{clip_name}` of split {})", split.as_str()),
                    });
                }
            }
        }
        reports.push(SplitReport {
            split,
            kind,
            records: entries.len(),
            items,
            files,
            videos,
            images,
            text_kind: text_kind(kind),
            words: Stats::of(&words),
            tokens: caption.as_ref().map(|_| Stats::of(&tokens)),
            token_budget,
            truncated,
            durations: Stats::of(&durations),
            frames: Stats::of(&frame_counts),
            bad_media,
        });
    }
    problems.sort();
    problems.dedup();
    Ok(CheckReport {
        splits: reports,
        tokenizer_note,
        problems,
    })
}

/// Windows (of one clip's lines) starting at or after the end of its video: the sampler would clamp
/// every frame to the last one (AntMMF does the same, silently).
fn late_windows(of_clip: &[&Entry], duration_s: f64, problems: &mut Vec<Problem>) {
    for e in of_clip {
        if let Some((start, end)) = e.window
            && start >= duration_s
        {
            problems.push(Problem {
                message: format!(
                    "{}: clip `{}`: window [{start}, {end}] s starts at or after the end of the video ({duration_s:.2} s)",
                    e.file.display(),
                    e.clip_name
                ),
            });
        }
    }
}

fn text_kind(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Pretrain | TaskKind::RetrievalTrain | TaskKind::RetrievalEval => "captions",
        TaskKind::Classification => "questions",
        TaskKind::McQa => "options",
    }
}

/// The media source of a clip, as the dataset resolves it: the first folder where it exists,
/// else the first folder's candidate; an `.lmdb` folder answers for every video.
pub fn media_source(
    video_dirs: &[PathBuf],
    image_dirs: &[PathBuf],
    clip_name: &str,
    kind: MediaKind,
) -> MediaSource {
    match kind {
        MediaKind::Image => {
            for d in image_dirs {
                let p = d.join(clip_name);
                if p.exists() {
                    return MediaSource::detect(&p);
                }
            }
            let first = image_dirs.first().cloned().unwrap_or_default();
            MediaSource::Image(first.join(clip_name))
        }
        MediaKind::Video => {
            let mut fallback = None;
            for d in video_dirs {
                if d.extension().is_some_and(|e| e == "lmdb") {
                    return MediaSource::resolve(d, clip_name);
                }
                let src = match resolve_clip(d, clip_name) {
                    ClipLocation::KeyframeDir(p) => return MediaSource::KeyframeDir(p),
                    ClipLocation::VideoFile(p) => MediaSource::detect(&p),
                };
                if src.path().exists() {
                    return src;
                }
                fallback.get_or_insert(src);
            }
            fallback.unwrap_or_else(|| MediaSource::Video(PathBuf::from(clip_name)))
        }
    }
}

/// Opens a source cheaply: probe + demux for videos, header for images, listing for keyframes.
fn open_media(source: &MediaSource, decode: DecodeOptions) -> Opened {
    let bad = |e: MediaError| Opened::Bad(e.to_string());
    match source {
        MediaSource::Video(p) => {
            if !p.exists() {
                return Opened::Bad(format!("{}: no such file", p.display()));
            }
            match VideoDecoder::open(p, decode) {
                Ok(d) => Opened::Video {
                    frames: d.info().frame_count,
                    duration_s: d.info().duration_s,
                },
                Err(e) => bad(e),
            }
        }
        MediaSource::Lmdb { db, key } => {
            match LmdbVideos::open(db).and_then(|v| v.decoder(key, decode)) {
                Ok(d) => Opened::Video {
                    frames: d.info().frame_count,
                    duration_s: d.info().duration_s,
                },
                Err(e) => bad(e),
            }
        }
        MediaSource::KeyframeDir(d) => match list_keyframes(d) {
            Ok(files) => Opened::Keyframes {
                frames: files.len(),
            },
            Err(e) => bad(e),
        },
        MediaSource::Image(p) => {
            if !p.exists() {
                return Opened::Bad(format!("{}: no such file", p.display()));
            }
            let dims = image::ImageReader::open(p)
                .and_then(|r| r.with_guessed_format())
                .map_err(|source| MediaError::Io {
                    path: p.clone(),
                    source,
                })
                .and_then(|r| {
                    r.into_dimensions().map_err(|source| MediaError::Image {
                        path: p.clone(),
                        source,
                    })
                });
            match dims {
                Ok((w, h)) if w > 0 && h > 0 => Opened::Image,
                Ok((width, height)) => bad(MediaError::BadFrameSize {
                    path: p.clone(),
                    width,
                    height,
                }),
                Err(e) => bad(e),
            }
        }
    }
}

/// Parses one annotation file with the reader of `kind`.
fn parse_file(
    path: &Path,
    kind: TaskKind,
    labels: &crate::annotations::classification::LabelSpace,
) -> Result<Parsed, AnnotationError> {
    parse_file_as(path, path, kind, labels)
}

/// [`parse_file`] of `path`, with entries naming `name` as their file.
fn parse_file_as(
    path: &Path,
    name: &Path,
    kind: TaskKind,
    labels: &crate::annotations::classification::LabelSpace,
) -> Result<Parsed, AnnotationError> {
    let one = [path];
    let file: Arc<Path> = Arc::from(name);
    Ok(match kind {
        TaskKind::Pretrain => {
            let a = PretrainAnnotations::load(&one)?;
            let entries = a
                .groups()
                .iter()
                .flatten()
                .map(|i| Entry {
                    clip_name: i.clip_name.clone(),
                    kind: i.kind,
                    texts: i.caption.iter().cloned().collect(),
                    window: i.start.zip(i.end),
                    file: Arc::clone(&file),
                })
                .collect();
            Parsed {
                entries,
                items: a.len(),
            }
        }
        TaskKind::RetrievalTrain | TaskKind::RetrievalEval => {
            let mode = if kind == TaskKind::RetrievalTrain {
                RetrievalMode::Train
            } else {
                RetrievalMode::Eval
            };
            let a = RetrievalAnnotations::load(&one, mode)?;
            let entries = a
                .items()
                .iter()
                .map(|i| Entry {
                    clip_name: i.clip_name.clone(),
                    kind: i.kind,
                    texts: vec![i.caption.clone()],
                    window: None,
                    file: Arc::clone(&file),
                })
                .collect();
            Parsed {
                entries,
                items: a.len(),
            }
        }
        TaskKind::Classification => {
            let a = ClassificationAnnotations::load(&one, labels)?;
            let entries = a
                .items()
                .iter()
                .map(|i| Entry {
                    clip_name: i.clip_name.clone(),
                    kind: i.kind,
                    texts: i
                        .question
                        .iter()
                        .filter(|q| !q.trim().is_empty())
                        .cloned()
                        .collect(),
                    window: None,
                    file: Arc::clone(&file),
                })
                .collect();
            Parsed {
                entries,
                items: a.len(),
            }
        }
        TaskKind::McQa => {
            let a = McQaAnnotations::load(&one)?;
            let entries = a
                .items()
                .iter()
                .map(|i| Entry {
                    clip_name: i.clip_name.clone(),
                    kind: i.kind,
                    texts: i.options.clone(),
                    window: None,
                    file: Arc::clone(&file),
                })
                .collect();
            Parsed {
                entries,
                items: a.len(),
            }
        }
    })
}

/// A temporary file removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self(std::env::temp_dir().join(format!("antmmf-check-{}-{n}.jsonl", std::process::id())))
    }

    fn write(&self, bytes: &[u8]) -> Result<(), CheckError> {
        let err = |source| CheckError::TempFile {
            path: self.0.clone(),
            source,
        };
        let mut f = std::fs::File::create(&self.0).map_err(err)?;
        f.write_all(bytes).map_err(err)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: a leftover file in the temporary folder is harmless.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Moves an error found in a temporary copy back to the real file and line.
fn relocate(err: AnnotationError, path: &Arc<Path>, line: Option<usize>) -> AnnotationError {
    let fix = |at: LineRef| LineRef {
        path: Arc::clone(path),
        line: line.unwrap_or(at.line),
    };
    match err {
        AnnotationError::NotUtf8 { at } => AnnotationError::NotUtf8 { at: fix(at) },
        AnnotationError::Json {
            at,
            column,
            message,
        } => AnnotationError::Json {
            at: fix(at),
            column,
            message,
        },
        AnnotationError::Field { at, key, message } => AnnotationError::Field {
            at: fix(at),
            key,
            message,
        },
        AnnotationError::Io { error, .. } => AnnotationError::Io {
            path: path.to_path_buf(),
            error,
        },
        AnnotationError::Empty { .. } => AnnotationError::Empty {
            path: path.to_path_buf(),
        },
        other => other,
    }
}

/// Reads one annotation file: its parsed good lines, the number of non-blank lines and of bad
/// ones; every bad line goes to `problems`.
fn read_annotation_file(
    path: &Path,
    kind: TaskKind,
    labels: &crate::annotations::classification::LabelSpace,
    problems: &mut Vec<Problem>,
) -> Result<(Option<Parsed>, usize, usize), CheckError> {
    let mut report = |e: AnnotationError| {
        problems.push(Problem {
            message: e.to_string(),
        })
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(error) => {
            report(AnnotationError::Io {
                path: path.to_path_buf(),
                error,
            });
            return Ok((None, 0, 0));
        }
    };
    // The reader's line rules: optional BOM, `\n` separated, `\r\n` accepted, blank lines skipped.
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let lines: Vec<(usize, &[u8])> = body
        .split(|&b| b == b'\n')
        .map(|raw| raw.strip_suffix(b"\r").unwrap_or(raw))
        .enumerate()
        .filter(|(_, raw)| !raw.iter().all(u8::is_ascii_whitespace))
        .map(|(i, raw)| (i + 1, raw))
        .collect();
    let n_lines = lines.len();
    match parse_file(path, kind, labels) {
        Ok(p) => return Ok((Some(p), n_lines, 0)),
        Err(e @ (AnnotationError::Io { .. } | AnnotationError::Empty { .. })) => {
            report(e);
            return Ok((None, n_lines, 0));
        }
        Err(_) => {}
    }
    // Some line is bad: read each line on its own, keep the good ones (blank the bad ones, so
    // that line numbers stay), then read the good ones together for the statistics.
    let shared: Arc<Path> = Arc::from(path);
    let tmp = TempFile::new();
    let mut bad = 0;
    let mut good = vec![Vec::<u8>::new(); body.split(|&b| b == b'\n').count()];
    for (line, raw) in lines {
        if std::str::from_utf8(raw).is_err() {
            bad += 1;
            report(AnnotationError::NotUtf8 {
                at: LineRef {
                    path: Arc::clone(&shared),
                    line,
                },
            });
            continue;
        }
        let mut one = raw.to_vec();
        one.push(b'\n');
        tmp.write(&one)?;
        match parse_file(&tmp.0, kind, labels) {
            Ok(_) => good[line - 1] = raw.to_vec(),
            Err(e) => {
                bad += 1;
                report(relocate(e, &shared, Some(line)));
            }
        }
    }
    if bad == n_lines {
        return Ok((None, n_lines, bad));
    }
    tmp.write(&good.join(&b'\n'))?;
    match parse_file_as(&tmp.0, path, kind, labels) {
        Ok(p) => Ok((Some(p), n_lines, bad)),
        Err(e) => {
            // A rule across lines (none of AntMMF's formats has one today).
            report(relocate(e, &shared, None));
            Ok((None, n_lines, bad))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(
            (s.count, s.min, s.mean, s.median, s.p95, s.max),
            (4, 1.0, 2.5, 2.0, 4.0, 4.0)
        );
        assert_eq!(Stats::of(&[]).count, 0);
        assert_eq!(
            format!("{:.0}", Stats::of(&[7.0])),
            "n=1 min=7 mean=7 median=7 p95=7 max=7"
        );
    }
}
