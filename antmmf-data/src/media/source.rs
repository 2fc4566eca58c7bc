//! What a clip is read from, as AntMMF's `MultiSourceLoader` and `VideoReader`
//! (`antmmf/datasets/database/video_database.py`, `antmmf/utils/video_utils.py`):
//!
//! - a video file, decoded with [`VideoDecoder`] (upstream: decord);
//! - a keyframe directory (`read_frames_from_img_dir`): images named `*_<num>.jpg`, ordered by
//!   the number after the last `_` (a `frame` prefix is ignored), sampled like a video of that
//!   many frames. Upstream reads them with OpenCV, i.e. as **BGR**; we return RGB like every
//!   other source (the intended behaviour);
//! - a single image: a 1-frame clip, repeated to `num_clips` frames;
//! - an LMDB database (`videos` path ending in `.lmdb`): the encoded video bytes stored under
//!   the clip's file stem, decoded from memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rand::Rng;

use super::MediaError;
use super::decode::{DecodeOptions, RgbFrame, VideoDecoder};
use super::sampling::{FrameSampler, TimeWindow};

/// Image file extensions read as single images or keyframes (lower case).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Where a clip's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// A video file (any container/codec FFmpeg reads).
    Video(PathBuf),
    /// A directory of keyframe images.
    KeyframeDir(PathBuf),
    /// One image, used as a 1-frame clip.
    Image(PathBuf),
    /// A video stored in an LMDB file under `key` (the clip's file stem).
    Lmdb {
        /// The `.lmdb` directory or file.
        db: PathBuf,
        /// The entry's key.
        key: String,
    },
}

impl MediaSource {
    /// Classifies a path: a directory is a keyframe directory, a `.jpg`/`.jpeg`/`.png` file an
    /// image, anything else a video.
    pub fn detect(path: &Path) -> Self {
        if path.is_dir() {
            Self::KeyframeDir(path.to_path_buf())
        } else if has_image_extension(path) {
            Self::Image(path.to_path_buf())
        } else {
            Self::Video(path.to_path_buf())
        }
    }

    /// Where `video_name` (an annotation's `video`/`clip_name`) lives under one `videos` root,
    /// as AntMMF's `MultiSourceLoader`: a root ending in `.lmdb` is a database keyed by the
    /// name's file stem; otherwise `root/name` is a keyframe directory, an image or a video.
    pub fn resolve(root: &Path, video_name: &str) -> Self {
        if root.extension().is_some_and(|e| e == "lmdb") {
            Self::Lmdb {
                db: root.to_path_buf(),
                key: lmdb_key(video_name),
            }
        } else {
            Self::detect(&root.join(video_name))
        }
    }

    /// The path errors and reports name.
    pub fn path(&self) -> PathBuf {
        match self {
            Self::Video(p) | Self::KeyframeDir(p) | Self::Image(p) => p.clone(),
            Self::Lmdb { db, key } => db.join(key),
        }
    }
}

/// Frames sampled from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The sampled frames, in sampling order (`num_clips` of them).
    pub frames: Vec<RgbFrame>,
    /// Frame index of each returned frame in the source.
    pub indices: Vec<usize>,
    /// Source frame rate (0 for keyframe directories and images: unknown).
    pub fps: f64,
    /// Frames in the source (exact for videos; files for keyframe directories; 1 for images).
    pub frame_count: usize,
    /// The file or directory read.
    pub source: PathBuf,
}

/// Loads `sampler.num_clips` frames from `source`; `window` (seconds) applies to videos only.
pub fn load_clip(
    source: &MediaSource,
    sampler: &FrameSampler,
    window: Option<TimeWindow>,
    opts: DecodeOptions,
    rng: &mut impl Rng,
) -> Result<Clip, MediaError> {
    match source {
        MediaSource::Video(path) => {
            let decoder = VideoDecoder::open(path, opts)?;
            clip_from_decoder(decoder, sampler, window, rng)
        }
        MediaSource::Lmdb { db, key } => {
            let bytes = read_lmdb(db, key)?;
            let decoder = VideoDecoder::open_bytes(bytes, &source.path(), opts)?;
            clip_from_decoder(decoder, sampler, window, rng)
        }
        MediaSource::KeyframeDir(dir) => load_keyframe_dir(dir, sampler, opts, rng),
        MediaSource::Image(path) => {
            let frame = read_image(path, opts)?;
            Ok(Clip {
                frames: vec![frame; sampler.num_clips],
                indices: vec![0; sampler.num_clips],
                fps: 0.0,
                frame_count: 1,
                source: path.clone(),
            })
        }
    }
}

fn clip_from_decoder(
    mut decoder: VideoDecoder,
    sampler: &FrameSampler,
    window: Option<TimeWindow>,
    rng: &mut impl Rng,
) -> Result<Clip, MediaError> {
    let info = decoder.info().clone();
    let indices = sampler.sample_window(info.frame_count, info.fps, window, rng);
    let frames = decoder.decode(&indices)?;
    Ok(Clip {
        frames,
        indices,
        fps: info.fps,
        frame_count: info.frame_count,
        source: decoder.path().to_path_buf(),
    })
}

/// Reads an image file as RGB (the `image` crate's default decoding limits apply). A JPEG
/// whose entropy-coded data is not closed by an end-of-image marker is reported as truncated
/// rather than decoded with its missing part filled in.
pub fn read_image(path: &Path, opts: DecodeOptions) -> Result<RgbFrame, MediaError> {
    let bytes = std::fs::read(path).map_err(|source| MediaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if is_truncated_jpeg(&bytes) {
        return Err(MediaError::TruncatedImage {
            path: path.to_path_buf(),
        });
    }
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| MediaError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .decode()
        .map_err(|source| MediaError::Image {
            path: path.to_path_buf(),
            source,
        })?;
    let mut rgb = img.to_rgb8();
    if let Some((w, h)) = opts.resize
        && (w, h) != rgb.dimensions()
    {
        rgb = image::imageops::resize(&rgb, w, h, image::imageops::FilterType::CatmullRom);
    }
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return Err(MediaError::BadFrameSize {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    Ok(RgbFrame {
        width,
        height,
        data: rgb.into_raw(),
    })
}

/// The frame number AntMMF reads from a keyframe file name: the part before the first `.`,
/// after the last `_`, without a `frame` prefix.
pub fn keyframe_number(file_name: &str) -> Option<u64> {
    let stem = file_name.split('.').next()?;
    let tail = stem.rsplit('_').next()?;
    tail.replace("frame", "").parse().ok()
}

/// The keyframe images of a directory, ordered as upstream orders them.
pub fn list_keyframes(dir: &Path) -> Result<Vec<PathBuf>, MediaError> {
    let io_err = |source| MediaError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut frames = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        if !path.is_file() || !has_image_extension(&path) {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let number = keyframe_number(name)
            .ok_or_else(|| MediaError::BadKeyframeName { path: path.clone() })?;
        frames.push((number, path));
    }
    if frames.is_empty() {
        return Err(MediaError::EmptyKeyframeDir {
            path: dir.to_path_buf(),
        });
    }
    frames.sort();
    Ok(frames.into_iter().map(|(_, p)| p).collect())
}

fn load_keyframe_dir(
    dir: &Path,
    sampler: &FrameSampler,
    opts: DecodeOptions,
    rng: &mut impl Rng,
) -> Result<Clip, MediaError> {
    let files = list_keyframes(dir)?;
    let indices = sampler.sample(files.len(), rng);
    let mut frames: Vec<RgbFrame> = Vec::with_capacity(indices.len());
    let mut cache: Vec<Option<usize>> = vec![None; files.len()];
    for &i in &indices {
        let frame = match cache[i] {
            Some(k) => frames[k].clone(),
            None => {
                let f = read_image(&files[i], opts)?;
                if let Some(first) = frames.first()
                    && (first.width, first.height) != (f.width, f.height)
                {
                    return Err(MediaError::FrameSizeMismatch {
                        path: files[i].clone(),
                        expected: (first.width, first.height),
                        got: (f.width, f.height),
                    });
                }
                cache[i] = Some(frames.len());
                f
            }
        };
        frames.push(frame);
    }
    Ok(Clip {
        frames,
        indices,
        fps: 0.0,
        frame_count: files.len(),
        source: dir.to_path_buf(),
    })
}

/// A JPEG (starts with SOI) with no EOI marker after its last start-of-scan marker.
fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(i) => !bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => true,
    }
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The LMDB key AntMMF's `MultiSourceLoader.read_bytes` uses for a video name: its file stem
/// (`videos/clip7.mp4` -> `clip7`).
pub fn lmdb_key(video_name: &str) -> String {
    let file = video_name.rsplit('/').next().unwrap_or(video_name);
    match file.rfind('.') {
        Some(i) if i > 0 => file[..i].to_string(),
        _ => file.to_string(),
    }
}

/// A read-only LMDB database of encoded videos (AntMMF's `prj/univl/scripts/lmdb_conversion.py`
/// layout: the unnamed database maps clip stems to file bytes), opened once and shared.
pub struct LmdbVideos {
    path: PathBuf,
    env: heed::Env<heed::WithoutTls>,
}

impl std::fmt::Debug for LmdbVideos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbVideos")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LmdbVideos {
    /// Opens `path` (an LMDB directory holding `data.mdb`, or the data file itself) read-only
    /// and without locking, as upstream does (`lmdb.open(readonly=True, lock=False)`).
    /// LMDB allows one environment per file and process, so every caller (dataset workers,
    /// [`load_clip`]) gets the same shared handle for a path.
    pub fn open(path: &Path) -> Result<Arc<Self>, MediaError> {
        static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<LmdbVideos>>>> = OnceLock::new();
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut open = OPEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(v) = open.get(&key) {
            return Ok(Arc::clone(v));
        }
        let videos = Arc::new(Self::open_uncached(path)?);
        open.insert(key, Arc::clone(&videos));
        Ok(videos)
    }

    fn open_uncached(path: &Path) -> Result<Self, MediaError> {
        let err = |e: heed::Error| MediaError::Lmdb {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut flags = heed::EnvFlags::READ_ONLY | heed::EnvFlags::NO_LOCK;
        if path.is_file() {
            flags |= heed::EnvFlags::NO_SUB_DIR;
        }
        let mut options = heed::EnvOpenOptions::new().read_txn_without_tls();
        // SAFETY: the environment is opened read-only; as upstream, the files must not be
        // modified while training reads them (LMDB's memory-map contract).
        let env = unsafe {
            options.flags(flags);
            options.open(path)
        }
        .map_err(err)?;
        let videos = Self {
            path: path.to_path_buf(),
            env,
        };
        // Fail now, not on the first clip, when the file is not a video database.
        videos.get("//probe")?;
        Ok(videos)
    }

    /// The encoded bytes stored under `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, MediaError> {
        let err = |e: heed::Error| MediaError::Lmdb {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let rtxn = self.env.read_txn().map_err(err)?;
        let db: Option<heed::Database<'_, heed::types::Bytes, heed::types::Bytes>> = self
            .env
            .open_databases_and_commit(rtxn, |opener, rtxn| {
                opener
                    .open_database(rtxn, None)
                    .map(heed::CommitOrAbort::<_, ()>::Commit)
            })
            .map_err(err)?
            .unwrap_commit();
        let db = db.ok_or_else(|| MediaError::Lmdb {
            path: self.path.clone(),
            message: "no unnamed database".into(),
        })?;
        let rtxn = self.env.read_txn().map_err(err)?;
        let bytes = db.get(&rtxn, key.as_bytes()).map_err(err)?;
        Ok(bytes.map(<[u8]>::to_vec))
    }

    /// Decodes the video stored under `key` from memory (no temporary file).
    pub fn decoder(&self, key: &str, opts: DecodeOptions) -> Result<VideoDecoder, MediaError> {
        let bytes = self.get(key)?.ok_or_else(|| MediaError::Lmdb {
            path: self.path.clone(),
            message: format!("no video under key {key:?}"),
        })?;
        VideoDecoder::open_bytes(bytes, &self.path.join(key), opts)
    }
}

/// Reads the encoded video stored under `key` in an LMDB environment.
fn read_lmdb(db: &Path, key: &str) -> Result<Vec<u8>, MediaError> {
    LmdbVideos::open(db)?
        .get(key)?
        .ok_or_else(|| MediaError::Lmdb {
            path: db.to_path_buf(),
            message: format!("no video under key {key:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_numbers_follow_antmmf() {
        assert_eq!(keyframe_number("video7_12.jpg"), Some(12));
        assert_eq!(keyframe_number("a_b_frame003.jpg"), Some(3));
        assert_eq!(keyframe_number("frame_10.tar.jpg"), Some(10));
        assert_eq!(keyframe_number("cover.jpg"), None);
        assert_eq!(lmdb_key("videos/video7.mp4"), "video7");
        assert_eq!(lmdb_key("a.b.mp4"), "a.b");
        assert_eq!(lmdb_key("noext"), "noext");
        assert_eq!(
            MediaSource::resolve(Path::new("data/msrvtt.lmdb"), "all/video7.mp4"),
            MediaSource::Lmdb {
                db: PathBuf::from("data/msrvtt.lmdb"),
                key: "video7".into()
            }
        );
        assert_eq!(
            MediaSource::resolve(Path::new("/nonexistent"), "video7.mp4"),
            MediaSource::Video(PathBuf::from("/nonexistent/video7.mp4"))
        );
    }
}
