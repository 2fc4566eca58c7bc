//! Weight import: checkpoint layouts (AntMMF `model` entry, DDP `module.` prefixes, old
//! `gamma`/`beta` names, `bert.`/`vision_model.` prefixes), PyTorch pickles and the error paths.

use crate::import_support;

use std::path::{Path, PathBuf};

use antmmf_models::bert::BertConfig;
use antmmf_models::clip::ClipVisionConfig;
use antmmf_models::import::{ImportError, KeyMap, LoadOptions, WeightFile};
use import_support::{B, assert_close, asset, fixture, json};
use safetensors::SafeTensors;

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Rewrites a safetensors fixture with renamed keys (`rename` returns None to drop a key) plus
/// extra tensors copied from existing keys (`(new name, source key)`).
fn rewrite(
    source: &Path,
    name: &str,
    rename: impl Fn(&str) -> Option<String>,
    extra: &[(&str, &str)],
) -> TempFile {
    let bytes = std::fs::read(source).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .tensors()
        .into_iter()
        .filter_map(|(k, v)| rename(&k).map(|k| (k, v)))
        .collect();
    for (new, from) in extra {
        out.push((new.to_string(), tensors.tensor(from).unwrap()));
    }
    let path = std::env::temp_dir().join(format!(
        "antmmf-import-{}-{name}.safetensors",
        std::process::id()
    ));
    safetensors::serialize_to_file(out, None, &path).unwrap();
    TempFile(path)
}

fn tiny_bert() -> BertConfig {
    serde_json::from_value(json("bert_tiny.json")["config"].clone()).unwrap()
}

/// An AntMMF-style checkpoint (`model` entry next to `optimizer`, DDP `module.` prefix, old
/// `gamma`/`beta` LayerNorm names) built from fixture bert_mlm_weights.safetensors loads exactly
/// like the HF file: same report, MLM logits equal to fixture `mlm_logits` (atol 2e-4).
#[test]
fn antmmf_checkpoint_layout_loads_like_the_hf_file() {
    let device = Default::default();
    let file = rewrite(
        &fixture("bert_mlm_weights.safetensors"),
        "antmmf",
        |k| {
            let k = k
                .replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta");
            Some(format!("model.module.{k}"))
        },
        &[("optimizer.state.0.exp_avg", "cls.predictions.bias")],
    );
    let weights = WeightFile::open(&file.0).unwrap();
    assert!(weights.keys().all(|k| !k.starts_with("model.")));
    assert!(weights.contains("bert.embeddings.LayerNorm.gamma"));
    let (model, report) = weights
        .load_into(
            tiny_bert().init_with_heads::<B>(false, &device),
            &KeyMap::hf_bert_with_heads(),
            &LoadOptions::default(),
        )
        .expect("AntMMF layout loads");
    assert_eq!(report.loaded.len(), 42, "{report}");
    assert!(report.unexpected.is_empty(), "{report}");

    let io = WeightFile::open(fixture("bert_io.safetensors")).unwrap();
    let out = model.forward(
        io.int_tensor::<B, 2>("mlm_input_ids", &device).unwrap(),
        Some(io.int_tensor("token_type_ids", &device).unwrap()),
        Some(io.int_tensor("attention_mask", &device).unwrap()),
        false,
    );
    assert_close(
        "mlm_logits via AntMMF layout",
        out.mlm_logits,
        io.tensor("mlm_logits", &device).unwrap(),
        2e-4,
        0.0,
    );
}

/// A `BertModel` file (no `bert.` prefix, no heads) into the model with heads: the encoder and
/// pooler load under `bert.`, the heads are reported missing, which is an error unless allowed.
#[test]
fn missing_heads_are_an_error_unless_allowed() {
    let device = Default::default();
    let weights = WeightFile::open(fixture("bert_weights.safetensors")).unwrap();
    let err = weights
        .load_into(
            tiny_bert().init_with_heads::<B>(true, &device),
            &KeyMap::hf_bert_with_heads(),
            &LoadOptions::default(),
        )
        .map(|_| ())
        .expect_err("heads are missing");
    match &err {
        ImportError::Missing { report } => {
            assert_eq!(report.loaded.len(), 39, "{report}");
            assert_eq!(report.missing.len(), 7, "{report}");
            assert!(report.missing.iter().all(|k| k.starts_with("cls.")));
        }
        other => panic!("expected Missing, got {other}"),
    }
    assert!(err.to_string().contains("bert_weights.safetensors"));

    let (_, report) = weights
        .load_into(
            tiny_bert().init_with_heads::<B>(true, &device),
            &KeyMap::hf_bert_with_heads(),
            &LoadOptions::allow_missing(),
        )
        .expect("allowed");
    assert_eq!(report.missing.len(), 7);
}

/// A config that does not match the checkpoint (hidden 32 vs 64) is a shape-mismatch error
/// naming the file and the parameter.
#[test]
fn shape_mismatch_is_an_error() {
    let device = Default::default();
    let config = BertConfig {
        hidden_size: 32,
        ..tiny_bert()
    };
    let err = WeightFile::open(fixture("bert_weights.safetensors"))
        .unwrap()
        .load_into(
            config.init::<B>(&device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )
        .map(|_| ())
        .expect_err("shapes differ");
    let ImportError::ShapeMismatch { report } = &err else {
        panic!("expected ShapeMismatch, got {err}");
    };
    let word = report
        .shape_mismatched
        .iter()
        .find(|m| m.key == "embeddings.word_embeddings.weight")
        .expect("word embeddings mismatch reported");
    assert_eq!(
        (word.expected.clone(), word.found.clone()),
        (vec![1000, 32], vec![1000, 64])
    );
}

/// A full-CLIPModel-style file (`vision_model.` + `text_model.` keys) into the vision tower:
/// every vision key loads, the text key is reported unexpected; `LoadOptions::with_prefix`
/// selects one subtree and leaves the rest out of the report.
#[test]
fn clip_vision_from_a_full_clip_checkpoint() {
    let device = Default::default();
    let config: ClipVisionConfig =
        serde_json::from_value(json("clip_vision.json")["config"].clone()).unwrap();
    let file = rewrite(
        &fixture("clip_vision_weights.safetensors"),
        "clip-full",
        |k| Some(format!("vision_model.{k}")),
        &[(
            "text_model.final_layer_norm.weight",
            "post_layernorm.weight",
        )],
    );
    let weights = WeightFile::open(&file.0).unwrap();
    let (_, report) = weights
        .load_into(
            config.init::<B>(&device),
            &KeyMap::hf_clip_vision(),
            &LoadOptions::default(),
        )
        .unwrap();
    assert_eq!(report.loaded.len(), 39, "{report}");
    assert_eq!(report.unexpected, ["text_model.final_layer_norm.weight"]);

    // The same file as a full-CLIPModel folder (`config.json` with a nested `vision_config`).
    let dir = std::env::temp_dir().join(format!("antmmf-import-{}-clipdir", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let full_config = serde_json::json!({
        "vision_config": json("clip_vision.json")["config"].clone(),
        "text_config": {"hidden_size": 64, "num_attention_heads": 4},
    });
    std::fs::write(dir.join("config.json"), full_config.to_string()).unwrap();
    std::fs::copy(&file.0, dir.join("model.safetensors")).unwrap();
    let loaded = antmmf_models::clip::ClipVision::<B>::from_pretrained(&dir, &device);
    std::fs::remove_dir_all(&dir).unwrap();
    let (_, folder_config, report) = loaded.expect("CLIP folder loads");
    assert_eq!(folder_config, config);
    assert_eq!(report.loaded.len(), 39, "{report}");

    let (_, report) = weights
        .load_into(
            config.init::<B>(&device),
            &KeyMap::identity(),
            &LoadOptions::default().with_prefix("vision_model."),
        )
        .unwrap();
    assert_eq!(report.loaded.len(), 39, "{report}");
    assert!(report.unexpected.is_empty(), "{report}");
}

/// A legacy (pre-zip) PyTorch pickle, the real EfficientNet-Lite0 `.pth` from
/// assets/effnet: keys and shapes are read, and a tensor decodes to finite values.
#[test]
fn pytorch_pickle_is_read() {
    let device = Default::default();
    let weights =
        WeightFile::open(asset("effnet/efficientnet-lite0-57934424.pth")).expect("read .pth");
    assert_eq!(weights.shape("_conv_stem.weight"), Some(vec![32, 3, 3, 3]));
    assert_eq!(weights.shape("_fc.weight"), Some(vec![1000, 1280]));
    let fc: burn::tensor::Tensor<B, 1> = weights.tensor("_fc.bias", &device).unwrap();
    let values: Vec<f32> = fc.into_data().to_vec().unwrap();
    assert_eq!(values.len(), 1000);
    assert!(values.iter().all(|v| v.is_finite()));
}

/// Unreadable inputs are typed errors naming the file.
#[test]
fn bad_files_are_typed_errors() {
    let missing = WeightFile::open("/nonexistent/model.safetensors").unwrap_err();
    assert!(matches!(missing, ImportError::Read { .. }), "{missing}");
    let json_file = fixture("bert_tiny.json");
    let unsupported = WeightFile::open(&json_file).unwrap_err();
    assert!(
        matches!(unsupported, ImportError::UnsupportedFormat { .. }),
        "{unsupported}"
    );
    let garbage = std::env::temp_dir().join(format!(
        "antmmf-import-{}-garbage.safetensors",
        std::process::id()
    ));
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let guard = TempFile(garbage);
    let err = WeightFile::open(&guard.0).unwrap_err();
    assert!(matches!(err, ImportError::Read { .. }), "{err}");
    let io = WeightFile::open(fixture("bert_io.safetensors")).unwrap();
    let absent = io.tensor::<B, 2>("no_such_tensor", &Default::default());
    assert!(matches!(absent, Err(ImportError::NoSuchTensor { .. })));
    let wrong_rank = io.tensor::<B, 3>("input_ids", &Default::default());
    assert!(matches!(wrong_rank, Err(ImportError::Tensor { .. })));
}

/// f64 checkpoints are cast to f32 on load: an f64 copy of fixture bert_weights.safetensors
/// reproduces fixture `last_hidden_state` (atol 1e-4, rtol 1e-4).
#[test]
fn f64_checkpoints_are_cast_to_f32() {
    let device = Default::default();
    let bytes = std::fs::read(fixture("bert_weights.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let widened: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            let data: Vec<u8> = v
                .data()
                .chunks_exact(4)
                .flat_map(|c| (f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).to_le_bytes())
                .collect();
            (k, data, v.shape().to_vec())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = widened
        .iter()
        .map(|(k, d, s)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, s.clone(), d)
                .unwrap();
            (k.clone(), view)
        })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "antmmf-import-{}-f64.safetensors",
        std::process::id()
    ));
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let file = TempFile(path);
    let (bert, report) = WeightFile::open(&file.0)
        .unwrap()
        .load_into(
            tiny_bert().init::<B>(&device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )
        .expect("f64 weights load");
    assert_eq!(report.loaded.len(), 39, "{report}");
    let io = WeightFile::open(fixture("bert_io.safetensors")).unwrap();
    let out = bert.forward(
        io.int_tensor::<B, 2>("input_ids", &device).unwrap(),
        Some(io.int_tensor("token_type_ids", &device).unwrap()),
        Some(io.int_tensor("attention_mask", &device).unwrap()),
        false,
    );
    assert_close(
        "last_hidden_state from f64 weights",
        out.last_hidden_state,
        io.tensor("last_hidden_state", &device).unwrap(),
        1e-4,
        1e-4,
    );
}

/// Original Video-Swin / VIOLET key names (`backbone.layers.{i}.blocks.{j}`, `mlp.fc1/fc2`,
/// `layers.{i}.downsample`, plus an `attn_mask` buffer) built from fixture
/// swin3d_weights.safetensors load every parameter through `KeyMap::video_swin`.
#[test]
fn original_video_swin_key_names_load() {
    let device = Default::default();
    let file = rewrite(
        &fixture("swin3d_weights.safetensors"),
        "video-swin",
        |k| {
            let mut k = k
                .replace(".mlp.0.", ".mlp.fc1.")
                .replace(".mlp.3.", ".mlp.fc2.");
            for (i, stage) in ["0", "2", "4", "6"].iter().enumerate() {
                if let Some(rest) = k.strip_prefix(&format!("features.{stage}.")) {
                    k = format!("layers.{i}.blocks.{rest}");
                }
            }
            for (i, merge) in ["1", "3", "5"].iter().enumerate() {
                if let Some(rest) = k.strip_prefix(&format!("features.{merge}.")) {
                    k = format!("layers.{i}.downsample.{rest}");
                }
            }
            // The original code has no classification head in the backbone.
            (!k.starts_with("head.")).then(|| format!("backbone.{k}"))
        },
        &[("backbone.layers.0.blocks.1.attn_mask", "norm.weight")],
    );
    let c = &json("swin3d.json")["config"];
    let config = antmmf_models::video_swin::VideoSwinConfig {
        embed_dim: c["embed_dim"].as_u64().unwrap() as usize,
        depths: serde_json::from_value(c["depths"].clone()).unwrap(),
        num_heads: serde_json::from_value(c["num_heads"].clone()).unwrap(),
        num_classes: 0,
        ..antmmf_models::video_swin::VideoSwinConfig::swin3d_t()
    };
    let (_, report) = WeightFile::open(&file.0)
        .unwrap()
        .load_into(
            config.init::<B>(&device),
            &KeyMap::video_swin(),
            &LoadOptions::default(),
        )
        .expect("original Video-Swin names load");
    assert_eq!(report.loaded.len(), 119, "{report}");
    assert!(report.unexpected.is_empty(), "{report}");
    assert_eq!(report.ignored, ["layers.0.blocks.1.attn_mask"]);
}
