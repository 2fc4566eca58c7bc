//! VIOLET-style Video Swin parity (fixtures/README.md section 12): torchvision 0.29
//! `SwinTransformer3d` blocks behind VIOLET's patch embedding (temporal stride 1, one frame of end
//! padding) against [`VideoSwinConfig::violet`]'s `temporal_stride_one`. Every stored stage,
//! atol 1e-4, rtol 1e-4.

use crate::import_support;

use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use antmmf_models::video_swin::{VideoSwin, VideoSwinConfig};
use burn::tensor::Tensor;
use import_support::{B, assert_close, fixture, json};

/// Tolerance of every comparison (fixtures/README.md: model activations).
const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-4;

/// The fixture model: the VIOLET variant with the fixture's widths, depths and head.
fn fixture_config(meta: &serde_json::Value) -> VideoSwinConfig {
    let c = &meta["config"];
    let get = |k: &str| c[k].clone();
    let config = VideoSwinConfig {
        patch_size: serde_json::from_value(get("patch_size")).unwrap(),
        embed_dim: c["embed_dim"].as_u64().unwrap() as usize,
        depths: serde_json::from_value(get("depths")).unwrap(),
        num_heads: serde_json::from_value(get("num_heads")).unwrap(),
        window_size: serde_json::from_value(get("window_size")).unwrap(),
        mlp_ratio: c["mlp_ratio"].as_f64().unwrap(),
        num_classes: c["num_classes"].as_u64().unwrap() as usize,
        ..VideoSwinConfig::violet()
    };
    assert!(config.temporal_stride_one);
    assert_eq!(meta["temporal_stride_one"].as_bool(), Some(true));
    config
}

/// What `stored` (a tensor name of the fixture) is in our model's outputs.
fn ours(
    features: &antmmf_models::video_swin::VideoSwinFeatures<B>,
    pooled: &Tensor<B, 2>,
    logits: &Tensor<B, 2>,
    stored: &str,
) -> Option<Vec<f32>> {
    let flat = |t: Tensor<B, 5>| t.into_data().convert::<f32>().to_vec().unwrap();
    Some(match stored {
        "patch_embed" => flat(features.patch_embed.clone()),
        "norm" => flat(features.norm.clone()),
        "pooled" => pooled.clone().into_data().to_vec().unwrap(),
        "logits" => logits.clone().into_data().to_vec().unwrap(),
        f => {
            let i: usize = f.strip_prefix("features.")?.parse().ok()?;
            if i.is_multiple_of(2) {
                flat(features.stages[i / 2].clone())
            } else {
                flat(features.merged[i / 2].clone())
            }
        }
    })
}

/// Fixture violet_swin.json: every case, every stored tensor (patch_embed, features.0..6,
/// norm, pooled, logits) in pipeline order, atol 1e-4, rtol 1e-4; T is preserved.
#[test]
fn violet_swin_matches_torchvision_blocks_on_every_stage() {
    let device = Default::default();
    let meta = json("violet_swin.json");
    let (model, report): (VideoSwin<B>, _) =
        WeightFile::open(fixture(meta["weights_file"]["file"].as_str().unwrap()))
            .unwrap()
            .load_into(
                fixture_config(&meta).init::<B>(&device),
                &KeyMap::torchvision_swin3d(),
                &LoadOptions::default(),
            )
            .expect("load violet_swin fixture weights");
    assert_eq!(
        report.loaded.len(),
        meta["num_weight_tensors"].as_u64().unwrap() as usize,
        "{report}"
    );
    assert!(report.unexpected.is_empty(), "{report}");
    let io = WeightFile::open(fixture(meta["io_file"]["file"].as_str().unwrap())).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let key = |k: &str| format!("{name}.{k}");
        let input: Tensor<B, 5> = io.tensor(&key("input"), &device).unwrap();
        let frames = input.dims()[2];
        let features = model.forward_features(input);
        assert_eq!(
            features.patch_embed.dims()[1],
            frames,
            "{name}: T preserved"
        );
        let pooled = VideoSwin::pool(features.norm.clone());
        let logits = model.head.as_ref().unwrap().forward(pooled.clone());
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
        let mut compared = 0;
        for stored in stored_names {
            if stored == "input" {
                continue;
            }
            let got = ours(&features, &pooled, &logits, stored)
                .unwrap_or_else(|| panic!("unknown stored tensor {stored}"));
            let expected: Tensor<B, 1> = io
                .tensor::<B, 5>(&key(stored), &device)
                .map(|t| t.flatten(0, 4))
                .or_else(|_| {
                    io.tensor::<B, 2>(&key(stored), &device)
                        .map(|t| t.flatten(0, 1))
                })
                .unwrap();
            assert_close(
                &format!("violet_swin {name} {stored}"),
                Tensor::<B, 1>::from_data(
                    burn::tensor::TensorData::new(got.clone(), [got.len()]),
                    &device,
                ),
                expected,
                ATOL,
                RTOL,
            );
            compared += 1;
        }
        assert_eq!(
            compared, 11,
            "{name}: patch_embed, features.0..6, norm, pooled, logits"
        );
    }
}
