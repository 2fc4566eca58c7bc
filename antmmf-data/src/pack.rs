//! The logic of `antmmf-data pack --videos DIR --out X.lmdb`: store a folder of videos in an
//! LMDB database the way AntMMF's `prj/univl/scripts/lmdb_conversion.py` does (the unnamed
//! database maps each clip's file stem to the file's encoded bytes), so that a `videos` entry
//! ending in `.lmdb` reads them ([`crate::media::source::LmdbVideos`]) with no temporary file.
//!
//! Files are taken from the folder itself (not its sub-folders), by video extension, in name
//! order. Two files with the same stem (`a.mp4`, `a.webm`) are an error, since the key could
//! only hold one. Each file is probed before anything is written (the decoder's own open: the
//! container is demuxed, nothing decoded), so a database never holds a video the dataset could
//! not open. Writes are committed in batches of about 64 MiB (LMDB keeps a write transaction's
//! pages in memory).

use std::path::{Path, PathBuf};

use crate::media::source::lmdb_key;
use crate::media::{DecodeOptions, MediaError, VideoDecoder};

/// File extensions (lower case) packed by default.
pub const VIDEO_EXTENSIONS: [&str; 12] = [
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "flv", "mpg", "mpeg", "ts", "3gp", "wmv",
];

/// Bytes written per transaction before it is committed.
const BATCH_BYTES: u64 = 64 << 20;

/// Errors of packing; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The folder holds no video.
    #[error("{path}: no video file ({})", VIDEO_EXTENSIONS.join(", "))]
    NoVideos {
        /// The folder.
        path: PathBuf,
    },
    /// Two files have the same stem, hence the same key.
    #[error("{first} and {second} would both be stored under the key {key:?}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// The output already holds a database.
    #[error("{path} already holds an LMDB database (use --force to replace it)")]
    Exists {
        /// The output.
        path: PathBuf,
    },
    /// Files that do not open as videos (nothing was written).
    #[error("{} file(s) do not open as videos, nothing written:\n  {}", .0.len(), list(.0))]
    Unreadable(Vec<MediaError>),
    /// LMDB failed.
    #[error("{path}: {message}")]
    Lmdb {
        /// The database.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn list(errors: &[MediaError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// How to pack.
#[derive(Debug, Clone, PartialEq)]
pub struct PackOptions {
    /// Replace a database already at the output.
    pub overwrite: bool,
    /// Probe every file before writing (default); off, any bytes are stored.
    pub verify: bool,
    /// Time limit of probing one file.
    pub decode: DecodeOptions,
}

impl Default for PackOptions {
    fn default() -> Self {
        Self {
            overwrite: false,
            verify: true,
            decode: DecodeOptions::default(),
        }
    }
}

/// One stored video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedVideo {
    /// Its key (the file stem).
    pub key: String,
    /// The file read.
    pub path: PathBuf,
    /// Bytes stored.
    pub bytes: u64,
    /// Frames (when probed).
    pub frames: Option<usize>,
}

/// What was packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    /// The database folder.
    pub out: PathBuf,
    /// The videos, in key order.
    pub videos: Vec<PackedVideo>,
}

impl std::fmt::Display for PackSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u64 = self.videos.iter().map(|v| v.bytes).sum();
        writeln!(
            f,
            "packed {} video(s), {:.1} MiB, into {}",
            self.videos.len(),
            total as f64 / (1 << 20) as f64,
            self.out.display()
        )?;
        for v in &self.videos {
            write!(f, "  {:<24} {:>10} bytes", v.key, v.bytes)?;
            if let Some(n) = v.frames {
                write!(f, " {n:>6} frames")?;
            }
            writeln!(f, "  {}", v.path.display())?;
        }
        Ok(())
    }
}

/// The video files of a folder (not recursive), sorted by key, with their keys.
pub fn list_videos(dir: &Path) -> Result<Vec<(String, PathBuf)>, PackError> {
    let io = |source| PackError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_video = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !path.is_file() || !is_video {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        found.push((lmdb_key(name), path));
    }
    found.sort();
    for w in found.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(PackError::DuplicateKey {
                key: w[0].0.clone(),
                first: w[0].1.clone(),
                second: w[1].1.clone(),
            });
        }
    }
    if found.is_empty() {
        return Err(PackError::NoVideos {
            path: dir.to_path_buf(),
        });
    }
    Ok(found)
}

/// Packs the videos of `videos` into the LMDB folder `out` (created).
pub fn pack_videos(
    videos: &Path,
    out: &Path,
    options: &PackOptions,
) -> Result<PackSummary, PackError> {
    let files = list_videos(videos)?;
    let mut packed = Vec::with_capacity(files.len());
    let mut unreadable = Vec::new();
    for (key, path) in files {
        let bytes = std::fs::metadata(&path)
            .map_err(|source| PackError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        let frames = if options.verify {
            match VideoDecoder::open(&path, options.decode) {
                Ok(d) => Some(d.info().frame_count),
                Err(e) => {
                    unreadable.push(e);
                    continue;
                }
            }
        } else {
            None
        };
        packed.push(PackedVideo {
            key,
            path,
            bytes,
            frames,
        });
    }
    if !unreadable.is_empty() {
        return Err(PackError::Unreadable(unreadable));
    }

    let data_file = out.join("data.mdb");
    if data_file.exists() {
        if !options.overwrite {
            return Err(PackError::Exists {
                path: out.to_path_buf(),
            });
        }
        for f in ["data.mdb", "lock.mdb"] {
            let p = out.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|source| PackError::Io { path: p, source })?;
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|source| PackError::Io {
        path: out.to_path_buf(),
        source,
    })?;

    let lmdb = |e: heed::Error| PackError::Lmdb {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    // Room for every value on its own overflow pages, the B-tree, and slack; a multiple of 1 MiB
    // (hence of any page size).
    let total: u64 = packed.iter().map(|v| v.bytes).sum();
    let need = total + total / 8 + 8192 * (packed.len() as u64 + 64) + (16 << 20);
    let map_size = usize::try_from(need.div_ceil(1 << 20) << 20).unwrap_or(usize::MAX);
    // SAFETY: the environment is created by this process and nothing else writes the files
    // while it is open (LMDB's memory-map contract).
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .map_size(map_size)
            .max_dbs(1)
            .open(out)
    }
    .map_err(lmdb)?;
    let wtxn = env.write_txn().map_err(lmdb)?;
    let db: heed::Database<heed::types::Bytes, heed::types::Bytes> = env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            opener
                .create_database(wtxn, None)
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .map_err(lmdb)?
        .unwrap_commit();
    let mut wtxn = env.write_txn().map_err(lmdb)?;
    let mut batch = 0u64;
    for v in &packed {
        let bytes = std::fs::read(&v.path).map_err(|source| PackError::Io {
            path: v.path.clone(),
            source,
        })?;
        db.put(&mut wtxn, v.key.as_bytes(), &bytes).map_err(lmdb)?;
        batch += bytes.len() as u64;
        if batch >= BATCH_BYTES {
            wtxn.commit().map_err(lmdb)?;
            wtxn = env.write_txn().map_err(lmdb)?;
            batch = 0;
        }
    }
    wtxn.commit().map_err(lmdb)?;
    env.force_sync().map_err(lmdb)?;
    Ok(PackSummary {
        out: out.to_path_buf(),
        videos: packed,
    })
}
