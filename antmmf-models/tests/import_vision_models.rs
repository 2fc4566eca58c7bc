//! Other vision backbones and their checkpoint key tables: EfficientNet-Lite0 with real weights
//! (fixtures/README.md section 9), PVT v2 and ResNet (no PyTorch fixtures yet: structure and
//! weight-import round trips only). One test binary for all three keeps link time down.

use crate::import_support;

use antmmf_models::efficientnet::EfficientNetLiteConfig;
use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use antmmf_models::pvt_v2::PvtV2Config;
use antmmf_models::resnet::ResNetConfig;
use burn::tensor::{Distribution, Tensor};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use import_support::{B, assert_close, asset, fixture, json};

// ---- EfficientNet-Lite0: real weights (assets/effnet, a legacy PyTorch pickle) against PyPI
// `efficientnet-lite-pytorch`.
/// Fixture efficientnet_lite0_reference.{json,safetensors}: for every image the JSON lists,
/// logits within atol 1e-3 and the top-5 class indices exact.
#[test]
fn efficientnet_lite0_matches_reference_logits_and_top5() {
    let device = Default::default();
    let (model, report) = WeightFile::open(asset("effnet/efficientnet-lite0-57934424.pth"))
        .expect("read EfficientNet-Lite0 weights")
        .load_into(
            EfficientNetLiteConfig::lite(0).init::<B>(&device),
            &KeyMap::lukemelas_efficientnet(),
            &LoadOptions::default(),
        )
        .expect("load EfficientNet-Lite0");
    assert!(report.unexpected.is_empty(), "{report}");

    let reference = json("efficientnet_lite0_reference.json");
    let io = WeightFile::open(fixture("efficientnet_lite0_reference.safetensors")).unwrap();
    let images = reference["images"].as_object().unwrap();
    assert!(!images.is_empty());
    for (file, expected) in images {
        let name = file.split('.').next().unwrap();
        let input: Tensor<B, 4> = io.tensor(&format!("{name}.input"), &device).unwrap();
        let logits = model.forward(input);
        assert_close(
            &format!("{name} logits"),
            logits.clone(),
            io.tensor(&format!("{name}.logits"), &device).unwrap(),
            1e-3,
            0.0,
        );
        let values: Vec<f32> = logits.into_data().to_vec().unwrap();
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let want: Vec<usize> = expected["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t[0].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(&order[..5], want.as_slice(), "{name}: top-5 classes");
    }
}

// ---- PVT v2: stage shapes and weight import under upstream (whai362/PVT) key names.
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

// ---- ResNet-50: stage shapes and weight import under torchvision key names.
/// A resnet50 exported under torchvision names (`layer1.0.downsample.0.weight`, BatchNorm
/// `weight/bias/running_mean/running_var`, `num_batches_tracked`) loads into a fresh model through
/// `KeyMap::torchvision_resnet`: 267 tensors (torchvision's 320-entry resnet50 state_dict minus
/// its 53 `num_batches_tracked` counters), identical outputs (atol 0), and stage shapes of strides
/// 4/8/16/32.
#[test]
fn resnet50_torchvision_names_round_trip_and_shapes() {
    let device = Default::default();
    let config = ResNetConfig::resnet50();
    let source = config.init::<B>(&device);
    let snapshots = source.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    let torchvision = |path: &str| -> String {
        path.replace(".downsample.conv.", ".downsample.0.")
            .replace(".downsample.bn.", ".downsample.1.")
            .replace(".gamma", ".weight")
            .replace(".beta", ".bias")
    };
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = snapshots
        .iter()
        .map(|s| {
            let data = s.to_data().unwrap().convert::<f32>();
            let key = torchvision(&s.full_path());
            (
                key,
                data.as_bytes().to_vec(),
                data.shape.to_vec(),
                safetensors::Dtype::F32,
            )
        })
        .collect();
    assert_eq!(tensors.len(), 267);
    tensors.push((
        "bn1.num_batches_tracked".into(),
        0i64.to_le_bytes().to_vec(),
        vec![],
        safetensors::Dtype::I64,
    ));
    assert!(
        tensors
            .iter()
            .any(|(k, ..)| k == "layer2.0.downsample.0.weight")
    );
    assert!(
        tensors
            .iter()
            .any(|(k, ..)| k == "layer4.2.bn3.running_var")
    );
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, d, s, t)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*t, s.clone(), d).unwrap(),
            )
        })
        .collect();
    let path = std::env::temp_dir().join(format!(
        "antmmf-import-{}-resnet.safetensors",
        std::process::id()
    ));
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let loaded = WeightFile::open(&path).and_then(|w| {
        w.load_into(
            config.init::<B>(&device),
            &KeyMap::torchvision_resnet(),
            &LoadOptions::default(),
        )
    });
    std::fs::remove_file(&path).unwrap();
    let (target, report) = loaded.expect("torchvision names load");
    assert_eq!(report.loaded.len(), 267, "{report}");
    assert!(report.unexpected.is_empty(), "{report}");
    assert_eq!(report.ignored, ["bn1.num_batches_tracked"]);

    let images = Tensor::<B, 4>::random([1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let maps = target.forward_features(images.clone());
    let dims: Vec<[usize; 4]> = maps.iter().map(|m| m.dims()).collect();
    assert_eq!(
        dims,
        [
            [1, 256, 16, 16],
            [1, 512, 8, 8],
            [1, 1024, 4, 4],
            [1, 2048, 2, 2]
        ]
    );
    let (want, _) = source.forward(images.clone());
    let (got, logits) = target.forward(images);
    assert_eq!(logits.unwrap().dims(), [1, 1000]);
    assert_close("resnet round trip pooled", got, want, 0.0, 0.0);
}
