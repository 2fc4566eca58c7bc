//! Tensor strides of PyTorch pickles.
//!
//! burn-store 0.21 rebuilds every pickled tensor as `numel` contiguous elements from its storage
//! offset and drops the stride argument of `torch._utils._rebuild_tensor_v2`. Tensors saved as
//! non-contiguous views (e.g. weights converted from TensorFlow by permuting axes, as in the
//! EfficientNet-Lite checkpoints) then come back scrambled. This module re-reads the pickle with a
//! minimal unpickler that keeps `(size, stride)` per key, so the importer can re-order the data.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use burn::tensor::TensorData;

/// Size and stride (in elements) of one pickled tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TensorLayout {
    /// Shape.
    pub size: Vec<usize>,
    /// Stride per dimension.
    pub stride: Vec<usize>,
}

impl TensorLayout {
    /// Whether the stride is the row-major one for the size (size-1 dimensions are free).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&n, &s) in self.size.iter().zip(&self.stride).rev() {
            if n != 1 && s != expected {
                return false;
            }
            expected *= n;
        }
        true
    }

    /// Elements of storage the view spans from its offset.
    pub fn span(&self) -> usize {
        if self.size.contains(&0) {
            return 0;
        }
        1 + self
            .size
            .iter()
            .zip(&self.stride)
            .map(|(&n, &s)| (n - 1) * s)
            .sum::<usize>()
    }

    /// Re-orders data read as `numel` contiguous storage elements into the view's row-major
    /// order. Requires `span() <= numel` (a dense permutation), checked by the caller.
    pub fn restride(&self, data: TensorData) -> TensorData {
        let element = data.dtype.size();
        let bytes = data.as_bytes();
        let numel: usize = self.size.iter().product();
        let mut out = vec![0u8; numel * element];
        let mut index = vec![0usize; self.size.len()];
        for i in 0..numel {
            let src: usize = index.iter().zip(&self.stride).map(|(a, b)| a * b).sum();
            if let Some(chunk) = bytes.get(src * element..(src + 1) * element) {
                out[i * element..(i + 1) * element].copy_from_slice(chunk);
            }
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.size[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        TensorData::from_bytes_vec(out, self.size.clone(), data.dtype)
    }
}

/// The layouts of every tensor in a PyTorch file (zip or legacy format), keyed like burn-store
/// keys them (nested dict keys joined with `.`).
pub(crate) fn tensor_layouts(path: &Path) -> Result<HashMap<String, TensorLayout>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).map_err(|e| e.to_string())?;
    let pickle = if magic == *b"PK\x03\x04" {
        read_zip_entry(&mut file, "data.pkl")?
    } else if magic[0] == 0x80 {
        // Legacy format: magic number, protocol, sys info, then the state dict.
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        let mut pos = 0;
        for _ in 0..3 {
            pos += Unpickler::new(&bytes[pos..]).run()?.1;
        }
        bytes.split_off(pos)
    } else {
        return Err("unknown PyTorch container (not zip, not legacy pickle)".into());
    };
    let (root, _) = Unpickler::new(&pickle).run()?;
    let mut layouts = HashMap::new();
    collect(&root, &mut Vec::new(), &mut layouts);
    Ok(layouts)
}

fn collect(value: &Value, path: &mut Vec<String>, out: &mut HashMap<String, TensorLayout>) {
    match value {
        Value::Dict(items) => {
            for (k, v) in items {
                let key = match k {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    _ => continue,
                };
                path.push(key);
                collect(v, path, out);
                path.pop();
            }
        }
        Value::Tensor(layout) => {
            out.insert(path.join("."), layout.clone());
        }
        _ => {}
    }
}

/// Reads one STORED entry whose name ends with `suffix` from a zip file (torch.save writes
/// uncompressed entries), through the central directory.
fn read_zip_entry(file: &mut std::fs::File, suffix: &str) -> Result<Vec<u8>, String> {
    let err = |e: std::io::Error| e.to_string();
    let len = file.seek(SeekFrom::End(0)).map_err(err)?;
    let tail_len = len.min(65_557);
    file.seek(SeekFrom::Start(len - tail_len)).map_err(err)?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail).map_err(err)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == *b"PK\x05\x06")
        .ok_or("zip: no end-of-central-directory record")?;
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as u64;
    let u32_at =
        |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64;
    let mut entries = u16_at(&tail, eocd + 10);
    let mut cd_size = u32_at(&tail, eocd + 12);
    let mut cd_offset = u32_at(&tail, eocd + 16);
    // Zip64: the real values are in the zip64 end-of-central-directory record.
    if cd_offset == 0xFFFF_FFFF || entries == 0xFFFF {
        let locator = eocd.checked_sub(20).ok_or("zip64: no locator")?;
        if tail[locator..locator + 4] != *b"PK\x06\x07" {
            return Err("zip64: bad locator".into());
        }
        let rec_offset = u64::from_le_bytes(
            tail[locator + 8..locator + 16]
                .try_into()
                .unwrap_or_default(),
        );
        let mut rec = [0u8; 56];
        file.seek(SeekFrom::Start(rec_offset)).map_err(err)?;
        file.read_exact(&mut rec).map_err(err)?;
        let u64_at = |i: usize| u64::from_le_bytes(rec[i..i + 8].try_into().unwrap_or_default());
        entries = u64_at(32);
        cd_size = u64_at(40);
        cd_offset = u64_at(48);
    }
    let mut cd = vec![0u8; cd_size as usize];
    file.seek(SeekFrom::Start(cd_offset)).map_err(err)?;
    file.read_exact(&mut cd).map_err(err)?;
    let mut p = 0usize;
    for _ in 0..entries {
        if cd.get(p..p + 4) != Some(b"PK\x01\x02") {
            return Err("zip: bad central directory entry".into());
        }
        let method = u16_at(&cd, p + 10);
        let mut size = u32_at(&cd, p + 20);
        let name_len = u16_at(&cd, p + 28) as usize;
        let extra_len = u16_at(&cd, p + 30) as usize;
        let comment_len = u16_at(&cd, p + 32) as usize;
        let mut local = u32_at(&cd, p + 42);
        let name = String::from_utf8_lossy(&cd[p + 46..p + 46 + name_len]).to_string();
        // Zip64 extra field (id 1): uncompressed, compressed sizes and offset as needed.
        let extra = &cd[p + 46 + name_len..p + 46 + name_len + extra_len];
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e);
            let n = u16_at(extra, e + 2) as usize;
            if id == 1 {
                let mut q = e + 4;
                let mut take = |present: bool| -> Option<u64> {
                    if present && q + 8 <= e + 4 + n {
                        let v = u64::from_le_bytes(extra[q..q + 8].try_into().ok()?);
                        q += 8;
                        Some(v)
                    } else {
                        None
                    }
                };
                let uncompressed = take(u32_at(&cd, p + 24) == 0xFFFF_FFFF);
                let compressed = take(size == 0xFFFF_FFFF);
                let offset = take(local == 0xFFFF_FFFF);
                size = compressed.or(uncompressed).unwrap_or(size);
                local = offset.unwrap_or(local);
            }
            e += 4 + n;
        }
        if name.ends_with(suffix) {
            if method != 0 {
                return Err(format!("zip: entry {name} is compressed (method {method})"));
            }
            let mut header = [0u8; 30];
            file.seek(SeekFrom::Start(local)).map_err(err)?;
            file.read_exact(&mut header).map_err(err)?;
            let skip = u16_at(&header, 26) + u16_at(&header, 28);
            file.seek(SeekFrom::Current(skip as i64)).map_err(err)?;
            let mut data = vec![0u8; size as usize];
            file.read_exact(&mut data).map_err(err)?;
            return Ok(data);
        }
        p += 46 + name_len + extra_len + comment_len;
    }
    Err(format!("zip: no entry ending with {suffix}"))
}

/// The pickle values this reader distinguishes.
#[derive(Debug, Clone)]
enum Value {
    None,
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Tensor(TensorLayout),
    Mark,
    Other,
}

impl Value {
    fn usizes(&self) -> Option<Vec<usize>> {
        match self {
            Value::Tuple(v) | Value::List(v) => v
                .iter()
                .map(|x| match x {
                    Value::Int(i) => usize::try_from(*i).ok(),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// A pickle virtual machine for the opcodes `torch.save` emits (protocols 2 to 4).
struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("pickle: overflow")?;
        let bytes = self.data.get(self.pos..end).ok_or("pickle: truncated")?;
        self.pos = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let bytes = self.take(n)?;
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(buf))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("pickle: unterminated line")?;
        self.pos += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).to_string())
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle: stack underflow".to_string())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("pickle: no mark")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle: empty stack".to_string())
    }

    /// Runs to STOP; returns the result and the number of bytes consumed.
    fn run(mut self) -> Result<(Value, usize), String> {
        loop {
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    self.take(1)?;
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok((v, self.pos));
                }
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 | 0x89 => self.stack.push(Value::Other),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = items
                        .chunks(2)
                        .filter(|c| c.len() == 2)
                        .map(|c| (c[0].clone(), c[1].clone()))
                        .collect();
                    self.stack.push(Value::Dict(pairs));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle: stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    if let Value::List(l) = self.top()? {
                        l.push(v);
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    if let Value::List(l) = self.top()? {
                        l.extend(items);
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let Value::Dict(d) = self.top()? {
                        d.push((k, v));
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if let Value::Dict(d) = self.top()? {
                        for c in items.chunks(2).filter(|c| c.len() == 2) {
                            d.push((c[0].clone(), c[1].clone()));
                        }
                    }
                }
                b'q' => {
                    let i = self.uint(1)?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'r' => {
                    let i = self.uint(4)?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'h' | b'j' => {
                    let i = self.uint(if op == b'h' { 1 } else { 4 })?;
                    let v = self.memo.get(&i).cloned().ok_or("pickle: bad memo")?;
                    self.stack.push(v);
                }
                b'K' => {
                    let v = self.uint(1)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.uint(2)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                0x8a => {
                    let n = self.uint(1)? as usize;
                    let bytes = self.take(n)?;
                    let mut v: i64 = 0;
                    for (i, b) in bytes.iter().enumerate().take(8) {
                        v |= (*b as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Other);
                }
                b'X' | 0x8c | 0x8d | b'T' | b'U' | b'B' | b'C' | 0x8e => {
                    let n = match op {
                        0x8c | b'U' | b'C' => self.uint(1)?,
                        0x8d | 0x8e => self.uint(8)?,
                        _ => self.uint(4)?,
                    } as usize;
                    let bytes = self.take(n)?;
                    self.stack
                        .push(Value::Str(String::from_utf8_lossy(bytes).to_string()));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => self.stack.push(Value::Other),
                    }
                }
                b'Q' => {
                    self.pop()?;
                    self.stack.push(Value::Other);
                }
                b'P' => {
                    self.line()?;
                    self.stack.push(Value::Other);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = reduce(callable, args);
                    self.stack.push(value);
                }
                0x81 => {
                    self.pop()?;
                    self.pop()?;
                    self.stack.push(Value::Other);
                }
                b'b' => {
                    // BUILD sets state (e.g. OrderedDict `_metadata`): keep the object.
                    self.pop()?;
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                other => return Err(format!("pickle: unsupported opcode 0x{other:02x}")),
            }
        }
    }
}

/// `torch._utils._rebuild_tensor{,_v2}(storage, offset, size, stride, ...)` keeps its layout;
/// `_rebuild_parameter(tensor, ...)` is its tensor; `OrderedDict()` is a dict.
fn reduce(callable: Value, args: Value) -> Value {
    let Value::Global(module, name) = callable else {
        return Value::Other;
    };
    let args = match args {
        Value::Tuple(a) => a,
        _ => return Value::Other,
    };
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") if args.len() >= 4 => {
            match (args[2].usizes(), args[3].usizes()) {
                (Some(size), Some(stride)) if size.len() == stride.len() => {
                    Value::Tensor(TensorLayout { size, stride })
                }
                _ => Value::Other,
            }
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            args.into_iter().next().unwrap_or(Value::Other)
        }
        ("torch._tensor", "_rebuild_from_type_v2") if args.len() >= 3 => {
            reduce(args[0].clone(), args[2].clone())
        }
        ("collections", "OrderedDict") => Value::Dict(Vec::new()),
        _ => Value::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A [2, 3] view of storage [a b c d e f] with stride (1, 2), i.e. the transpose of a
    /// contiguous [3, 2]: rows read a c e / b d f.
    #[test]
    fn restride_reorders_a_transposed_view() {
        let layout = TensorLayout {
            size: vec![2, 3],
            stride: vec![1, 2],
        };
        assert!(!layout.is_contiguous());
        assert_eq!(layout.span(), 6);
        let storage = TensorData::new(vec![0f32, 1., 2., 3., 4., 5.], [2, 3]);
        let out: Vec<f32> = layout.restride(storage).to_vec().unwrap();
        assert_eq!(out, [0., 2., 4., 1., 3., 5.]);
        let contiguous = TensorLayout {
            size: vec![2, 1, 3],
            stride: vec![3, 7, 1],
        };
        assert!(contiguous.is_contiguous());
    }

    /// A hand-assembled protocol-2 pickle of `{"w": _rebuild_tensor_v2(pid, 0, (2, 3), (1, 2),
    /// False, OrderedDict())}` as torch.save writes it.
    #[test]
    fn unpickler_keeps_size_and_stride() {
        let mut p = vec![0x80, 0x02, b'}', b'q', 0, b'X', 1, 0, 0, 0, b'w'];
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
        p.extend([b'(', b'(', b'X', 7, 0, 0, 0]);
        p.extend(b"storage");
        p.extend([
            b't', b'Q', b'K', 0, b'K', 2, b'K', 3, 0x86, b'K', 1, b'K', 2, 0x86, 0x89,
        ]);
        p.extend(b"ccollections\nOrderedDict\n");
        p.extend([b')', b'R', b't', b'R', b's', b'.']);
        let (root, used) = Unpickler::new(&p).run().unwrap();
        assert_eq!(used, p.len());
        let mut layouts = HashMap::new();
        collect(&root, &mut Vec::new(), &mut layouts);
        assert_eq!(
            layouts["w"],
            TensorLayout {
                size: vec![2, 3],
                stride: vec![1, 2]
            }
        );
    }
}
