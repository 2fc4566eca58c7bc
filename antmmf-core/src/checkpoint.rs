//! The checkpoint container: one file per snapshot holding named binary sections (model,
//! optimizer, scheduler records, ...) and a JSON header (training state), each section with its
//! length and SHA-256, written atomically.
//!
//! Layout: the 8-byte magic `ANTMMFCK`, a little-endian u32 format version, a little-endian u64
//! header length, the UTF-8 JSON header, then the sections back to back in header order. A file
//! cut short, bit-flipped or of another format is detected on reading and reported with the path
//! and the section, never loaded half-way.

use crate::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"ANTMMFCK";
const VERSION: u32 = 1;

/// A section's entry in the header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SectionInfo {
    /// The section name (`model`, `optimizer`, `scheduler`, ...).
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    sections: Vec<SectionInfo>,
    state: serde_json::Value,
}

/// A checkpoint in memory: a JSON state plus named sections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    /// Training state (iteration, epoch, best metric, ...).
    pub state: serde_json::Value,
    /// Named binary sections, in order.
    pub sections: Vec<(String, Vec<u8>)>,
}

/// Reading or writing a checkpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// I/O error on the file.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a checkpoint of this format, cut short or damaged.
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A section the caller needs is absent.
    #[error("checkpoint {path} has no `{section}` section")]
    MissingSection {
        /// The file.
        path: PathBuf,
        /// The section name.
        section: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Checkpoint {
    /// An empty checkpoint with a state.
    pub fn new(state: serde_json::Value) -> Self {
        Self {
            state,
            sections: Vec::new(),
        }
    }

    /// Adds a section.
    pub fn with_section(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.sections.push((name.to_string(), bytes));
        self
    }

    /// The bytes of a section.
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }

    /// Serializes to the container format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            sections: self
                .sections
                .iter()
                .map(|(name, bytes)| SectionInfo {
                    name: name.clone(),
                    len: bytes.len() as u64,
                    sha256: hex(&Sha256::digest(bytes)),
                })
                .collect(),
            state: self.state.clone(),
        };
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let total: usize = self.sections.iter().map(|(_, b)| b.len()).sum();
        let mut out = Vec::with_capacity(20 + header.len() + total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for (_, bytes) in &self.sections {
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Parses the container format, verifying lengths and checksums (`path` names the source).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(corrupt(
                "not an antmmf-rs checkpoint (bad magic or too short)".into(),
            ));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != VERSION {
            return Err(corrupt(format!(
                "format version {version}, this build reads {VERSION}"
            )));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[12..20]);
        let header_len = u64::from_le_bytes(len8);
        let header_end = 20u64
            .checked_add(header_len)
            .filter(|end| *end <= bytes.len() as u64)
            .ok_or_else(|| corrupt("header runs past the end of the file (truncated)".into()))?
            as usize;
        let header: Header = serde_json::from_slice(&bytes[20..header_end])
            .map_err(|e| corrupt(format!("unreadable header: {e}")))?;
        let mut offset = header_end as u64;
        let mut sections = Vec::with_capacity(header.sections.len());
        for info in &header.sections {
            let end = offset
                .checked_add(info.len)
                .filter(|end| *end <= bytes.len() as u64)
                .ok_or_else(|| {
                    corrupt(format!(
                        "section `{}` runs past the end of the file (truncated)",
                        info.name
                    ))
                })?;
            let data = &bytes[offset as usize..end as usize];
            if hex(&Sha256::digest(data)) != info.sha256 {
                return Err(corrupt(format!(
                    "section `{}` fails its SHA-256 check",
                    info.name
                )));
            }
            sections.push((info.name.clone(), data.to_vec()));
            offset = end;
        }
        if offset != bytes.len() as u64 {
            return Err(corrupt(format!(
                "{} unexpected trailing bytes",
                bytes.len() as u64 - offset
            )));
        }
        Ok(Self {
            state: header.state,
            sections,
        })
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        write_atomic(path, &self.to_bytes()).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and verifies a checkpoint file.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// The bytes of a section, or an error naming the file and section.
    pub fn require(&self, name: &str, path: &Path) -> Result<&[u8], CheckpointError> {
        self.section(name)
            .ok_or_else(|| CheckpointError::MissingSection {
                path: path.to_path_buf(),
                section: name.to_string(),
            })
    }
}

/// Loads the newest checkpoint among `candidates` (sorted oldest first) that verifies, logging
/// each damaged one it skips. Returns the path and the checkpoint, or every error met.
pub fn load_newest_good(
    candidates: &[PathBuf],
) -> Result<(PathBuf, Checkpoint), Vec<CheckpointError>> {
    let mut errors = Vec::new();
    for path in candidates.iter().rev() {
        match Checkpoint::load(path) {
            Ok(ckpt) => {
                if !errors.is_empty() {
                    log::warn!(
                        "falling back to checkpoint {} (newer ones are damaged)",
                        path.display()
                    );
                }
                return Ok((path.clone(), ckpt));
            }
            Err(e) => {
                log::warn!("skipping damaged checkpoint: {e}");
                errors.push(e);
            }
        }
    }
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint::new(serde_json::json!({"iteration": 40, "epoch": 2}))
            .with_section("model", vec![1, 2, 3, 4, 5])
            .with_section("optimizer", vec![9; 100])
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("models/model_40.ckpt");
        sample().save(&p).unwrap();
        let back = Checkpoint::load(&p).unwrap();
        assert_eq!(back, sample());
        assert_eq!(back.section("model"), Some(&[1u8, 2, 3, 4, 5][..]));
        assert!(back.require("scheduler", &p).is_err());
    }

    #[test]
    fn truncation_flips_and_foreign_files_are_detected() {
        let p = Path::new("x.ckpt");
        let bytes = sample().to_bytes();
        for cut in [0, 5, 19, 25, bytes.len() - 1] {
            let err = Checkpoint::from_bytes(&bytes[..cut], p).unwrap_err();
            assert!(
                err.to_string().contains("x.ckpt is corrupt"),
                "{cut}: {err}"
            );
        }
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 3] ^= 0x40;
        let err = Checkpoint::from_bytes(&flipped, p).unwrap_err().to_string();
        assert!(
            err.contains("section `optimizer` fails its SHA-256 check"),
            "{err}"
        );
        let err = Checkpoint::from_bytes(b"PK\x03\x04 a zip file....", p).unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
        let mut longer = bytes;
        longer.push(0);
        assert!(Checkpoint::from_bytes(&longer, p).is_err());
    }

    #[test]
    fn newest_good_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("model_10.ckpt");
        let b = dir.path().join("model_20.ckpt");
        sample().save(&a).unwrap();
        let bytes = sample().to_bytes();
        std::fs::write(&b, &bytes[..bytes.len() / 2]).unwrap();
        let (path, _) = load_newest_good(&[a.clone(), b]).unwrap();
        assert_eq!(path, a);
        let c = dir.path().join("model_30.ckpt");
        std::fs::write(&c, b"").unwrap();
        assert_eq!(load_newest_good(&[c]).unwrap_err().len(), 1);
    }
}
