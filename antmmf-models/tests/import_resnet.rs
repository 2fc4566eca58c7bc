//! ResNet-50: stage shapes and weight import under torchvision key names. There is no PyTorch
//! reference fixture for ResNet yet, so these tests check structure, not numerics.

mod import_support;

use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use antmmf_models::resnet::ResNetConfig;
use burn::tensor::{Distribution, Tensor};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use import_support::{B, assert_close};

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
