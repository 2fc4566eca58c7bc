//! PVT v2 and ResNet parity with PyTorch references (fixtures/README.md sections 10 and 11):
//! transformers' `PvtV2Model` (pvt_v2_b2's structure at 1/8 width) through
//! [`KeyMap::hf_pvt_v2`], and torchvision's ResNet-50 code (at 1/8 width) through
//! [`KeyMap::torchvision_resnet`]. Every stage output the fixtures store, atol 1e-4, rtol 1e-4.

use crate::import_support;

use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use antmmf_models::pvt_v2::{PvtV2, PvtV2Config};
use antmmf_models::resnet::{ResNet, ResNetConfig};
use burn::tensor::Tensor;
use import_support::{B, assert_close, fixture, json};

/// Tolerance of every comparison in this file (fixtures/README.md: model activations).
const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-4;

fn usizes(v: &serde_json::Value) -> Vec<usize> {
    serde_json::from_value(v.clone()).expect("list of sizes")
}

/// The fixture's `PvtV2Config` (transformers names) as ours.
fn pvt_config(meta: &serde_json::Value) -> PvtV2Config {
    let c = &meta["config"];
    PvtV2Config {
        in_channels: c["num_channels"].as_u64().unwrap() as usize,
        embed_dims: usizes(&c["hidden_sizes"]),
        num_heads: usizes(&c["num_attention_heads"]),
        mlp_ratios: usizes(&c["mlp_ratios"]),
        depths: usizes(&c["depths"]),
        sr_ratios: usizes(&c["sr_ratios"]),
        qkv_bias: c["qkv_bias"].as_bool().unwrap(),
        layer_norm_eps: c["layer_norm_eps"].as_f64().unwrap(),
        num_classes: 0,
    }
}

fn load_pvt(meta: &serde_json::Value) -> PvtV2<B> {
    let device = Default::default();
    let config = pvt_config(meta);
    config.validate().expect("fixture config is valid");
    let (model, report) = WeightFile::open(fixture("pvt_v2_weights.safetensors"))
        .unwrap()
        .load_into(
            config.init::<B>(&device),
            &KeyMap::hf_pvt_v2(),
            &LoadOptions::default(),
        )
        .expect("load PVT v2 fixture weights");
    assert!(report.unexpected.is_empty(), "{report}");
    assert!(report.missing.is_empty(), "{report}");
    // key and value are fused into one kv tensor per block.
    let blocks: usize = usizes(&meta["config"]["depths"]).iter().sum();
    let stored = meta["num_weight_tensors"].as_u64().unwrap() as usize;
    assert_eq!(report.loaded.len(), stored - 2 * blocks, "{report}");
    model
}

/// Fixture pvt_v2.json: for every case, `hidden_states.{0..3}` (each stage after its LayerNorm,
/// `[B, C, H, W]`) and `last_hidden_state`, atol 1e-4, rtol 1e-4.
#[test]
fn pvt_v2_matches_transformers_on_every_stage() {
    let device = Default::default();
    let meta = json("pvt_v2.json");
    let model = load_pvt(&meta);
    let io = WeightFile::open(fixture(meta["io_file"]["file"].as_str().unwrap())).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let key = |k: &str| format!("{name}.{k}");
        let input: Tensor<B, 4> = io.tensor(&key("input"), &device).unwrap();
        let maps = model.forward_features(input);
        let mut compared = 0;
        for stored in case["tensors"].as_object().unwrap().keys() {
            let ours = match stored.as_str() {
                "input" => continue,
                "last_hidden_state" => maps.last().unwrap().clone(),
                s => {
                    let i: usize = s
                        .strip_prefix("hidden_states.")
                        .and_then(|i| i.parse().ok())
                        .unwrap_or_else(|| panic!("unknown stored tensor {s}"));
                    maps[i].clone()
                }
            };
            assert_close(
                &format!("pvt_v2 {name} {stored}"),
                ours,
                io.tensor(&key(stored), &device).unwrap(),
                ATOL,
                RTOL,
            );
            compared += 1;
        }
        assert_eq!(compared, maps.len() + 1, "{name}: stages compared");
    }
}

fn load_resnet(meta: &serde_json::Value) -> ResNet<B> {
    let device = Default::default();
    let c = &meta["config"];
    let layers = usizes(&c["layers"]);
    let config = ResNetConfig {
        layers: [layers[0], layers[1], layers[2], layers[3]],
        num_classes: c["num_classes"].as_u64().unwrap() as usize,
        base_width: c["base_width"].as_u64().unwrap() as usize,
        ..ResNetConfig::resnet50()
    };
    let (model, report) = WeightFile::open(fixture("resnet50_weights.safetensors"))
        .unwrap()
        .load_into(
            config.init::<B>(&device),
            &KeyMap::torchvision_resnet(),
            &LoadOptions::default(),
        )
        .expect("load ResNet fixture weights");
    assert!(report.unexpected.is_empty(), "{report}");
    // torchvision's resnet50 state_dict: 320 entries, 53 of them num_batches_tracked.
    assert_eq!(report.loaded.len(), 267, "{report}");
    assert_eq!(report.ignored.len(), 53, "{report}");
    model
}

/// Fixture resnet50.json: for every case, `layer1..layer4` (`[B, C, H, W]`), `pooled` and
/// `logits`, atol 1e-4, rtol 1e-4 (BatchNorm in eval mode with the stored running statistics).
#[test]
fn resnet50_matches_torchvision_on_every_stage() {
    let device = Default::default();
    let meta = json("resnet50.json");
    let model = load_resnet(&meta);
    let io = WeightFile::open(fixture(meta["io_file"]["file"].as_str().unwrap())).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let key = |k: &str| format!("{name}.{k}");
        let input: Tensor<B, 4> = io.tensor(&key("input"), &device).unwrap();
        let maps = model.forward_features(input.clone());
        let (pooled, logits) = model.forward(input);
        let mut compared = 0;
        for stored in case["tensors"].as_object().unwrap().keys() {
            let stored_key = key(stored);
            let what = format!("resnet50 {name} {stored}");
            match stored.as_str() {
                // The stem is internal to forward_features; layer1 covers it.
                "input" | "stem" => continue,
                "pooled" => {
                    let expected = io.tensor(&stored_key, &device).unwrap();
                    assert_close(&what, pooled.clone(), expected, ATOL, RTOL)
                }
                "logits" => {
                    let logits = logits.clone().expect("fixture model has a classifier");
                    let expected = io.tensor(&stored_key, &device).unwrap();
                    assert_close(&what, logits, expected, ATOL, RTOL)
                }
                s => {
                    let i: usize = s
                        .strip_prefix("layer")
                        .and_then(|i| i.parse().ok())
                        .unwrap_or_else(|| panic!("unknown stored tensor {s}"));
                    let expected = io.tensor(&stored_key, &device).unwrap();
                    assert_close(&what, maps[i - 1].clone(), expected, ATOL, RTOL)
                }
            };
            compared += 1;
        }
        assert_eq!(compared, 6, "{name}: layer1..4, pooled, logits");
    }
}
