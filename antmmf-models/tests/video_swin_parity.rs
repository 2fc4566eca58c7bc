//! Video Swin parity with torchvision 0.29 `SwinTransformer3d` (fixtures/README.md section 1).

use crate::import_support;

use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use antmmf_models::video_swin::{VideoSwin, VideoSwinConfig};
use burn::tensor::Tensor;
use import_support::{B, assert_close, fixture, json};

/// The fixture model: Swin-T blocks with embed 16, 10 classes.
fn fixture_config() -> VideoSwinConfig {
    let c = &json("swin3d.json")["config"];
    let arr3 = |k: &str| -> [usize; 3] { serde_json::from_value(c[k].clone()).unwrap() };
    VideoSwinConfig {
        patch_size: arr3("patch_size"),
        embed_dim: c["embed_dim"].as_u64().unwrap() as usize,
        depths: serde_json::from_value(c["depths"].clone()).unwrap(),
        num_heads: serde_json::from_value(c["num_heads"].clone()).unwrap(),
        window_size: arr3("window_size"),
        mlp_ratio: c["mlp_ratio"].as_f64().unwrap(),
        num_classes: c["num_classes"].as_u64().unwrap() as usize,
        ..VideoSwinConfig::swin3d_t()
    }
}

fn load_model() -> VideoSwin<B> {
    let device = Default::default();
    let (model, report) = WeightFile::open(fixture("swin3d_weights.safetensors"))
        .unwrap()
        .load_into(
            fixture_config().init::<B>(&device),
            &KeyMap::torchvision_swin3d(),
            &LoadOptions::default(),
        )
        .expect("load swin3d fixture weights");
    assert_eq!(report.loaded.len(), 121, "{report}");
    assert!(report.unexpected.is_empty(), "{report}");
    model
}

/// Compares every tensor stored for `case` (patch_embed, features.*, norm, pooled, logits),
/// atol 1e-4, rtol 1e-4.
fn check_case(model: &VideoSwin<B>, case: &serde_json::Value) {
    let device = Default::default();
    let name = case["name"].as_str().unwrap();
    let io = WeightFile::open(fixture(case["io_file"]["file"].as_str().unwrap())).unwrap();
    let key = |k: &str| format!("{name}.{k}");
    let input: Tensor<B, 5> = io.tensor(&key("input"), &device).unwrap();
    let features = model.forward_features(input);
    let pooled = VideoSwin::pool(features.norm.clone());
    let logits = model.head.as_ref().unwrap().forward(pooled.clone());
    let mut compared = 0;
    // Pipeline order, so the first failure names the first diverging stage.
    let mut stored_names: Vec<&String> = case["tensors"].as_object().unwrap().keys().collect();
    stored_names.sort_by_key(|k| match k.as_str() {
        "patch_embed" => 0,
        "norm" => 100,
        "pooled" => 101,
        "logits" => 102,
        f => {
            1 + f
                .trim_start_matches("features.")
                .parse::<usize>()
                .unwrap_or(98)
        }
    });
    for stored in stored_names {
        if stored == "input" || !io.contains(&key(stored)) {
            continue;
        }
        let what = format!("{name} {stored}");
        let tol = (1e-4, 1e-4);
        match stored.as_str() {
            "pooled" => {
                assert_close(
                    &what,
                    pooled.clone(),
                    io.tensor(&key(stored), &device).unwrap(),
                    tol.0,
                    tol.1,
                );
            }
            "logits" => {
                assert_close(
                    &what,
                    logits.clone(),
                    io.tensor(&key(stored), &device).unwrap(),
                    tol.0,
                    tol.1,
                );
            }
            other => {
                let ours = match other {
                    "patch_embed" => features.patch_embed.clone(),
                    "norm" => features.norm.clone(),
                    f => {
                        let i: usize = f
                            .strip_prefix("features.")
                            .and_then(|i| i.parse().ok())
                            .unwrap_or_else(|| panic!("unknown stored tensor {f}"));
                        if i.is_multiple_of(2) {
                            features.stages[i / 2].clone()
                        } else {
                            features.merged[i / 2].clone()
                        }
                    }
                };
                assert_close(
                    &what,
                    ours,
                    io.tensor(&key(stored), &device).unwrap(),
                    tol.0,
                    tol.1,
                );
            }
        }
        compared += 1;
    }
    assert!(compared >= 5, "{name}: only {compared} tensors compared");
}

/// Every case listed in fixture swin3d.json, every stored tensor (atol 1e-4, rtol 1e-4). The
/// largest case (b1_t16_112x112) takes well under a second on Flex, so all run by default.
#[test]
fn swin3d_matches_torchvision_on_every_case() {
    let model = load_model();
    let cases = json("swin3d.json")["cases"].as_array().unwrap().clone();
    assert!(!cases.is_empty());
    for case in &cases {
        check_case(&model, case);
    }
}

/// The relative position index the module derives equals torchvision's stored buffer
/// (`aux.relative_position_index` in swin3d_io_b2_t8_64x64.safetensors, exact).
#[test]
fn relative_position_index_matches_torchvision_buffer() {
    let device = Default::default();
    let io = WeightFile::open(fixture("swin3d_io_b2_t8_64x64.safetensors")).unwrap();
    let stored: Vec<i64> = io
        .int_tensor::<B, 2>("aux.relative_position_index", &device)
        .unwrap()
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    let ours = antmmf_models::video_swin::relative_position_index([8, 7, 7]);
    assert_eq!(ours, stored);
}

/// VIOLET-style temporal stride 1 keeps T (8 frames in, 8 out) and reaches H/32 with
/// 8x the embed width.
#[test]
fn violet_variant_keeps_frames() {
    let device = Default::default();
    let config = VideoSwinConfig {
        embed_dim: 16,
        depths: vec![1, 1, 1, 1],
        num_heads: vec![2, 4, 8, 16],
        ..VideoSwinConfig::violet()
    };
    let model = config.init::<B>(&device);
    let video = Tensor::<B, 5>::zeros([1, 3, 8, 64, 64], &device);
    let features = model.forward_features(video);
    assert_eq!(features.patch_embed.dims(), [1, 8, 16, 16, 16]);
    assert_eq!(features.norm.dims(), [1, 8, 2, 2, 128]);
    assert_eq!(config.out_dim(), 128);
    assert_eq!(VideoSwinConfig::violet().out_dim(), 768);
}

/// The presets validate; inconsistent head counts are a typed error.
#[test]
fn config_validation() {
    for config in [
        VideoSwinConfig::swin3d_t(),
        VideoSwinConfig::swin3d_s(),
        VideoSwinConfig::swin3d_b(),
        VideoSwinConfig::violet(),
        fixture_config(),
    ] {
        config.validate().expect("preset is valid");
    }
    let bad = VideoSwinConfig {
        num_heads: vec![5, 6, 12, 24],
        ..VideoSwinConfig::swin3d_t()
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("stage 0"), "{err}");
    let short = VideoSwinConfig {
        num_heads: vec![3, 6],
        ..VideoSwinConfig::swin3d_t()
    };
    assert!(short.validate().is_err());
}
