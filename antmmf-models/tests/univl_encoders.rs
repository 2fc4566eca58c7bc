//! UniVL with AntMMF's per-frame image encoders, `BatchEfficientNetImageEncoder` (EfficientNet-Lite)
//! and `DetrBatchPVTImageEncoder` (PVT v2 + `output_proj`): built from YAML and typed configs,
//! clip tokens and L1 embeddings, the grid against the backbone's own `forward_features` (and,
//! for PVT, against transformers' activations in fixtures/pvt_v2_*), pretrained weights from
//! `model_path` (real EfficientNet-Lite0 weights, whai362 and transformers PVT layouts), config
//! errors naming the key, and the ported `configs/**/*pvt*.yml`.

use crate::import_support;

use std::path::{Path, PathBuf};

use antmmf_core::{Config, ConfigSources};
use antmmf_models::efficientnet::EfficientNetLiteConfig;
use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use antmmf_models::pvt_v2::PvtV2Config;
use antmmf_models::univl::config::{
    EfficientNetParams, ImageEncoderConfig, PoolType, PvtParams, StageFlags,
};
use antmmf_models::univl::{Univl, UnivlConfig, VisualBackbone};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use import_support::{B, assert_close, asset, fixture, json};

const HIDDEN: usize = 32;

/// A 2-layer BERT of width 32 with `encoder` as the visual backbone, no MoCo.
fn tiny(encoder: ImageEncoderConfig) -> UnivlConfig {
    UnivlConfig::small(HIDDEN, 2, 4, 120)
        .with_image_encoder(encoder)
        .with_moco_queues(None)
}

/// The `model_attributes.univl` YAML of [`tiny`]'s text side, with `image_encoder` appended.
fn yaml_with_encoder(encoder: &str) -> String {
    format!(
        "model_attributes:\n  univl:\n    hidden_size: {HIDDEN}\n    with_moco: false\n    \
         text_encoder:\n      params:\n        hidden_size: {HIDDEN}\n        num_hidden_layers: 2\n        \
         num_attention_heads: 4\n        intermediate_size: 64\n        vocab_size: 120\n        \
         max_position_embeddings: 64\n        pretrained: false\n    image_encoder:\n{encoder}"
    )
}

/// Loads `text` as a config file named `name` (in the test's temporary folder).
fn load_yaml(name: &str, text: &str) -> Result<Config, antmmf_core::ConfigError> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("univl_encoders");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    Config::load(&ConfigSources {
        config: Some(path),
        ..Default::default()
    })
}

fn load_config(path: &Path) -> Config {
    Config::load(&ConfigSources {
        config: Some(path.to_path_buf()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_clips<Bk: Backend>(b: usize, c: usize, device: &Bk::Device) -> Tensor<Bk, 2, Int> {
    Tensor::ones([b, c], device)
}

fn to_vec<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// The grid the model's backbone produces for `video` (`[B, T, h, w, C]`).
fn grid(model: &Univl<B>, video: Tensor<B, 5>) -> Tensor<B, 5> {
    model.visual.backbone.grid(video).expect("grid")
}

/// `[N, C, h, w]` maps of `N = B * T` frames as the channels-last grid `[B, T, h, w, C]`.
fn as_grid(maps: Tensor<B, 4>, b: usize, t: usize) -> Tensor<B, 5> {
    let [_, c, h, w] = maps.dims();
    maps.reshape([b, t, c, h, w]).permute([0, 1, 3, 4, 2])
}

/// Clip tokens by hand: the mean of each clip's frames and cells, times `img_proj` if any.
fn clip_tokens_by_hand(model: &Univl<B>, grid: Tensor<B, 5>, n_clips: usize) -> Tensor<B, 3> {
    let [b, t, h, w, d] = grid.dims();
    let pooled = grid
        .reshape([b, n_clips, (t / n_clips) * h * w, d])
        .mean_dim(2)
        .reshape([b, n_clips, d]);
    match &model.img_proj {
        Some(p) => {
            let p = p.val();
            let out = p.dims()[1];
            pooled
                .reshape([b * n_clips, d])
                .matmul(p)
                .reshape([b, n_clips, out])
        }
        None => pooled,
    }
}

/// Clip tokens `[B, n_clips, hidden]` equal to the hand-pooled grid, L1 embeddings of unit norm.
fn check_video_outputs(model: &Univl<B>, video: Tensor<B, 5>, n_clips: usize, what: &str) {
    let device = video.device();
    let b = video.dims()[0];
    let out = model
        .encode_video(video.clone(), all_clips(b, n_clips, &device))
        .expect("encode_video");
    assert_eq!(out.clip_tokens.dims(), [b, n_clips, HIDDEN], "{what}");
    assert_eq!(out.l1.dims(), [b, n_clips, HIDDEN], "{what}");
    let expected = clip_tokens_by_hand(model, grid(model, video), n_clips);
    assert_close(
        &format!("{what}: clip tokens vs pooled grid"),
        out.clip_tokens,
        expected,
        1e-5,
        1e-4,
    );
    let norms = out.l1.powf_scalar(2.0).sum_dim(2).sqrt();
    for n in to_vec(norms) {
        assert!((n - 1.0).abs() < 1e-5, "{what}: L1 embedding norm {n}");
    }
}

/// A 1x1 convolution `[N, C_in, h, w] -> [N, C_out, h, w]` computed by hand from the weights of
/// `output_proj` (`weight [C_out, C_in, 1, 1]`, `bias [C_out]`).
fn conv1x1_by_hand(
    maps: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    let [n, c, h, w] = maps.dims();
    let out = weight.dims()[0];
    let flat = maps.permute([0, 2, 3, 1]).reshape([n * h * w, c]);
    let mut y = flat.matmul(weight.reshape([out, c]).transpose());
    if let Some(bias) = bias {
        y = y + bias.reshape([1, out]);
    }
    y.reshape([n, h, w, out]).permute([0, 3, 1, 2])
}

/// The PVT encoder's grid by hand: its backbone's last stage, then [`conv1x1_by_hand`].
fn pvt_grid_by_hand(model: &Univl<B>, video: Tensor<B, 5>) -> Tensor<B, 5> {
    let VisualBackbone::Pvt(pvt) = &model.visual.backbone else {
        panic!("expected the PVT backbone");
    };
    let [b, t, c, h, w] = video.dims();
    let last = pvt
        .pvt
        .forward_features(video.reshape([b * t, c, h, w]))
        .pop()
        .unwrap();
    let proj = &pvt.output_proj;
    let maps = conv1x1_by_hand(last, proj.weight.val(), proj.bias.as_ref().map(|b| b.val()));
    as_grid(maps, b, t)
}

// ---- BatchEfficientNetImageEncoder

/// From YAML: `efficientnet-lite0`, `num_output_features: -1`. Two videos of 2 clips x 2 frames
/// of 64x64: the grid is EfficientNet-Lite's own `forward_features` of the 8 frames, channels
/// last (`[2, 4, 2, 2, 1280]`, atol 1e-6), `img_proj` maps 1280 to 32, clip tokens are the
/// pooled grid (atol 1e-5, rtol 1e-4) and L1 embeddings have unit norm.
#[test]
fn efficientnet_from_yaml_grid_is_the_backbone_feature_map() {
    let config = load_yaml(
        "effnet.yml",
        &yaml_with_encoder(
            "      type: BatchEfficientNetImageEncoder\n      params:\n        \
             model_name: efficientnet-lite0\n        pool_type: avg\n        \
             num_output_features: -1\n        model_path: None\n        pretrained: false\n",
        ),
    )
    .expect("config loads");
    let univl = UnivlConfig::from_config(&config).expect("univl view");
    let ImageEncoderConfig::BatchEfficientNetImageEncoder(params) = &univl.image_encoder else {
        panic!("expected EfficientNet, got {:?}", univl.image_encoder);
    };
    assert_eq!(params.model_name, "efficientnet-lite0");
    assert_eq!(params.output_grid().unwrap(), None);
    let device = Default::default();
    let model = univl.init::<B>(&device).expect("init");
    assert_eq!(
        model.img_proj.as_ref().map(|p| p.val().dims()),
        Some([1280, HIDDEN])
    );

    let video = Tensor::<B, 5>::random([2, 4, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let got = grid(&model, video.clone());
    assert_eq!(got.dims(), [2, 4, 2, 2, 1280]);
    let VisualBackbone::EfficientNet(net) = &model.visual.backbone else {
        panic!("expected the EfficientNet backbone");
    };
    let own = net
        .net
        .forward_features(video.clone().reshape([8, 3, 64, 64]));
    let err = assert_close(
        "efficientnet grid vs forward_features",
        got,
        as_grid(own, 2, 4),
        1e-6,
        0.0,
    );
    println!("efficientnet grid max |diff| {err:e}");
    check_video_outputs(&model, video, 2, "efficientnet");
}

/// Typed config, `num_output_features: 6` with `pool_type: max`: the 128x96 frames' 4x3 maps are
/// max-pooled to 3x2 with torch's adaptive bins (rows [0,2) [1,3) [2,4), columns [0,2) [1,3)),
/// checked cell by cell against `forward_features` (exact); 9 with `avg` gives 3x3 means.
#[test]
fn efficientnet_num_output_features_pools_adaptively() {
    let device = Default::default();
    let encoder = |n, pool_type| {
        ImageEncoderConfig::BatchEfficientNetImageEncoder(EfficientNetParams {
            num_output_features: n,
            pool_type,
            pretrained: false,
            ..EfficientNetParams::default()
        })
    };
    let model = tiny(encoder(6, PoolType::Max))
        .init::<B>(&device)
        .expect("init");
    let video = Tensor::<B, 5>::random([1, 2, 3, 128, 96], Distribution::Normal(0.0, 1.0), &device);
    let got = grid(&model, video.clone());
    assert_eq!(got.dims(), [1, 2, 3, 2, 1280]);
    let VisualBackbone::EfficientNet(net) = &model.visual.backbone else {
        panic!("expected the EfficientNet backbone");
    };
    let maps = net
        .net
        .forward_features(video.clone().reshape([2, 3, 128, 96]));
    assert_eq!(maps.dims(), [2, 1280, 4, 3]);
    let maps_v = to_vec(maps.clone());
    let got_v = to_vec(got);
    let at = |n: usize, c: usize, y: usize, x: usize| maps_v[((n * 1280 + c) * 4 + y) * 3 + x];
    let (rows, cols) = ([(0, 2), (1, 3), (2, 4)], [(0, 2), (1, 3)]);
    for n in 0..2 {
        for (i, &(y0, y1)) in rows.iter().enumerate() {
            for (j, &(x0, x1)) in cols.iter().enumerate() {
                for c in 0..1280 {
                    let want = (y0..y1)
                        .flat_map(|y| (x0..x1).map(move |x| (y, x)))
                        .map(|(y, x)| at(n, c, y, x))
                        .fold(f32::MIN, f32::max);
                    let have = got_v[((n * 3 + i) * 2 + j) * 1280 + c];
                    assert_eq!(have, want, "frame {n} cell ({i}, {j}) channel {c}");
                }
            }
        }
    }
    check_video_outputs(&model, video.clone(), 1, "efficientnet max 3x2");

    // 9 -> 3x3 adaptive average of the 4x3 map: rows [0,2) [1,3) [2,4), columns 1 each.
    let model = tiny(encoder(9, PoolType::Avg))
        .init::<B>(&device)
        .expect("init");
    let got = grid(&model, video.clone());
    assert_eq!(got.dims(), [1, 2, 3, 3, 1280]);
    let VisualBackbone::EfficientNet(net) = &model.visual.backbone else {
        unreachable!()
    };
    let maps_v = to_vec(net.net.forward_features(video.reshape([2, 3, 128, 96])));
    let at = |n: usize, c: usize, y: usize, x: usize| maps_v[((n * 1280 + c) * 4 + y) * 3 + x];
    let got_v = to_vec(got);
    let mut max_err = 0f32;
    for n in 0..2 {
        for (i, &(y0, y1)) in rows.iter().enumerate() {
            for x in 0..3 {
                for c in 0..1280 {
                    let want = (y0..y1).map(|y| at(n, c, y, x)).sum::<f32>() / 2.0;
                    let have = got_v[((n * 3 + i) * 3 + x) * 1280 + c];
                    max_err = max_err.max((have - want).abs());
                }
            }
        }
    }
    assert!(max_err <= 1e-5, "avg pooling max |diff| {max_err}");
}

/// `model_path` with the real EfficientNet-Lite0 ImageNet weights (assets/effnet, lukemelas
/// layout): every backbone parameter loads (the classifier `_fc` is skipped), and the grid equals
/// `forward_features` of the same file loaded straight into `EfficientNetLite` (atol 0).
#[test]
fn efficientnet_model_path_loads_lukemelas_weights() {
    let path = asset("effnet/efficientnet-lite0-57934424.pth");
    let device = Default::default();
    let config = tiny(ImageEncoderConfig::BatchEfficientNetImageEncoder(
        EfficientNetParams {
            model_path: Some(path.clone()),
            ..EfficientNetParams::default()
        },
    ));
    let (model, reports) = config.init_pretrained::<B>(&device).expect("pretrained");
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert!(report.missing.is_empty(), "{report}");
    assert!(report.unexpected.is_empty(), "{report}");
    assert!(
        report.ignored.iter().any(|k| k.contains("fc.weight")),
        "{report}"
    );

    let (reference, _) = WeightFile::open(&path)
        .unwrap()
        .load_into(
            EfficientNetLiteConfig::lite(0).init::<B>(&device),
            &KeyMap::lukemelas_efficientnet(),
            &LoadOptions::default(),
        )
        .unwrap();
    let video = Tensor::<B, 5>::random([1, 2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let want = as_grid(
        reference.forward_features(video.clone().reshape([2, 3, 64, 64])),
        1,
        2,
    );
    assert_close(
        "pretrained efficientnet grid",
        grid(&model, video.clone()),
        want,
        0.0,
        0.0,
    );
    check_video_outputs(&model, video, 2, "pretrained efficientnet");
}

// ---- DetrBatchPVTImageEncoder

/// pvt_v2_b2's structure at 1/8 width (the fixture's transformers model), as YAML params.
const TINY_PVT: &str = "        model_name: pvt_v2_b2\n        \
     embed_dims: [8, 16, 40, 64]\n";

/// From YAML (AntMMF's pvt.yml keys at 1/8 width, `output_channels: 24`): frames of 72x40 give a
/// `ceil(H/32) x ceil(W/32)` = 3x2 grid of width 24, equal to `output_proj` (a 1x1 convolution
/// computed here by matmul) of the backbone's own last-stage `forward_features` (atol 1e-5);
/// `img_proj` maps 24 to 32; clip tokens and L1 embeddings as the shared path. With
/// `output_channels` = hidden size there is no `img_proj`.
#[test]
fn pvt_from_yaml_grid_is_output_proj_of_the_last_stage() {
    let params = format!(
        "      type: DetrBatchPVTImageEncoder\n      params:\n        model_path: None\n{TINY_PVT}        \
         num_output_features: -1\n        gradient_checkpointing: [false, false, false, false]\n        \
         pretrained: false\n        freeze: false\n        pool_type: avg\n        \
         replace_stride_with_dilation: [False, False, False]\n        output_channels: 24\n"
    );
    let config = load_yaml("pvt.yml", &yaml_with_encoder(&params)).expect("config loads");
    let univl = UnivlConfig::from_config(&config).expect("univl view");
    let ImageEncoderConfig::DetrBatchPVTImageEncoder(p) = &univl.image_encoder else {
        panic!("expected PVT, got {:?}", univl.image_encoder);
    };
    assert_eq!(p.output_channels, Some(24));
    assert_eq!(
        p.gradient_checkpointing,
        Some(StageFlags::PerStage(vec![false; 4]))
    );
    assert!(
        p.other.is_empty(),
        "every AntMMF key is known: {:?}",
        p.other
    );
    let pvt = p.to_pvt_config().unwrap();
    assert_eq!(
        (pvt.embed_dims.clone(), pvt.depths.clone()),
        (vec![8, 16, 40, 64], vec![3, 4, 6, 3])
    );
    let device = Default::default();
    let model = univl.init::<B>(&device).expect("init");
    assert_eq!(
        model.img_proj.as_ref().map(|p| p.val().dims()),
        Some([24, HIDDEN])
    );

    let video = Tensor::<B, 5>::random([2, 2, 3, 72, 40], Distribution::Normal(0.0, 1.0), &device);
    let got = grid(&model, video.clone());
    assert_eq!(got.dims(), [2, 2, 3, 2, 24]);
    let err = assert_close(
        "pvt grid vs output_proj(forward_features)",
        got,
        pvt_grid_by_hand(&model, video.clone()),
        1e-5,
        1e-5,
    );
    println!("pvt grid max |diff| {err:e}");
    check_video_outputs(&model, video.clone(), 2, "pvt");
    check_video_outputs(&model, video, 1, "pvt, one clip of two frames");
    // 16x16 frames leave a 4x4 first stage, below its spatial reduction 8: an error, no panic.
    let small = Tensor::<B, 5>::random([1, 1, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let err = model.visual.backbone.grid(small).unwrap_err().to_string();
    assert!(
        err.contains("too small") && err.contains("stage 1"),
        "{err}"
    );

    let same_width = tiny(ImageEncoderConfig::DetrBatchPVTImageEncoder(PvtParams {
        embed_dims: Some(vec![8, 16, 40, 64]),
        output_channels: Some(HIDDEN),
        pretrained: false,
        ..PvtParams::default()
    }));
    let model = same_width.init::<B>(&device).expect("init");
    assert!(model.img_proj.is_none(), "output_channels = hidden_size");
    let video = Tensor::<B, 5>::random([1, 2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    check_video_outputs(&model, video, 2, "pvt without img_proj");
}

/// `model_path` with transformers' `PvtV2Model` weights (fixtures/pvt_v2_weights.safetensors, b2
/// at 1/8 width): the layout is recognised, every backbone parameter loads, and the grid of the
/// fixture's 64x64 case equals `output_proj` of transformers' own `last_hidden_state`
/// (atol 1e-4, rtol 1e-4, the fixture's tolerance).
#[test]
fn pvt_model_path_loads_transformers_weights_and_matches_pytorch() {
    let meta = json("pvt_v2.json");
    let device = Default::default();
    let config = tiny(ImageEncoderConfig::DetrBatchPVTImageEncoder(PvtParams {
        embed_dims: Some(vec![8, 16, 40, 64]),
        output_channels: Some(HIDDEN),
        model_path: Some(fixture("pvt_v2_weights.safetensors")),
        ..PvtParams::default()
    }));
    let (model, reports) = config.init_pretrained::<B>(&device).expect("pretrained");
    let report = &reports[0];
    assert!(report.missing.is_empty(), "{report}");
    assert!(report.unexpected.is_empty(), "{report}");
    let blocks: usize = [3, 4, 6, 3].iter().sum();
    let stored = meta["num_weight_tensors"].as_u64().unwrap() as usize;
    assert_eq!(
        report.loaded.len(),
        stored - 2 * blocks,
        "k/v fused: {report}"
    );

    let io = WeightFile::open(fixture("pvt_v2_io.safetensors")).unwrap();
    let input: Tensor<B, 4> = io.tensor("b2_64x64.input", &device).unwrap();
    let last: Tensor<B, 4> = io.tensor("b2_64x64.last_hidden_state", &device).unwrap();
    let VisualBackbone::Pvt(pvt) = &model.visual.backbone else {
        panic!("expected the PVT backbone");
    };
    let proj = &pvt.output_proj;
    let want = as_grid(
        conv1x1_by_hand(last, proj.weight.val(), proj.bias.as_ref().map(|b| b.val())),
        1,
        2,
    );
    let video = input.reshape([1, 2, 3, 64, 64]);
    let err = assert_close(
        "pvt grid vs transformers",
        grid(&model, video.clone()),
        want,
        1e-4,
        1e-4,
    );
    println!("pvt grid vs transformers max |diff| {err:e}");
    check_video_outputs(&model, video, 1, "pretrained pvt");
}

/// `model_path` with a whai362/PVT-layout file (AntMMF's `pvt_v2_b*.pth` names: `patch_embed1`,
/// `block1.0.attn.sr`, `mlp.dwconv.dwconv`, `norm1`, PyTorch `[out, in]` Linear weights, plus a
/// classification `head`): written here from a random b0-structured model at 1/4 width, loaded
/// through the config; every parameter loads, `head` is skipped, and the grid equals the source
/// model's last stage through `output_proj` (atol 1e-6).
#[test]
fn pvt_model_path_loads_whai362_layout() {
    let device = Default::default();
    let arch = PvtV2Config {
        embed_dims: vec![8, 16, 40, 64],
        num_classes: 5,
        ..PvtV2Config::b0()
    };
    let source = arch.init::<B>(&device);
    let upstream = |path: &str| -> String {
        let mut key = path.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.");
        for s in 0..4 {
            for (ours, theirs) in [
                ("patch_embed", "patch_embed"),
                ("blocks", "block"),
                ("norm", "norm"),
            ] {
                if let Some(rest) = key.strip_prefix(&format!("stages.{s}.{ours}.")) {
                    key = format!("{theirs}{}.{rest}", s + 1);
                }
            }
        }
        key.replace(".gamma", ".weight").replace(".beta", ".bias")
    };
    let tensors = export(&source, upstream);
    assert!(tensors.iter().any(|(k, _, _)| k == "head.weight"));
    assert!(
        tensors
            .iter()
            .any(|(k, _, _)| k == "block4.1.mlp.dwconv.dwconv.weight")
    );
    let path = write_safetensors("pvt_v2_b0_upstream.safetensors", &tensors);

    let config = tiny(ImageEncoderConfig::DetrBatchPVTImageEncoder(PvtParams {
        model_name: "pvt_v2_b0".into(),
        embed_dims: Some(vec![8, 16, 40, 64]),
        output_channels: Some(HIDDEN),
        model_path: Some(path),
        ..PvtParams::default()
    }));
    let (model, reports) = config.init_pretrained::<B>(&device).expect("pretrained");
    let report = &reports[0];
    assert!(report.missing.is_empty(), "{report}");
    assert!(report.unexpected.is_empty(), "{report}");
    assert_eq!(report.loaded.len(), tensors.len() - 2, "{report}");
    assert!(
        report.ignored.iter().any(|k| k.contains("head.weight")),
        "{report}"
    );

    let video = Tensor::<B, 5>::random([2, 1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let VisualBackbone::Pvt(pvt) = &model.visual.backbone else {
        panic!("expected the PVT backbone");
    };
    let last = source
        .forward_features(video.clone().reshape([2, 3, 64, 64]))
        .pop()
        .unwrap();
    let proj = &pvt.output_proj;
    let want = as_grid(
        conv1x1_by_hand(last, proj.weight.val(), proj.bias.as_ref().map(|b| b.val())),
        2,
        1,
    );
    assert_close(
        "pvt whai362 grid",
        grid(&model, video.clone()),
        want,
        1e-6,
        1e-5,
    );
    check_video_outputs(&model, video, 1, "whai362 pvt");
}

// ---- AntMMF UniVL checkpoints

/// Writes `tensors` (name, f32 bytes, shape) as a safetensors file in the test's folder.
fn write_safetensors(name: &str, tensors: &[(String, Vec<u8>, Vec<usize>)]) -> PathBuf {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, d, s)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                .unwrap();
            (k.clone(), view)
        })
        .collect();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("univl_encoders");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

/// A module's parameters in PyTorch layout, renamed by `rename`.
fn export<M: ModuleSnapshot<B>>(
    module: &M,
    rename: impl Fn(&str) -> String,
) -> Vec<(String, Vec<u8>, Vec<usize>)> {
    module
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
        .iter()
        .map(|s| {
            let data = s.to_data().unwrap().convert::<f32>();
            (
                rename(&s.full_path()),
                data.as_bytes().to_vec(),
                data.shape.to_vec(),
            )
        })
        .collect()
}

/// AntMMF UniVL checkpoints with these encoders (`module.model.img_encoder.model.*`: PVT's
/// `patch_embed1` / `block1` / `norm1` / `head` and `output_proj`, EfficientNet's lukemelas
/// `_conv_stem` / `_blocks.{i}._bn0` / `_fc` / `num_batches_tracked`) load through
/// `load_antmmf_checkpoint`: every backbone parameter is loaded, the heads and counters are
/// ignored, and the loaded model's grid equals the source's (atol 0).
#[test]
fn antmmf_checkpoints_with_pvt_and_efficientnet_backbones_load() {
    let device = Default::default();
    let video = Tensor::<B, 5>::random([1, 2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let prefix = "module.model.img_encoder.model.";

    let pvt_config = tiny(ImageEncoderConfig::DetrBatchPVTImageEncoder(PvtParams {
        embed_dims: Some(vec![8, 16, 40, 64]),
        depths: Some(vec![1, 1, 1, 1]),
        output_channels: Some(24),
        pretrained: false,
        ..PvtParams::default()
    }));
    let source = pvt_config.init::<B>(&device).unwrap();
    let VisualBackbone::Pvt(pvt) = &source.visual.backbone else {
        unreachable!()
    };
    let upstream = |path: &str| -> String {
        let mut key = path.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.");
        for s in 0..4 {
            for (ours, theirs) in [
                ("patch_embed", "patch_embed"),
                ("blocks", "block"),
                ("norm", "norm"),
            ] {
                if let Some(rest) = key.strip_prefix(&format!("stages.{s}.{ours}.")) {
                    key = format!("{theirs}{}.{rest}", s + 1);
                }
            }
        }
        format!(
            "{prefix}{}",
            key.replace(".gamma", ".weight").replace(".beta", ".bias")
        )
    };
    let mut tensors = export(&pvt.pvt, upstream);
    let backbone_params = tensors.len();
    tensors.extend(export(&pvt.output_proj, |k| {
        format!("module.model.img_encoder.output_proj.{k}")
    }));
    tensors.push((
        format!("{prefix}head.weight"),
        vec![0; 4 * 5 * 64],
        vec![5, 64],
    ));
    let path = write_safetensors("antmmf_univl_pvt.safetensors", &tensors);
    let (loaded, report) = pvt_config
        .init::<B>(&device)
        .unwrap()
        .load_antmmf_checkpoint(&path, &LoadOptions::allow_missing())
        .expect("AntMMF PVT checkpoint");
    assert!(report.unexpected.is_empty(), "{report}");
    let backbone_loaded = report
        .loaded
        .iter()
        .filter(|k| k.starts_with("visual.backbone.Pvt."))
        .count();
    assert_eq!(backbone_loaded, backbone_params + 2, "{report}");
    assert!(
        report.ignored.iter().any(|k| k.contains("head.weight")),
        "{report}"
    );
    assert_close(
        "AntMMF PVT checkpoint grid",
        grid(&loaded, video.clone()),
        grid(&source, video.clone()),
        0.0,
        0.0,
    );

    let effnet_config = tiny(ImageEncoderConfig::BatchEfficientNetImageEncoder(
        EfficientNetParams {
            pretrained: false,
            ..EfficientNetParams::default()
        },
    ));
    let source = effnet_config.init::<B>(&device).unwrap();
    let VisualBackbone::EfficientNet(net) = &source.visual.backbone else {
        unreachable!()
    };
    let lukemelas = |path: &str| -> String {
        let key = path.replace(".gamma", ".weight").replace(".beta", ".bias");
        let key = match key.strip_prefix("blocks.") {
            Some(rest) => {
                let (index, rest) = rest.split_once('.').unwrap();
                format!("_blocks.{index}._{rest}")
            }
            None => format!("_{key}"),
        };
        format!("{prefix}{key}")
    };
    let mut tensors = export(&net.net, lukemelas);
    let backbone_params = tensors.len();
    assert!(
        tensors
            .iter()
            .any(|(k, _, _)| k == &format!("{prefix}_blocks.3._depthwise_conv.weight")),
        "{:?}",
        tensors.iter().map(|t| &t.0).take(8).collect::<Vec<_>>()
    );
    tensors.push((
        format!("{prefix}_fc.weight"),
        vec![0; 4 * 3 * 1280],
        vec![3, 1280],
    ));
    tensors.push((
        format!("{prefix}_bn0.num_batches_tracked"),
        vec![0; 4],
        vec![1],
    ));
    let path = write_safetensors("antmmf_univl_effnet.safetensors", &tensors);
    let (loaded, report) = effnet_config
        .init::<B>(&device)
        .unwrap()
        .load_antmmf_checkpoint(&path, &LoadOptions::allow_missing())
        .expect("AntMMF EfficientNet checkpoint");
    assert!(report.unexpected.is_empty(), "{report}");
    let backbone_loaded = report
        .loaded
        .iter()
        .filter(|k| k.starts_with("visual.backbone.EfficientNet.net."))
        .count();
    assert_eq!(backbone_loaded, backbone_params, "{report}");
    assert_eq!(report.ignored.len(), 2, "{report}");
    assert_close(
        "AntMMF EfficientNet checkpoint grid",
        grid(&loaded, video.clone()),
        grid(&source, video),
        0.0,
        0.0,
    );
}

// ---- Configuration errors and the ported configs

/// Bad `image_encoder.params` are errors naming the key: EfficientNet's B-series names, unknown
/// keys (AntMMF's EfficientNet takes no `**kwargs`) and `num_output_features` out of range; PVT
/// without `output_channels`, a misspelt key (with a suggestion), the linear `_li` variant,
/// per-stage lists of the wrong length, an unknown `pool_type`. A foreign key PVT's `**kwargs`
/// swallows is accepted and kept aside.
#[test]
fn bad_params_are_errors_naming_the_key() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "BatchEfficientNetImageEncoder",
            "model_name: efficientnet-b0",
            "image_encoder.params.model_name",
            "not ported",
        ),
        (
            "BatchEfficientNetImageEncoder",
            "num_output_feature: 4",
            "image_encoder.params",
            "num_output_feature",
        ),
        (
            "BatchEfficientNetImageEncoder",
            "num_output_features: 10",
            "image_encoder.params.num_output_features",
            "1 to 9",
        ),
        (
            "BatchEfficientNetImageEncoder",
            "pool_type: mean",
            "image_encoder.params.pool_type",
            "mean",
        ),
        (
            "DetrBatchPVTImageEncoder",
            "model_name: pvt_v2_b0",
            "image_encoder.params.output_channels",
            "required",
        ),
        (
            "DetrBatchPVTImageEncoder",
            "output_channel: 32",
            "image_encoder.params.output_channel",
            "did you mean `output_channels`",
        ),
        (
            "DetrBatchPVTImageEncoder",
            "model_name: pvt_v2_b2_li\n        output_channels: 32",
            "image_encoder.params.model_name",
            "linear",
        ),
        (
            "DetrBatchPVTImageEncoder",
            "depths: [1, 1]\n        output_channels: 32",
            "image_encoder.params.depths",
            "one entry per stage",
        ),
        (
            "DetrBatchPVTImageEncoder",
            "num_heads: [1, 2, 5, 7]\n        output_channels: 32",
            "image_encoder.params.num_heads",
            "multiple",
        ),
        (
            "DetrBatchPVTImageEncoder",
            "num_output_features: 11\n        output_channels: 32",
            "image_encoder.params.num_output_features",
            "1 to 9",
        ),
        (
            "DetrBatchPVTImageEncoder",
            "pool_type: mean\n        output_channels: 32",
            "image_encoder.params.pool_type",
            "mean",
        ),
    ];
    for (i, (kind, params, key, words)) in cases.iter().enumerate() {
        let yaml = yaml_with_encoder(&format!(
            "      type: {kind}\n      params:\n        {params}\n"
        ));
        let err = load_yaml(&format!("bad_{i}.yml"), &yaml)
            .map_err(|e| e.to_string())
            .and_then(|c| UnivlConfig::from_config(&c).map_err(|e| e.to_string()))
            .expect_err(&format!("{kind} {params}: should be rejected"));
        println!("{kind} {params:?}: {err}");
        assert!(
            err.contains(&format!("model_attributes.univl.{key}")) && err.contains(words),
            "{kind} {params}: {err}"
        );
    }

    let swallowed = yaml_with_encoder(
        "      type: DetrBatchPVTImageEncoder\n      params:\n        output_channels: 32\n        \
         encoder_type: resnet50\n",
    );
    let config = load_yaml("swallowed.yml", &swallowed).unwrap();
    let univl = UnivlConfig::from_config(&config).expect("AntMMF's **kwargs swallows it");
    let ImageEncoderConfig::DetrBatchPVTImageEncoder(p) = &univl.image_encoder else {
        unreachable!()
    };
    assert_eq!(p.other.keys().collect::<Vec<_>>(), ["encoder_type"]);
}

/// The ported PVT configs (`configs/visual_encoder/pvt.yml` and the three that include it) read
/// as AntMMF's: `DetrBatchPVTImageEncoder`, `pvt_v2_b2`, `output_channels` = `hidden_size` = 768
/// (so no `img_proj`), gradient checkpointing per stage; and every config under `configs/`
/// loads and its `model_attributes.univl` validates (but for one include-only base).
#[test]
fn ported_pvt_configs_and_every_config_load() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs"));
    for (file, checkpointing) in [
        ("visual_encoder/pvt.yml", false),
        ("finetune_retrieval/msr_vtt_pvt.yml", true),
        ("finetune_mcqa/msr_vtt_mc_qa_pvt.yml", true),
        ("pretrain/coco_vg_pvt.yml", true),
    ] {
        let univl = UnivlConfig::from_config(&load_config(&root.join(file)))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let ImageEncoderConfig::DetrBatchPVTImageEncoder(p) = &univl.image_encoder else {
            panic!("{file}: expected PVT, got {:?}", univl.image_encoder);
        };
        assert_eq!(p.model_name, "pvt_v2_b2", "{file}");
        assert_eq!(p.model_path, None, "{file}: AntMMF's `None`");
        assert!(p.pretrained, "{file}");
        assert_eq!(univl.hidden_size, 768, "{file}");
        assert_eq!(p.out_dim().unwrap(), univl.hidden_size, "{file}");
        assert_eq!(
            p.gradient_checkpointing,
            Some(StageFlags::PerStage(vec![checkpointing; 4])),
            "{file}"
        );
        assert_eq!(p.num_output_features, Some(-1), "{file}");
        assert!(p.other.is_empty(), "{file}: {:?}", p.other);
        let pvt = p.to_pvt_config().unwrap();
        assert_eq!(pvt.embed_dims, vec![64, 128, 320, 512], "{file}");
    }

    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yml")
                && path.file_name().is_some_and(|n| n != "defaults.yml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 20, "{files:?}");
    // A base that only other configs include: its ResNet `DetrImageEncoder` (not ported) is
    // switched to Video Swin by msrvtt_qa_videoswin.yml.
    let base_only = ["finetune_vqa/univl_video_text_classification.yml"];
    for path in &files {
        let config = load_config(path);
        let result = UnivlConfig::from_config(&config);
        if base_only.iter().any(|b| path.ends_with(b)) {
            let err = result
                .expect_err("the base alone names DetrImageEncoder")
                .to_string();
            assert!(
                err.contains("DetrImageEncoder"),
                "{}: {err}",
                path.display()
            );
        } else {
            result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

/// Sanity of the test's own by-hand 1x1 convolution against Burn's `Conv2d`.
#[test]
fn conv1x1_by_hand_matches_conv2d() {
    let device = Default::default();
    let conv = burn::nn::conv::Conv2dConfig::new([5, 3], [1, 1]).init::<B>(&device);
    let x = Tensor::<B, 4>::from_data(
        TensorData::new(
            (0..2 * 5 * 3 * 2).map(|v| v as f32 * 0.1).collect(),
            [2, 5, 3, 2],
        ),
        &device,
    );
    assert_close(
        "conv1x1",
        conv1x1_by_hand(
            x.clone(),
            conv.weight.val(),
            conv.bias.as_ref().map(|b| b.val()),
        ),
        conv.forward(x),
        1e-5,
        1e-5,
    );
}
