//! TensorBoard event files with scalar summaries, as AntMMF writes them with tensorboardX, so
//! `tensorboard --logdir <run>/logs` shows the curves.
//!
//! The format is TFRecord framing around `tensorflow.Event` protocol buffers: per record a
//! little-endian u64 length, the masked CRC-32C of those 8 bytes, the payload, and the masked
//! CRC-32C of the payload. The first event carries `file_version: "brain.Event:2"`; each scalar
//! is an event with `wall_time`, `step` and `summary { value { tag, simple_value } }`. The
//! protobuf fields are written by hand (five of them), with no protobuf dependency.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli), bitwise; fast enough for a few records per log interval.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

/// TFRecord's masked CRC.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(field: u32, wire: u32, out: &mut Vec<u8>) {
    varint(u64::from((field << 3) | wire), out);
}

fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// `Event { wall_time: 1, step: 2, file_version: 3 }`.
fn event_header(wall_time: f64, step: i64) -> Vec<u8> {
    let mut e = Vec::new();
    key(1, 1, &mut e);
    e.extend_from_slice(&wall_time.to_le_bytes());
    key(2, 0, &mut e);
    varint(step as u64, &mut e);
    e
}

/// The serialized `Event` holding one scalar.
pub fn scalar_event(wall_time: f64, step: i64, tag: &str, value: f32) -> Vec<u8> {
    let mut v = Vec::new();
    bytes_field(1, tag.as_bytes(), &mut v);
    key(2, 5, &mut v);
    v.extend_from_slice(&value.to_le_bytes());
    let mut summary = Vec::new();
    bytes_field(1, &v, &mut summary);
    let mut e = event_header(wall_time, step);
    bytes_field(5, &summary, &mut e);
    e
}

/// One TFRecord around `payload`.
pub fn record(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
    out
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Appends scalar events to one `events.out.tfevents.*` file.
#[derive(Debug)]
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `<dir>/events.out.tfevents.<time>.<host>` and writes the file-version event.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let t = now();
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}",
            t as u64,
            std::process::id()
        ));
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut e = event_header(t, 0);
        bytes_field(3, b"brain.Event:2", &mut e);
        file.write_all(&record(&e))?;
        file.flush()?;
        Ok(Self { file, path })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes scalars at `step` and flushes (a crash loses at most the record being written;
    /// TensorBoard skips a torn last record).
    pub fn scalars<'a>(
        &mut self,
        step: u64,
        values: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> io::Result<()> {
        let t = now();
        let mut buf = Vec::new();
        for (tag, v) in values {
            buf.extend(record(&scalar_event(t, step as i64, tag, v as f32)));
        }
        self.file.write_all(&buf)?;
        self.file.flush()
    }
}

/// Reads back `(step, tag, value)` scalars of an event file, verifying every CRC (for tests and
/// `antmmf-report`).
pub fn read_scalars(bytes: &[u8]) -> Result<Vec<(i64, String, f32)>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        if bytes.len() - pos < 12 {
            return Err(format!("truncated record header at byte {pos}"));
        }
        let len_bytes = &bytes[pos..pos + 8];
        let mut l = [0u8; 8];
        l.copy_from_slice(len_bytes);
        let len = u64::from_le_bytes(l) as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 8],
            bytes[pos + 9],
            bytes[pos + 10],
            bytes[pos + 11],
        ]);
        if crc != masked_crc32c(len_bytes) {
            return Err(format!("bad length CRC at byte {pos}"));
        }
        let start = pos + 12;
        let end = start
            .checked_add(len)
            .filter(|e| e + 4 <= bytes.len())
            .ok_or_else(|| format!("truncated record at byte {pos}"))?;
        let payload = &bytes[start..end];
        let crc = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        if crc != masked_crc32c(payload) {
            return Err(format!("bad payload CRC at byte {pos}"));
        }
        if let Some(s) = parse_scalar(payload) {
            out.push(s);
        }
        pos = end + 4;
    }
    Ok(out)
}

fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Iterates `(field, wire, payload-or-value)` of a protobuf message.
fn fields(b: &[u8]) -> Option<Vec<(u32, &[u8], u64)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        let k = read_varint(b, &mut pos)?;
        let (field, wire) = ((k >> 3) as u32, (k & 7) as u32);
        match wire {
            0 => {
                let v = read_varint(b, &mut pos)?;
                out.push((field, &b[0..0], v));
            }
            1 => {
                let s = b.get(pos..pos + 8)?;
                pos += 8;
                out.push((field, s, 0));
            }
            2 => {
                let n = read_varint(b, &mut pos)? as usize;
                let s = b.get(pos..pos + n)?;
                pos += n;
                out.push((field, s, 0));
            }
            5 => {
                let s = b.get(pos..pos + 4)?;
                pos += 4;
                out.push((field, s, 0));
            }
            _ => return None,
        }
    }
    Some(out)
}

fn parse_scalar(event: &[u8]) -> Option<(i64, String, f32)> {
    let f = fields(event)?;
    let step = f.iter().find(|x| x.0 == 2).map(|x| x.2 as i64).unwrap_or(0);
    let summary = f.iter().find(|x| x.0 == 5)?.1;
    let value = fields(summary)?.into_iter().find(|x| x.0 == 1)?.1;
    let vf = fields(value)?;
    let tag = String::from_utf8(vf.iter().find(|x| x.0 == 1)?.1.to_vec()).ok()?;
    let raw = vf.iter().find(|x| x.0 == 2)?.1;
    Some((
        step,
        tag,
        f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // The CRC-32C check value of "123456789", and RFC 3720's 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn scalar_event_bytes() {
        // wall_time 1.5, step 3, tag "a", value 2.0, checked field by field.
        let e = scalar_event(1.5, 3, "a", 2.0);
        let mut expect = vec![0x09];
        expect.extend_from_slice(&1.5f64.to_le_bytes());
        // step 3; summary (field 5, 10 bytes) { value (field 1, 8 bytes) { tag "a"; simple_value } }
        expect.extend_from_slice(&[0x10, 0x03, 0x2A, 0x0A, 0x0A, 0x08, 0x0A, 0x01, b'a', 0x15]);
        expect.extend_from_slice(&2.0f32.to_le_bytes());
        assert_eq!(e, expect);
    }

    #[test]
    fn write_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(10, [("train/total_loss", 2.5), ("train/lr", 1e-4)])
            .unwrap();
        w.scalars(20, [("train/total_loss", 1.25)]).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let s = read_scalars(&bytes).unwrap();
        assert_eq!(
            s,
            vec![
                (10, "train/total_loss".to_string(), 2.5),
                (10, "train/lr".to_string(), 1e-4),
                (20, "train/total_loss".to_string(), 1.25),
            ]
        );
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert!(read_scalars(&bad).is_err());
        assert!(read_scalars(&bytes[..n - 3]).is_err());
    }
}
