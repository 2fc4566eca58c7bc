//! Weight import: safetensors and PyTorch pickles (`.bin`, `.pth`, `.pt`, `.ckpt`) through
//! burn-store, with one key table per checkpoint family and a report of what was loaded.
//!
//! The Rust side of `transformers`' `from_pretrained` key handling and of AntMMF's
//! `antmmf/utils/checkpoint.py` (`module.` prefixes, `model` top-level entry):
//!
//! 1. [`WeightFile::open`] reads the tensor index once (data stays lazy), takes the `state_dict`
//!    or `model` entry of a training checkpoint and strips DDP `module.` prefixes.
//! 2. A [`KeyMap`] (burn-store [`KeyRemapper`] rules, applied in order) renames the file's keys
//!    to the module's parameter paths; keys a family can derive (buffers, tied copies) are set
//!    aside as *ignored*.
//! 3. [`WeightFile::load_into`] applies the tensors with burn-store's [`PyTorchToBurnAdapter`]
//!    (PyTorch `Linear` weights `[out, in]` are transposed to Burn's `[in, out]`; norm
//!    `weight`/`bias` fill Burn's `gamma`/`beta`) and returns a [`LoadReport`] with loaded,
//!    missing, unexpected, ignored and shape-mismatched keys. Missing weights are an error
//!    unless [`LoadOptions::allow_missing`]; shape mismatches always are.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};
mod torch_strides;

use burn_store::{
    ApplyError, KeyRemapper, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore, TensorSnapshot,
};

/// Keys that a key table sends here are known and deliberately not loaded.
const IGNORED: &str = "__ignored__";

/// Errors raised while reading a weights file or applying it to a module.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read or parsed.
    #[error("cannot read weights file {path}: {message}")]
    Read {
        /// The weights file.
        path: PathBuf,
        /// What the reader reported.
        message: String,
    },
    /// The file extension names no supported format.
    #[error(
        "{path}: unsupported weights format (expected .safetensors, .bin, .pth, .pt, .ckpt or .mpk)"
    )]
    UnsupportedFormat {
        /// The weights file.
        path: PathBuf,
    },
    /// A key table did not compile (a bug in the table, reported instead of panicking).
    #[error("key table '{family}': {message}")]
    KeyTable {
        /// The family of the table.
        family: String,
        /// The regex error.
        message: String,
    },
    /// A tensor the caller asked for by name is absent.
    #[error("{path}: no tensor named '{key}'")]
    NoSuchTensor {
        /// The weights file.
        path: PathBuf,
        /// The requested key.
        key: String,
    },
    /// A tensor could not be decoded or has the wrong rank.
    #[error("{path}: tensor '{key}': {message}")]
    Tensor {
        /// The weights file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// A model folder holds none of the known weights file names.
    #[error("{dir}: no weights file (looked for {looked_for})")]
    NoWeightsFile {
        /// The model folder.
        dir: PathBuf,
        /// The names tried.
        looked_for: String,
    },
    /// Parameters of the module found no tensor in the file.
    #[error(
        "{}: {} parameters have no weights in the file (first: {}); {}",
        report.source.display(), report.missing.len(), first(&report.missing), report
    )]
    Missing {
        /// The full report.
        report: Box<LoadReport>,
    },
    /// Tensors whose shape differs from the module's parameter (a config mismatch).
    #[error(
        "{}: {} tensors have the wrong shape (first: {}); {}",
        report.source.display(), report.shape_mismatched.len(),
        report.shape_mismatched.first().map(|m| m.to_string()).unwrap_or_default(), report
    )]
    ShapeMismatch {
        /// The full report.
        report: Box<LoadReport>,
    },
}

fn first(keys: &[String]) -> &str {
    keys.first().map(String::as_str).unwrap_or("")
}

/// One tensor whose stored shape differs from the parameter's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Module parameter path.
    pub key: String,
    /// Shape of the module's parameter (Burn layout).
    pub expected: Vec<usize>,
    /// Shape found in the file (after the Linear transpose).
    pub found: Vec<usize>,
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: module {:?}, file {:?}",
            self.key, self.expected, self.found
        )
    }
}

/// What [`WeightFile::load_into`] did, key by key (all lists sorted).
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The weights file.
    pub source: PathBuf,
    /// The key table used.
    pub family: String,
    /// Module parameters that received a tensor.
    pub loaded: Vec<String>,
    /// Module parameters with no tensor in the file (left at their initial values).
    pub missing: Vec<String>,
    /// File keys (after remapping) that match no module parameter.
    pub unexpected: Vec<String>,
    /// File keys the key table knows and skips on purpose (buffers, tied copies).
    pub ignored: Vec<String>,
    /// Tensors whose shape differs from the parameter's.
    pub shape_mismatched: Vec<ShapeMismatch>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]: {} loaded, {} missing, {} unexpected, {} ignored, {} shape mismatches",
            self.source.display(),
            self.family,
            self.loaded.len(),
            self.missing.len(),
            self.unexpected.len(),
            self.ignored.len(),
            self.shape_mismatched.len()
        )?;
        let lists: [(&str, &[String]); 3] = [
            ("missing", &self.missing),
            ("unexpected", &self.unexpected),
            ("ignored", &self.ignored),
        ];
        for (name, keys) in lists {
            if !keys.is_empty() {
                let shown: Vec<&str> = keys.iter().take(12).map(String::as_str).collect();
                let more = keys.len().saturating_sub(shown.len());
                write!(f, "\n  {name}: {}", shown.join(", "))?;
                if more > 0 {
                    write!(f, " (+{more} more)")?;
                }
            }
        }
        for m in self.shape_mismatched.iter().take(12) {
            write!(f, "\n  shape mismatch: {m}")?;
        }
        Ok(())
    }
}

/// Options for [`WeightFile::load_into`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Accept module parameters that find no tensor (they keep their initial values).
    pub allow_missing: bool,
    /// Load only the file keys under this prefix, with the prefix removed (e.g.
    /// `"model.text_encoder."` for one tower of an AntMMF checkpoint). Applied before the table.
    pub prefix: Option<String>,
}

impl LoadOptions {
    /// Options that accept missing parameters.
    pub fn allow_missing() -> Self {
        Self {
            allow_missing: true,
            prefix: None,
        }
    }

    /// Restricts loading to the keys under `prefix` (see [`LoadOptions::prefix`]).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }
}

/// A checkpoint family's key table: ordered burn-store [`KeyRemapper`] rules from file keys to
/// module parameter paths. A rule may send a key to the ignored set.
#[derive(Debug, Clone)]
pub struct KeyMap {
    family: String,
    rules: Vec<(String, String)>,
    /// `(first, second, fused)` key fragments: tensors `..first..` and `..second..` are
    /// concatenated along dim 0 into `..fused..` before the rules run.
    fusions: Vec<(String, String, String)>,
}

impl KeyMap {
    /// A table from `(regex, replacement)` rules, applied in order to every key (each rule sees
    /// the previous rule's output). Replacements may use `$1`-style groups.
    pub fn new(family: impl Into<String>, rules: &[(&str, &str)]) -> Self {
        Self {
            family: family.into(),
            rules: rules
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            fusions: Vec::new(),
        }
    }

    /// Concatenates pairs of file tensors along dim 0 (PyTorch's output dimension of a `Linear`
    /// weight or bias) before the rules run: a key containing `first` whose sibling (the same key
    /// with `second` in its place) exists becomes one tensor under the key with `fused` in its
    /// place. For checkpoints that split a projection the module keeps joint (HF PVT v2's
    /// `key`/`value` into upstream's `kv`).
    pub fn with_fused_rows(mut self, first: &str, second: &str, fused: &str) -> Self {
        self.fusions
            .push((first.to_string(), second.to_string(), fused.to_string()));
        self
    }

    /// Adds a rule after the existing ones.
    pub fn with_rule(mut self, pattern: &str, replacement: &str) -> Self {
        self.rules
            .push((pattern.to_string(), replacement.to_string()));
        self
    }

    /// Adds a rule that marks keys matching `pattern` as ignored (known, not loaded).
    pub fn with_ignored(self, pattern: &str) -> Self {
        let pattern = match pattern.strip_prefix('^') {
            Some(anchored) => format!("^({anchored})"),
            None => format!("^(.*{pattern})"),
        };
        let replacement = format!("{IGNORED}.$1");
        self.with_rule(&pattern, &replacement)
    }

    /// The family name shown in reports.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// The module paths file keys are loaded into, in order; `None` for a key the table ignores
    /// (row fusions are not applied).
    pub fn translate<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Option<String>>, ImportError> {
        let rules = self.remapper()?.to_regex_pairs();
        Ok(keys
            .into_iter()
            .map(|key| {
                let mut path = key.to_string();
                for (pattern, replacement) in &rules {
                    path = pattern
                        .replace_all(&path, replacement.as_str())
                        .into_owned();
                }
                let ignored = path
                    .strip_prefix(IGNORED)
                    .is_some_and(|rest| rest.starts_with('.'));
                (!ignored).then_some(path)
            })
            .collect())
    }

    /// No renaming: file keys are module paths.
    pub fn identity() -> Self {
        Self::new("identity", &[])
    }

    /// HF BERT into [`crate::bert::Bert`] (encoder + optional pooler): accepts `BertModel`
    /// files and the `bert.` subtree of `BertForPreTraining`/`BertForMaskedLM` files (their
    /// `cls.*` heads are reported unexpected), old `gamma`/`beta` LayerNorm names included.
    pub fn hf_bert() -> Self {
        Self::new("hf-bert", &[(r"^bert\.", "")])
            .with_rules(BERT_COMMON)
            .with_ignored(r"embeddings\.position_ids$")
    }

    /// HF BERT into [`crate::bert::BertForPreTraining`] (`bert.*` + `cls.*`): accepts files with
    /// or without the `bert.` prefix. The MLM decoder is tied to the word embeddings, so the
    /// file's `cls.predictions.decoder.*` copies are ignored (loaded once, as the embeddings).
    pub fn hf_bert_with_heads() -> Self {
        Self::new(
            "hf-bert-with-heads",
            &[(r"^(embeddings|encoder|pooler)\.", "bert.$1.")],
        )
        .with_rules(BERT_COMMON)
        .with_ignored(r"embeddings\.position_ids$")
        .with_ignored(r"^cls\.predictions\.decoder\.(weight|bias)$")
    }

    /// HF CLIP vision tower into [`crate::clip::ClipVision`]: `CLIPVisionModel` keys, or a full
    /// `CLIPModel` file's `vision_model.` subtree (text keys are then unexpected).
    pub fn hf_clip_vision() -> Self {
        Self::new("hf-clip-vision", &[(r"^vision_model\.", "")])
            .with_ignored(r"embeddings\.position_ids$")
    }

    /// HF CLIP text tower into [`crate::clip::ClipText`]: `CLIPTextModel` keys, or a full
    /// `CLIPModel` file's `text_model.` subtree.
    pub fn hf_clip_text() -> Self {
        Self::new("hf-clip-text", &[(r"^text_model\.", "")])
            .with_ignored(r"embeddings\.position_ids$")
    }

    /// torchvision `swin3d_{t,s,b}` into [`crate::video_swin::VideoSwin`]:
    /// `features.{2i}.{j}` → `layers.{i}.blocks.{j}`, `features.{2i+1}` → `layers.{i}.downsample`,
    /// `mlp.0/3` → `mlp.fc1/fc2`; `relative_position_index` buffers are derived, so ignored.
    pub fn torchvision_swin3d() -> Self {
        Self::new(
            "torchvision-swin3d",
            &[
                (r"^features\.0\.", "layers.0.blocks."),
                (r"^features\.1\.", "layers.0.downsample."),
                (r"^features\.2\.", "layers.1.blocks."),
                (r"^features\.3\.", "layers.1.downsample."),
                (r"^features\.4\.", "layers.2.blocks."),
                (r"^features\.5\.", "layers.2.downsample."),
                (r"^features\.6\.", "layers.3.blocks."),
                (r"\.mlp\.0\.", ".mlp.fc1."),
                (r"\.mlp\.3\.", ".mlp.fc2."),
            ],
        )
        .with_ignored(r"relative_position_index$")
    }

    /// Original Video-Swin / VIOLET checkpoints (`backbone.layers.{i}.blocks.{j}...`,
    /// `mlp.fc1/fc2`, `layers.{i}.downsample`) into [`crate::video_swin::VideoSwin`]. Keys
    /// outside the backbone (e.g. a classification head `cls_head.*`) are unexpected.
    pub fn video_swin() -> Self {
        Self::new(
            "video-swin",
            &[(r"^(module\.)?(backbone|swin|video_encoder)\.", "")],
        )
        .with_ignored(r"relative_position_index$")
        .with_ignored(r"attn_mask$")
    }

    /// lukemelas-style EfficientNet(-Lite) checkpoints (`_conv_stem`, `_blocks.{i}._bn0`, `_fc`)
    /// into [`crate::efficientnet::EfficientNetLite`]: leading underscores dropped, BatchNorm
    /// `num_batches_tracked` counters ignored.
    pub fn lukemelas_efficientnet() -> Self {
        Self::new("lukemelas-efficientnet", &[(r"^_", ""), (r"\._", ".")])
            .with_ignored(r"num_batches_tracked$")
    }

    /// whai362/PVT `pvt_v2_b*` checkpoints into [`crate::pvt_v2::PvtV2`]:
    /// `patch_embed{i}` / `block{i}` / `norm{i}` → `stages.{i-1}.{patch_embed,blocks,norm}`,
    /// `mlp.dwconv.dwconv` → `mlp.dwconv`.
    pub fn pvt_v2() -> Self {
        let mut map = Self::new("pvt-v2", &[]);
        for i in 1..=4 {
            let s = i - 1;
            map = map
                .with_rule(
                    &format!(r"^patch_embed{i}\."),
                    &format!("stages.{s}.patch_embed."),
                )
                .with_rule(&format!(r"^block{i}\."), &format!("stages.{s}.blocks."))
                .with_rule(&format!(r"^norm{i}\."), &format!("stages.{s}.norm."));
        }
        map.with_rule(r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv.")
    }

    /// HF `transformers` `PvtV2Model` / `PvtV2ForImageClassification` files into
    /// [`crate::pvt_v2::PvtV2`]: `encoder.layers.{i}.{patch_embedding,blocks,layer_norm}` →
    /// `stages.{i}.{patch_embed,blocks,norm}`, separate `attention.key`/`value` fused into `kv`
    /// (key rows first, as upstream's `kv` Linear), `query` → `q`, `spatial_reduction` → `sr`,
    /// `mlp.dense1/dense2` → `mlp.fc1/fc2`, `classifier` → `head`.
    pub fn hf_pvt_v2() -> Self {
        Self::new(
            "hf-pvt-v2",
            &[
                (r"^pvt_v2\.", ""),
                (
                    r"^encoder\.layers\.(\d+)\.patch_embedding\.layer_norm\.",
                    "stages.$1.patch_embed.norm.",
                ),
                (
                    r"^encoder\.layers\.(\d+)\.patch_embedding\.",
                    "stages.$1.patch_embed.",
                ),
                (r"^encoder\.layers\.(\d+)\.layer_norm\.", "stages.$1.norm."),
                (r"^encoder\.layers\.(\d+)\.blocks\.", "stages.$1.blocks."),
                (r"\.layer_norm_1\.", ".norm1."),
                (r"\.layer_norm_2\.", ".norm2."),
                (r"\.attention\.query\.", ".attn.q."),
                (r"\.attention\.spatial_reduction\.", ".attn.sr."),
                (r"\.attention\.layer_norm\.", ".attn.norm."),
                (r"\.attention\.", ".attn."),
                (r"\.mlp\.dense1\.", ".mlp.fc1."),
                (r"\.mlp\.dense2\.", ".mlp.fc2."),
                (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),
                (r"^classifier\.", "head."),
            ],
        )
        .with_fused_rows(".attention.key.", ".attention.value.", ".attention.kv.")
    }

    /// torchvision `resnet50/101/152` into [`crate::resnet::ResNet`]: `downsample.0/1` →
    /// `downsample.conv/bn`, BatchNorm `num_batches_tracked` counters ignored.
    pub fn torchvision_resnet() -> Self {
        Self::new(
            "torchvision-resnet",
            &[
                (r"\.downsample\.0\.", ".downsample.conv."),
                (r"\.downsample\.1\.", ".downsample.bn."),
            ],
        )
        .with_ignored(r"num_batches_tracked$")
    }

    fn with_rules(mut self, rules: &[(&str, &str)]) -> Self {
        for (a, b) in rules {
            self = self.with_rule(a, b);
        }
        self
    }

    fn remapper(&self) -> Result<KeyRemapper, ImportError> {
        KeyRemapper::from_pattern_iter(self.rules.iter().map(|(a, b)| (a.as_str(), b.clone())))
            .map_err(|e| ImportError::KeyTable {
                family: self.family.clone(),
                message: e.to_string(),
            })
    }
}

/// BERT renames shared by both BERT tables (old `gamma`/`beta`, `LayerNorm`, `attention.self`).
const BERT_COMMON: &[(&str, &str)] = &[
    (r"LayerNorm\.gamma$", "LayerNorm.weight"),
    (r"LayerNorm\.beta$", "LayerNorm.bias"),
    (r"\.LayerNorm\.", ".layer_norm."),
    (r"\.attention\.self\.", ".attention."),
];

/// Weights file names of an HF / AntMMF model folder, in the order they are tried.
pub const WEIGHTS_FILE_NAMES: &[&str] = &[
    "model.safetensors",
    "pytorch_model.bin",
    "model.pth",
    "model.pt",
    "model.ckpt",
    "model.mpk",
];

/// The weights file of a model folder (the first of [`WEIGHTS_FILE_NAMES`] present).
pub fn find_weights_file(dir: impl AsRef<Path>) -> Result<PathBuf, ImportError> {
    let dir = dir.as_ref();
    WEIGHTS_FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| ImportError::NoWeightsFile {
            dir: dir.to_path_buf(),
            looked_for: WEIGHTS_FILE_NAMES.join(", "),
        })
}

/// Extension of Burn's native record files ([`save_native`]): `NamedMpkFileRecorder` with
/// full (f32) precision, the module tree's own parameter paths.
pub const NATIVE_EXTENSION: &str = "mpk";

/// The recorder of the native form: named MessagePack, f32.
pub type NativeRecorder = burn::record::NamedMpkFileRecorder<burn::record::FullPrecisionSettings>;

/// Writes `module` in the native form (Burn's `NamedMpkFileRecorder`, full precision) to `path`
/// with its extension set to [`NATIVE_EXTENSION`]; returns the path written.
pub fn save_native<B: Backend, M: Module<B>>(
    module: M,
    path: impl AsRef<Path>,
) -> Result<PathBuf, ImportError> {
    let path = path.as_ref().with_extension(NATIVE_EXTENSION);
    module
        .save_file(path.clone(), &NativeRecorder::new())
        .map_err(|e| ImportError::Read {
            path: path.clone(),
            message: format!("cannot write native record: {e}"),
        })?;
    Ok(path)
}

/// A weights file opened once: its tensor index with lazily read data.
///
/// A native record ([`NATIVE_EXTENSION`], written by [`save_native`] or `antmmf-convert`) has
/// no tensor index: [`WeightFile::load_into`] loads it whole into the module (no key table, the
/// module's structure must match) and [`WeightFile::keys`] is empty.
pub struct WeightFile {
    path: PathBuf,
    tensors: BTreeMap<String, TensorSnapshot>,
    native: bool,
}

impl fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl WeightFile {
    /// Opens a `.safetensors` file, a PyTorch pickle (`.bin`, `.pth`, `.pt`, `.ckpt`) or a native
    /// record (`.mpk`, see [`save_native`]).
    ///
    /// Training checkpoints are reduced to their weights: if the file has a `state_dict` entry,
    /// or a `model` entry next to an `optimizer` entry (AntMMF's layout), only that entry is kept,
    /// with its name removed. Leading DDP `module.` prefixes are stripped from every key.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ImportError> {
        let path = path.as_ref().to_path_buf();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let read_err = |message: String| ImportError::Read {
            path: path.clone(),
            message,
        };
        if !path.is_file() {
            return Err(read_err("no such file".into()));
        }
        let raw: BTreeMap<String, TensorSnapshot> = match ext.as_str() {
            "safetensors" => {
                let mut store = SafetensorsStore::from_file(&path);
                store
                    .get_all_snapshots()
                    .map_err(|e| read_err(e.to_string()))?
                    .clone()
            }
            "bin" | "pth" | "pt" | "ckpt" => {
                let mut store = PytorchStore::from_file(&path).map_indices_contiguous(false);
                let raw = store
                    .get_all_snapshots()
                    .map_err(|e| read_err(e.to_string()))?
                    .clone();
                apply_pickle_strides(&path, raw)?
            }
            NATIVE_EXTENSION => {
                return Ok(Self {
                    path,
                    tensors: BTreeMap::new(),
                    native: true,
                });
            }
            _ => return Err(ImportError::UnsupportedFormat { path }),
        };
        let tensors = normalize_checkpoint_keys(raw);
        Ok(Self {
            path,
            tensors,
            native: false,
        })
    }

    /// Whether the file is a native record (loaded whole, without a key table).
    pub fn is_native(&self) -> bool {
        self.native
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor keys (after checkpoint normalisation), sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Whether a tensor with this key exists.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// Makes the tensor `from` also available as `to` (replacing a tensor of that name), as
    /// AntMMF's `pretrained_mapping` copies a checkpoint tensor under another name. Returns
    /// whether `from` exists.
    pub fn alias(&mut self, from: &str, to: &str) -> bool {
        let Some(snapshot) = self.tensors.get(from) else {
            return false;
        };
        let renamed = with_path(snapshot, to);
        self.tensors.insert(to.to_string(), renamed);
        true
    }

    /// The stored shape of a tensor.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(|s| s.shape.to_vec())
    }

    fn data(&self, key: &str) -> Result<TensorData, ImportError> {
        let snapshot = self
            .tensors
            .get(key)
            .ok_or_else(|| ImportError::NoSuchTensor {
                path: self.path.clone(),
                key: key.to_string(),
            })?;
        snapshot.to_data().map_err(|e| ImportError::Tensor {
            path: self.path.clone(),
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    fn check_rank(&self, key: &str, data: &TensorData, rank: usize) -> Result<(), ImportError> {
        if data.shape.len() != rank {
            return Err(ImportError::Tensor {
                path: self.path.clone(),
                key: key.to_string(),
                message: format!("expected rank {rank}, found shape {:?}", data.shape),
            });
        }
        Ok(())
    }

    /// Reads one tensor as f32 (any float or integer dtype is converted).
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        key: &str,
        device: &B::Device,
    ) -> Result<Tensor<B, D>, ImportError> {
        let data = self.data(key)?;
        self.check_rank(key, &data, D)?;
        Ok(Tensor::from_data(data.convert_dtype(DType::F32), device))
    }

    /// Reads one integer tensor (ids, masks, labels; any integer dtype).
    pub fn int_tensor<B: Backend, const D: usize>(
        &self,
        key: &str,
        device: &B::Device,
    ) -> Result<Tensor<B, D, Int>, ImportError> {
        let data = self.data(key)?;
        self.check_rank(key, &data, D)?;
        Ok(Tensor::from_data(data.convert_dtype(DType::I64), device))
    }

    /// Loads the file into `module` through the family's key table.
    ///
    /// Returns the module with its parameters replaced and the report. Errors when a tensor's
    /// shape differs from its parameter's, or when parameters are missing and
    /// [`LoadOptions::allow_missing`] is off.
    pub fn load_into<B: Backend, M: Module<B>>(
        &self,
        module: M,
        keys: &KeyMap,
        options: &LoadOptions,
    ) -> Result<(M, LoadReport), ImportError> {
        if self.native {
            return self.load_native(module, keys);
        }
        let remapper = keys.remapper()?;
        let selected: Vec<TensorSnapshot> = self
            .tensors
            .iter()
            .filter_map(|(key, snapshot)| {
                let key = match &options.prefix {
                    Some(prefix) => key.strip_prefix(prefix.as_str())?,
                    None => key.as_str(),
                };
                Some(with_path(snapshot, key))
            })
            .collect();
        let selected =
            fuse_rows(selected, &keys.fusions).map_err(|(key, message)| ImportError::Tensor {
                path: self.path.clone(),
                key,
                message,
            })?;
        let (remapped, _) = remapper.remap(selected);
        let ignored_prefix = format!("{IGNORED}.");
        let mut ignored = Vec::new();
        let mut to_apply = Vec::new();
        for snapshot in remapped {
            let path = snapshot.full_path();
            match path.strip_prefix(&ignored_prefix) {
                Some(original) => ignored.push(original.to_string()),
                None => to_apply.push(snapshot),
            }
        }
        let adapter = PyTorchToBurnAdapter.chain(FloatToF32Adapter);
        let mut module = module;
        let result = module.apply(to_apply, None, Some(Box::new(adapter)), false);

        // burn-store finds a norm's `gamma`/`beta` under the file's `weight`/`bias` but only
        // marks the Burn path as visited, so those file keys come back as unused: drop them.
        let applied: std::collections::HashSet<&str> =
            result.applied.iter().map(String::as_str).collect();
        let used_under_alias = |key: &str| {
            let alias = |from: &str, to: &str| {
                key.strip_suffix(from)
                    .is_some_and(|stem| applied.contains(format!("{stem}{to}").as_str()))
            };
            alias(".weight", ".gamma") || alias(".bias", ".beta")
        };
        let mut report = LoadReport {
            source: self.path.clone(),
            family: keys.family().to_string(),
            missing: result.missing.iter().map(|(p, _)| p.clone()).collect(),
            unexpected: result
                .unused
                .iter()
                .filter(|k| !used_under_alias(k))
                .cloned()
                .collect(),
            ignored,
            ..Default::default()
        };
        report.loaded = result.applied.clone();
        report.loaded.sort();
        report.ignored.sort();
        for error in &result.errors {
            match error {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => report.shape_mismatched.push(ShapeMismatch {
                    key: path.clone(),
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                }),
                ApplyError::DTypeMismatch { path, .. }
                | ApplyError::AdapterError { path, .. }
                | ApplyError::LoadError { path, .. } => {
                    return Err(ImportError::Tensor {
                        path: self.path.clone(),
                        key: path.clone(),
                        message: error.to_string(),
                    });
                }
            }
        }
        if !report.shape_mismatched.is_empty() {
            return Err(ImportError::ShapeMismatch {
                report: Box::new(report),
            });
        }
        if !report.missing.is_empty() && !options.allow_missing {
            return Err(ImportError::Missing {
                report: Box::new(report),
            });
        }
        log::info!("{report}");
        Ok((module, report))
    }
}

impl WeightFile {
    /// Loads a native record into `module` (same structure required); every parameter counts as
    /// loaded.
    fn load_native<B: Backend, M: Module<B>>(
        &self,
        module: M,
        keys: &KeyMap,
    ) -> Result<(M, LoadReport), ImportError> {
        let device = module.devices().into_iter().next().unwrap_or_default();
        let module = module
            .load_file(self.path.clone(), &NativeRecorder::new(), &device)
            .map_err(|e| ImportError::Read {
                path: self.path.clone(),
                message: format!(
                    "native record does not fit this model (written for another config?): {e}"
                ),
            })?;
        let mut loaded: Vec<String> = module
            .collect(None, None, false)
            .iter()
            .map(|s| s.full_path())
            .collect();
        loaded.sort();
        let report = LoadReport {
            source: self.path.clone(),
            family: format!("native ({})", keys.family()),
            loaded,
            ..Default::default()
        };
        log::info!("{report}");
        Ok((module, report))
    }
}

/// Re-orders tensors that the pickle stores as non-contiguous views (burn-store 0.21 reads every
/// tensor as contiguous; see [`torch_strides`]).
fn apply_pickle_strides(
    path: &Path,
    raw: BTreeMap<String, TensorSnapshot>,
) -> Result<BTreeMap<String, TensorSnapshot>, ImportError> {
    let layouts = match torch_strides::tensor_layouts(path) {
        Ok(layouts) => layouts,
        Err(message) => {
            log::warn!(
                "{}: cannot read tensor strides ({message}); assuming contiguous tensors",
                path.display()
            );
            return Ok(raw);
        }
    };
    raw.into_iter()
        .map(|(key, snapshot)| {
            let Some(layout) = layouts.get(&key).filter(|l| !l.is_contiguous()) else {
                return Ok((key, snapshot));
            };
            let numel: usize = snapshot.shape.iter().product();
            if layout.size != snapshot.shape.to_vec() || layout.span() > numel {
                return Err(ImportError::Tensor {
                    path: path.to_path_buf(),
                    key,
                    message: format!(
                        "stored as a strided view (size {:?}, stride {:?}) that is not a \
                         permutation of its elements; re-save it with .contiguous()",
                        layout.size, layout.stride
                    ),
                });
            }
            let data_fn = snapshot.clone_data_fn();
            let layout = layout.clone();
            let restrided = TensorSnapshot::from_closure(
                Rc::new(move || Ok(layout.restride(data_fn()?))),
                snapshot.dtype,
                snapshot.shape.clone(),
                snapshot.path_stack.clone().unwrap_or_default(),
                snapshot.container_stack.clone().unwrap_or_default(),
                snapshot.tensor_id.unwrap_or_default(),
            );
            Ok((key, restrided))
        })
        .collect()
}

/// Applies [`KeyMap::with_fused_rows`]: joins each `(first, second)` pair of tensors along dim 0
/// under the `fused` key (lazily: the data is read when the tensor is applied).
fn fuse_rows(
    snapshots: Vec<TensorSnapshot>,
    fusions: &[(String, String, String)],
) -> Result<Vec<TensorSnapshot>, (String, String)> {
    if fusions.is_empty() {
        return Ok(snapshots);
    }
    let mut by_key: BTreeMap<String, TensorSnapshot> =
        snapshots.into_iter().map(|s| (s.full_path(), s)).collect();
    for (first, second, fused) in fusions {
        let firsts: Vec<String> = by_key
            .keys()
            .filter(|k| k.contains(first.as_str()))
            .cloned()
            .collect();
        for key in firsts {
            let sibling = key.replacen(first.as_str(), second, 1);
            let Some(b) = by_key.get(&sibling).cloned() else {
                continue;
            };
            let a = by_key.remove(&key).unwrap_or_else(|| b.clone());
            by_key.remove(&sibling);
            let (sa, sb) = (a.shape.to_vec(), b.shape.to_vec());
            if sa.is_empty() || sb.is_empty() || sa[1..] != sb[1..] || a.dtype != b.dtype {
                return Err((
                    key,
                    format!("cannot join with {sibling}: shapes {sa:?} and {sb:?}"),
                ));
            }
            let mut shape = sa.clone();
            shape[0] += sb[0];
            let (fa, fb) = (a.clone_data_fn(), b.clone_data_fn());
            let dtype = a.dtype;
            let out_shape = shape.clone();
            let fused_key = key.replacen(first.as_str(), fused, 1);
            let data_fn: Rc<dyn Fn() -> Result<TensorData, burn_store::TensorSnapshotError>> =
                Rc::new(move || {
                    let mut bytes = fa()?.as_bytes().to_vec();
                    bytes.extend_from_slice(fb()?.as_bytes());
                    Ok(TensorData::from_bytes_vec(bytes, out_shape.clone(), dtype))
                });
            let joined = TensorSnapshot::from_closure(
                data_fn,
                dtype,
                burn::tensor::Shape::from(shape),
                fused_key.split('.').map(str::to_string).collect(),
                a.container_stack.clone().unwrap_or_default(),
                a.tensor_id.unwrap_or_default(),
            );
            by_key.insert(fused_key, joined);
        }
    }
    Ok(by_key.into_values().collect())
}

/// A snapshot renamed to `key` (burn-store matches on the path stack).
fn with_path(snapshot: &TensorSnapshot, key: &str) -> TensorSnapshot {
    let mut snapshot = snapshot.clone();
    snapshot.path_stack = Some(key.split('.').map(str::to_string).collect());
    snapshot
}

/// Reduces a training checkpoint to its weights and strips DDP `module.` prefixes.
fn normalize_checkpoint_keys(
    raw: BTreeMap<String, TensorSnapshot>,
) -> BTreeMap<String, TensorSnapshot> {
    let has = |prefix: &str| raw.keys().any(|k| k.starts_with(prefix));
    let entry = if has("state_dict.") {
        Some("state_dict.")
    } else if has("model.") && (has("optimizer.") || has("lr_scheduler.")) {
        Some("model.")
    } else {
        None
    };
    raw.iter()
        .filter_map(|(key, snapshot)| {
            let mut key = match entry {
                Some(prefix) => key.strip_prefix(prefix)?,
                None => key.as_str(),
            };
            while let Some(rest) = key.strip_prefix("module.") {
                key = rest;
            }
            Some((key.to_string(), with_path(snapshot, key)))
        })
        .collect()
}

/// Casts f16/bf16/f64 checkpoint tensors to f32, the dtype of freshly initialised parameters.
#[derive(Debug, Clone, Default)]
struct FloatToF32Adapter;

impl ModuleAdapter for FloatToF32Adapter {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if !matches!(snapshot.dtype, DType::F16 | DType::BF16 | DType::F64) {
            return snapshot.clone();
        }
        let data_fn = snapshot.clone_data_fn();
        TensorSnapshot::from_closure(
            Rc::new(move || Ok(data_fn()?.convert_dtype(DType::F32))),
            DType::F32,
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}
