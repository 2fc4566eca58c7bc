//! PVT v2: stage shapes and weight import under upstream (whai362/PVT) key names. There is no
//! PyTorch reference fixture for PVT yet, so these tests check structure, not numerics.

mod import_support;

use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use antmmf_models::pvt_v2::PvtV2Config;
use burn::tensor::{Distribution, Tensor};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use import_support::{B, assert_close};

/// pvt_v2_b0 on a 64x64 image: strides 4/8/16/32 with widths 32/64/160/256.
#[test]
fn pvt_v2_b0_stage_shapes() {
    let device = Default::default();
    let config = PvtV2Config::b0();
    config.validate().unwrap();
    let model = config.init::<B>(&device);
    let images = Tensor::<B, 4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let maps = model.forward_features(images.clone());
    let dims: Vec<[usize; 4]> = maps.iter().map(|m| m.dims()).collect();
    assert_eq!(
        dims,
        [
            [2, 32, 16, 16],
            [2, 64, 8, 8],
            [2, 160, 4, 4],
            [2, 256, 2, 2]
        ]
    );
    let (pooled, logits) = model.forward(images);
    assert_eq!(pooled.dims(), [2, 256]);
    assert_eq!(logits.unwrap().dims(), [2, 1000]);
    assert!(PvtV2Config::b2().validate().is_ok());
    let bad = PvtV2Config {
        num_heads: vec![3, 2, 5, 8],
        ..PvtV2Config::b0()
    };
    assert!(bad.validate().is_err());
}

/// A b0 model exported under upstream names (`patch_embed1`, `block1.0.attn.sr`,
/// `mlp.dwconv.dwconv`, PyTorch `[out, in]` Linear layout) loads into a fresh model through
/// `KeyMap::pvt_v2`: every parameter loads and the outputs are identical (atol 0).
#[test]
fn pvt_v2_upstream_key_names_round_trip() {
    let device = Default::default();
    let config = PvtV2Config::b0();
    let source = config.init::<B>(&device);
    let snapshots = source.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    let upstream = |path: &str| -> String {
        let mut key = path.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.");
        for s in 0..4 {
            for (ours, theirs) in [
                ("patch_embed", "patch_embed"),
                ("blocks", "block"),
                ("norm", "norm"),
            ] {
                let prefix = format!("stages.{s}.{ours}.");
                if let Some(rest) = key.strip_prefix(&prefix) {
                    key = format!("{theirs}{}.{rest}", s + 1);
                }
            }
        }
        key.replace(".gamma", ".weight").replace(".beta", ".bias")
    };
    let tensors: Vec<(String, Vec<u8>, Vec<usize>)> = snapshots
        .iter()
        .map(|s| {
            let data = s.to_data().unwrap().convert::<f32>();
            (
                upstream(&s.full_path()),
                data.as_bytes().to_vec(),
                data.shape.to_vec(),
            )
        })
        .collect();
    assert!(
        tensors
            .iter()
            .any(|(k, _, _)| k == "block1.0.attn.sr.weight")
    );
    assert!(
        tensors
            .iter()
            .any(|(k, _, _)| k == "block4.1.mlp.dwconv.dwconv.weight")
    );
    assert!(
        tensors
            .iter()
            .any(|(k, _, _)| k == "patch_embed1.norm.weight")
    );
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, d, s)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                .unwrap();
            (k.clone(), view)
        })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "antmmf-import-{}-pvt.safetensors",
        std::process::id()
    ));
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let loaded = WeightFile::open(&path).and_then(|w| {
        w.load_into(
            config.init::<B>(&device),
            &KeyMap::pvt_v2(),
            &LoadOptions::default(),
        )
    });
    std::fs::remove_file(&path).unwrap();
    let (target, report) = loaded.expect("upstream names load");
    assert_eq!(report.loaded.len(), snapshots.len(), "{report}");
    assert!(report.unexpected.is_empty(), "{report}");

    let images = Tensor::<B, 4>::random([1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let (want, _) = source.forward(images.clone());
    let (got, _) = target.forward(images);
    assert_close("pvt round trip pooled", got, want, 0.0, 0.0);
}
