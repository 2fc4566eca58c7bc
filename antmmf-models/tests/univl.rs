//! UniVL model: configuration view, shapes of every method, L1 similarity by hand, cross-encoder
//! inputs, tied MLM decoder, MoCo momentum and queues, gradient flow, record round trip, and the
//! real all-MiniLM-L6-v2 loaded as the text encoder (fixtures/README.md section 8).

use crate::import_support;

use antmmf_core::{Config, ConfigSources};
use antmmf_models::import::WeightFile;
use antmmf_models::losses::ResampleMethod;
use antmmf_models::losses::{MocoInputs, moco_cross_modal_loss};
use antmmf_models::univl::config::{ClipVisualParams, ImageEncoderConfig};
use antmmf_models::univl::{Univl, UnivlConfig, UnivlError};
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use import_support::{assert_close, asset, fixture};

type B = Flex;
type AD = Autodiff<Flex>;

const VOCAB: usize = 120;
const HIDDEN: usize = 32;

fn tiny() -> UnivlConfig {
    UnivlConfig::small(HIDDEN, 2, 4, VOCAB).with_num_labels(Some(5))
}

fn ids<Bk: Backend>(rows: &[&[i64]], device: &Bk::Device) -> Tensor<Bk, 2, Int> {
    let l = rows[0].len();
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), l]), device)
}

struct Batch<Bk: Backend> {
    ids: Tensor<Bk, 2, Int>,
    mask: Tensor<Bk, 2, Int>,
    video: Tensor<Bk, 5>,
    clip_mask: Tensor<Bk, 2, Int>,
}

/// Two captions of 6 tokens (the second padded) and two videos of 2 clips x 2 frames, 16x16.
fn batch<Bk: Backend>(device: &Bk::Device) -> Batch<Bk> {
    Batch {
        ids: ids(
            &[&[101, 7, 8, 9, 10, 102], &[101, 11, 12, 102, 0, 0]],
            device,
        ),
        mask: ids(&[&[1, 1, 1, 1, 1, 1], &[1, 1, 1, 1, 0, 0]], device),
        video: Tensor::random([2, 4, 3, 16, 16], Distribution::Normal(0.0, 1.0), device),
        clip_mask: ids(&[&[1, 1], &[1, 0]], device),
    }
}

fn to_vec<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn max_abs_diff<Bk: Backend, const D: usize>(a: Tensor<Bk, D>, b: Tensor<Bk, D>) -> f32 {
    to_vec(a)
        .iter()
        .zip(to_vec(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn config_reads_antmmf_keys_and_names_bad_ones() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("univl_config");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Config::load(&ConfigSources {
            config: Some(path),
            ..Default::default()
        })
    };
    let good = write(
        "good.yml",
        "model_attributes:\n  univl:\n    hidden_size: 32\n    K: 64\n    M: 0.99\n    \
         re_sample_method: top_k\n    re_weight_method: \"None\"\n    num_labels: 7\n    text_encoder:\n      params:\n        \
         hidden_size: 32\n        num_hidden_layers: 2\n        num_attention_heads: 4\n        \
         vocab_size: 120\n        pretrained: false\n    cross_encoder:\n      params:\n        \
         num_hidden_layers: 3\n    image_encoder:\n      type: VideoSwinEncoder\n      params:\n        \
         model_path: None\n        embed_dim: 8\n        depths: [1, 1]\n        num_heads: [1, 2]\n        \
         window_size: [2, 2, 2]\n        patch_size: [1, 4, 4]\n        gradient_checkpointing: [false, false]\n        \
         encoder_type: resnet50\n        pool_type: avg\n",
    )
    .expect("config loads");
    let univl = UnivlConfig::from_config(&good).expect("univl view");
    assert_eq!(univl.hidden_size, 32);
    assert_eq!(univl.queue_size, 64);
    assert_eq!(univl.momentum, 0.99);
    assert_eq!(univl.re_sample_method, ResampleMethod::TopK);
    assert_eq!(univl.num_labels, Some(7));
    assert_eq!(univl.re_weight_method, None, "AntMMF's \"None\"");
    assert_eq!(univl.text_encoder.params.num_hidden_layers, 2);
    let ImageEncoderConfig::VideoSwinEncoder(swin) = &univl.image_encoder else {
        panic!("expected Video Swin, got {:?}", univl.image_encoder);
    };
    let swin = swin.to_swin_config().unwrap();
    assert_eq!((swin.embed_dim, swin.out_dim()), (8, 16));
    let ImageEncoderConfig::VideoSwinEncoder(params) = &univl.image_encoder else {
        unreachable!()
    };
    assert_eq!(
        params.other.keys().collect::<Vec<_>>(),
        ["encoder_type", "pool_type"],
        "AntMMF's leftover keys are kept aside (and ignored)"
    );
    assert!(swin.temporal_stride_one, "VIOLET variant by default");
    assert!(univl.stage1() && univl.stage2());
    let model = univl.init::<B>(&Default::default()).expect("init");
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&model);
    assert_eq!(model.bert.encoder.layer.len(), 2);
    assert!(
        model.img_proj.is_some(),
        "16-wide Swin needs img_proj to 32"
    );

    let unknown = write(
        "unknown.yml",
        "model_attributes:\n  univl:\n    image_encoder:\n      type: VideoSwinEncoder\n      params:\n        \
         embed_dims: 8\n",
    )
    .expect("free-form params pass the schema");
    let err = UnivlConfig::from_config(&unknown).unwrap_err().to_string();
    assert!(
        err.contains("model_attributes.univl.image_encoder") && err.contains("embed_dims"),
        "{err}"
    );

    let mismatch = write(
        "mismatch.yml",
        "model_attributes:\n  univl:\n    hidden_size: 64\n",
    )
    .unwrap();
    let err = UnivlConfig::from_config(&mismatch).unwrap_err().to_string();
    assert!(
        err.contains("model_attributes.univl.text_encoder.params.hidden_size"),
        "{err}"
    );

    let bad_type = write(
        "bad_type.yml",
        "model_attributes:\n  univl:\n    image_encoder:\n      type: ResNetImageEncoder\n",
    )
    .unwrap();
    let err = UnivlConfig::from_config(&bad_type).unwrap_err().to_string();
    assert!(
        err.contains("model_attributes.univl.image_encoder") && err.contains("ResNetImageEncoder"),
        "{err}"
    );
}

#[test]
fn every_method_has_the_documented_shapes() {
    let device = Default::default();
    let model = tiny().init::<B>(&device).unwrap();
    let b = batch::<B>(&device);

    let text = model.encode_text(b.ids.clone(), b.mask.clone(), None);
    assert_eq!(text.sequence.dims(), [2, 6, HIDDEN]);
    assert_eq!(text.pooled.dims(), [2, HIDDEN]);
    assert_eq!(text.l1.dims(), [2, HIDDEN]);
    let norms = to_vec(text.l1.clone().powf_scalar(2.0).sum_dim(1));
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");

    let video = model
        .encode_video(b.video.clone(), b.clip_mask.clone())
        .unwrap();
    assert_eq!(video.clip_tokens.dims(), [2, 2, HIDDEN]);
    assert_eq!(video.l1.dims(), [2, 2, HIDDEN]);

    let l1 = Univl::l1_similarity(text.l1.clone(), video.l1.clone(), Some(b.clip_mask.clone()));
    assert_eq!(l1.dims(), [2, 2]);
    let clip_l1 = Univl::l1_clip_similarity(text.l1.clone(), video.l1.clone(), None);
    assert_eq!(clip_l1.dims(), [2, 2, 2]);

    let cross = model
        .cross(
            b.ids.clone(),
            b.mask.clone(),
            None,
            video.clip_tokens.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    assert_eq!(cross.text.dims(), [2, 6, HIDDEN]);
    assert_eq!(cross.visual.dims(), [2, 2, HIDDEN]);
    assert_eq!(cross.pooled.dims(), [2, HIDDEN]);
    assert_eq!(model.l2_score(cross.pooled.clone()).dims(), [2]);
    assert_eq!(model.mlm_logits(cross.text.clone()).dims(), [2, 6, VOCAB]);
    assert_eq!(model.itm_logits(cross.pooled.clone()).dims(), [2, 2]);
    assert_eq!(model.classify(cross.pooled.clone()).unwrap().dims(), [2, 5]);

    // All pairs: 3 texts x 2 videos, in chunks of 2; the diagonal pairs equal `cross` + `l2_score`.
    let texts = Tensor::cat(vec![b.ids.clone(), b.ids.clone().narrow(0, 0, 1)], 0);
    let masks = Tensor::cat(vec![b.mask.clone(), b.mask.clone().narrow(0, 0, 1)], 0);
    let all = model
        .l2_similarity_matrix(
            texts,
            masks,
            video.clip_tokens.clone(),
            b.clip_mask.clone(),
            2,
        )
        .unwrap();
    assert_eq!(all.dims(), [3, 2]);
    let pairs = to_vec(model.l2_score(cross.pooled.clone()));
    let all = to_vec(all);
    assert!((all[0] - pairs[0]).abs() < 1e-5 && (all[3] - pairs[1]).abs() < 1e-5);
    assert!((all[4] - all[0]).abs() < 1e-5, "row 2 repeats text 0");

    let keys = model
        .moco_keys(
            b.ids.clone(),
            b.mask.clone(),
            b.video.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    assert_eq!(keys.text.dims(), [2, HIDDEN]);
    assert_eq!(keys.video.dims(), [2, 2, HIDDEN]);
    assert_eq!(model.text_queue().unwrap().dims(), [HIDDEN, 8]);
    assert_eq!(model.video_queue().unwrap().dims(), [HIDDEN, 8]);
    assert_eq!(model.queue_pointers(), Some((0, 0)));

    // Frames that do not split into the clips are a clear error.
    let err = model
        .encode_video(b.video.clone(), ids(&[&[1, 1, 1], &[1, 1, 1]], &device))
        .unwrap_err();
    assert!(matches!(err, UnivlError::Shape(_)), "{err}");
    // No classifier configured -> typed error.
    let plain = tiny().with_num_labels(None).init::<B>(&device).unwrap();
    assert!(matches!(
        plain.classify(cross.pooled.clone()),
        Err(UnivlError::NoClassifier)
    ));
}

#[test]
fn clip_vit_visual_encoder_gives_one_token_per_clip() {
    let device = Default::default();
    let config = tiny().with_image_encoder(ImageEncoderConfig::VitImageEncoder(ClipVisualParams {
        input_resolution: 16,
        patch_size: 8,
        width: 16,
        layers: 1,
        out_dim: HIDDEN,
        head_width: 8,
        ..ClipVisualParams::default()
    }));
    let model = config.init::<B>(&device).unwrap();
    assert!(model.img_proj.is_none(), "out_dim = hidden: no img_proj");
    let b = batch::<B>(&device);
    let video = model.encode_video(b.video, b.clip_mask).unwrap();
    assert_eq!(video.clip_tokens.dims(), [2, 2, HIDDEN]);
    assert_eq!(video.l1.dims(), [2, 2, HIDDEN]);
}

/// L1 similarity on a hand-checkable 2x2 case: logsumexp over the valid clips of `<t, v_c>`.
#[test]
fn l1_similarity_is_logsumexp_over_valid_clips() {
    let device = Default::default();
    let t = |v: Vec<f32>, shape: Vec<usize>| {
        Tensor::<B, 2>::from_data(TensorData::new(v, shape), &device)
    };
    let text = t(vec![1.0, 0.0, 0.0, 1.0], vec![2, 2]);
    let video = Tensor::<B, 3>::from_data(
        TensorData::new(
            vec![0.5, 0.2, -0.3, 0.8, /* video 1 */ 0.1, -0.4, 9.0, 9.0],
            [2, 2, 2],
        ),
        &device,
    );
    let mask = ids::<B>(&[&[1, 1], &[1, 0]], &device);
    let got = to_vec(Univl::l1_similarity(
        text,
        video.clone(),
        Some(mask.clone()),
    ));
    let lse = |xs: &[f64]| xs.iter().map(|x| x.exp()).sum::<f64>().ln();
    // text 0 = e0: video 0 clips score 0.5, -0.3; video 1 only clip 0 (0.1).
    // text 1 = e1: video 0 clips score 0.2, 0.8; video 1 only clip 0 (-0.4).
    let expected = [lse(&[0.5, -0.3]), 0.1, lse(&[0.2, 0.8]), -0.4];
    for (g, e) in got.iter().zip(expected) {
        assert!((*g as f64 - e).abs() < 1e-5, "{got:?} vs {expected:?}");
    }
    // Without the mask the padded clip (9, 9) dominates video 1.
    let text = t(vec![1.0, 0.0, 0.0, 1.0], vec![2, 2]);
    let unmasked = to_vec(Univl::l1_similarity(text, video, None));
    assert!(
        (unmasked[1] as f64 - lse(&[0.1, 9.0])).abs() < 1e-4,
        "{unmasked:?}"
    );
}

/// The cross input: `[text words ; clip tokens ; SEP]`, positions restarting at 0 on the visual
/// part, token type 1 there, mask `[text ; clips ; 1]`; and the cross pass is the shared BERT
/// (all layers) on those embeddings, pooled by `cross_pooler`.
#[test]
fn cross_inputs_and_pass_follow_antmmf() {
    let device = Default::default();
    let model = tiny().init::<B>(&device).unwrap();
    let b = batch::<B>(&device);
    let tokens = Tensor::<B, 3>::random([2, 2, HIDDEN], Distribution::Normal(0.0, 1.0), &device);
    let (embeds, types, positions, mask) = model
        .cross_inputs(
            b.ids.clone(),
            b.mask.clone(),
            None,
            tokens.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    let ints =
        |t: Tensor<B, 2, Int>| -> Vec<i64> { t.into_data().convert::<i64>().to_vec().unwrap() };
    assert_eq!(
        ints(positions.clone().narrow(0, 0, 1)),
        vec![0, 1, 2, 3, 4, 5, 0, 1, 2]
    );
    assert_eq!(
        ints(types.clone().narrow(0, 1, 1)),
        vec![0, 0, 0, 0, 0, 0, 1, 1, 1]
    );
    assert_eq!(
        ints(mask.clone()),
        vec![
            1, 1, 1, 1, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 0, 0, 1, 0, 1
        ]
    );
    let words = model.bert.embeddings.word_embeddings.weight.val();
    let sep_row = words.clone().narrow(0, 102, 1).reshape([1, 1, HIDDEN]);
    assert_eq!(
        max_abs_diff(embeds.clone().narrow(1, 8, 1).narrow(0, 0, 1), sep_row),
        0.0
    );
    assert_eq!(
        max_abs_diff(embeds.clone().narrow(1, 6, 2), tokens.clone()),
        0.0
    );
    let word7 = words.narrow(0, 7, 1).reshape([1, 1, HIDDEN]);
    assert_eq!(
        max_abs_diff(embeds.clone().narrow(1, 1, 1).narrow(0, 0, 1), word7),
        0.0
    );

    let cross = model
        .cross(
            b.ids.clone(),
            b.mask.clone(),
            None,
            tokens.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    let reference = model
        .bert
        .forward_embeds(embeds, Some(types), Some(positions), Some(mask), false)
        .last_hidden_state;
    assert!(max_abs_diff(cross.text.clone(), reference.clone().narrow(1, 0, 6)) < 1e-5);
    assert!(max_abs_diff(cross.visual.clone(), reference.clone().narrow(1, 6, 2)) < 1e-5);
    let pooled = model.cross_pooler.forward(reference);
    assert!(max_abs_diff(cross.pooled.clone(), pooled) < 1e-5);
    // The cross pooler starts as a copy of the text pooler, with its own parameters.
    let text_pooler = model.bert.pooler.as_ref().unwrap();
    assert_eq!(
        max_abs_diff(
            text_pooler.dense.weight.val(),
            model.cross_pooler.dense.weight.val()
        ),
        0.0
    );
    assert_ne!(
        text_pooler.dense.weight.id,
        model.cross_pooler.dense.weight.id
    );

    // A padded clip does not reach the text positions; a valid one does.
    let mut changed = to_vec(tokens.clone());
    for v in &mut changed[3 * HIDDEN..4 * HIDDEN] {
        *v += 5.0; // row 1, clip 1 (padded)
    }
    let changed = Tensor::<B, 3>::from_data(TensorData::new(changed, [2, 2, HIDDEN]), &device);
    let again = model
        .cross(
            b.ids.clone(),
            b.mask.clone(),
            None,
            changed,
            b.clip_mask.clone(),
        )
        .unwrap();
    assert!(max_abs_diff(again.text.clone(), cross.text.clone()) < 1e-5);
    assert!(max_abs_diff(again.pooled.clone(), cross.pooled.clone()) < 1e-5);
}

/// The MLM decoder is the word embedding matrix: replacing it changes the logits exactly as
/// `transform(h) @ W^T + bias` with the new matrix.
#[test]
fn mlm_decoder_is_tied_to_word_embeddings() {
    let device = Default::default();
    let mut model = tiny().init::<B>(&device).unwrap();
    let hidden = Tensor::<B, 3>::random([2, 3, HIDDEN], Distribution::Normal(0.0, 1.0), &device);
    let before = model.mlm_logits(hidden.clone());
    let new_words =
        Tensor::<B, 2>::random([VOCAB, HIDDEN], Distribution::Normal(0.0, 1.0), &device);
    model.bert.embeddings.word_embeddings.weight = Param::from_tensor(new_words.clone());
    let after = model.mlm_logits(hidden.clone());
    assert!(max_abs_diff(before, after.clone()) > 1e-2);
    let expected = model.mlm.forward(hidden, new_words);
    assert_eq!(max_abs_diff(after, expected), 0.0);
}

/// Word importance: the text pass with attentions equals `encode_text`, and each row sums to
/// `layers * L` (every query's attention sums to 1).
#[test]
fn word_importance_sums_attention_over_layers_and_queries() {
    let device = Default::default();
    let model = tiny().init::<B>(&device).unwrap();
    let b = batch::<B>(&device);
    let plain = model.encode_text(b.ids.clone(), b.mask.clone(), None);
    let (text, importance) = model.encode_text_with_importance(b.ids, b.mask, None);
    assert!(max_abs_diff(plain.sequence, text.sequence) < 1e-5);
    assert!(max_abs_diff(plain.l1, text.l1) < 1e-5);
    assert_eq!(importance.dims(), [2, 6]);
    let v = to_vec(importance);
    for row in v.chunks(6) {
        let sum: f32 = row.iter().sum();
        assert!((sum - 12.0).abs() < 1e-4, "{row:?}");
    }
    assert!(
        v[6 + 4].abs() < 1e-6 && v[6 + 5].abs() < 1e-6,
        "padded keys get no attention"
    );
}

#[test]
fn momentum_update_copies_keeps_or_blends_key_encoders() {
    let device = Default::default();
    let config = tiny();
    let mut model = config.init::<B>(&device).unwrap();
    let b = batch::<B>(&device);
    let keys0 = model
        .moco_keys(
            b.ids.clone(),
            b.mask.clone(),
            b.video.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    // Keys start as copies of the query encoders.
    let q = model.encode_text(b.ids.clone(), b.mask.clone(), None);
    let v = model
        .encode_video(b.video.clone(), b.clip_mask.clone())
        .unwrap();
    assert!(max_abs_diff(keys0.text.clone(), q.l1) < 1e-6);
    assert!(max_abs_diff(keys0.video.clone(), v.l1) < 1e-6);

    // Move the query encoders away (another random init).
    let other = config.init::<B>(&device).unwrap();
    model.bert = other.bert;
    model.visual = other.visual;
    let key_weight = |m: &Univl<B>| {
        m.moco
            .as_ref()
            .unwrap()
            .text_key
            .embeddings
            .word_embeddings
            .weight
            .val()
    };
    let k_before = key_weight(&model);
    let q_weight = model.bert.embeddings.word_embeddings.weight.val();

    let model = model.momentum_update(1.0);
    assert_eq!(max_abs_diff(key_weight(&model), k_before.clone()), 0.0);
    let kept = model
        .moco_keys(
            b.ids.clone(),
            b.mask.clone(),
            b.video.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    assert_eq!(max_abs_diff(kept.text, keys0.text.clone()), 0.0);

    let model = model.momentum_update(0.25);
    let expected = k_before.mul_scalar(0.25) + q_weight.clone().mul_scalar(0.75);
    assert!(max_abs_diff(key_weight(&model), expected) < 1e-6);

    let model = model.momentum_update(0.0);
    assert_eq!(max_abs_diff(key_weight(&model), q_weight), 0.0);
    let copied = model
        .moco_keys(
            b.ids.clone(),
            b.mask.clone(),
            b.video.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    let q = model.encode_text(b.ids.clone(), b.mask.clone(), None);
    let v = model
        .encode_video(b.video.clone(), b.clip_mask.clone())
        .unwrap();
    assert!(max_abs_diff(copied.text, q.l1) < 1e-6);
    assert!(max_abs_diff(copied.video, v.l1) < 1e-6);
    assert_eq!(model.momentum(), 0.9999);
}

#[test]
fn enqueue_writes_columns_and_wraps_the_pointer() {
    let device = Default::default();
    let model = tiny().init::<B>(&device).unwrap();
    let key = |value: f32, n: usize| Tensor::<B, 2>::full([n, HIDDEN], value, &device);
    model
        .dequeue_and_enqueue(key(1.0, 3), key(-1.0, 2))
        .unwrap();
    assert_eq!(model.queue_pointers(), Some((3, 2)));
    model
        .dequeue_and_enqueue(key(2.0, 3), key(-2.0, 4))
        .unwrap();
    assert_eq!(model.queue_pointers(), Some((6, 6)));
    // 6 + 3 > 8: AntMMF clamps the block to end at K (columns 5..8) and wraps to 0.
    model
        .dequeue_and_enqueue(key(3.0, 3), key(-3.0, 3))
        .unwrap();
    assert_eq!(model.queue_pointers(), Some((0, 0)));
    let queue = to_vec(model.text_queue().unwrap()); // [H, 8], row-major
    let row0: Vec<f32> = queue[..8].to_vec();
    assert_eq!(row0, vec![1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0]);
    let video = to_vec(model.video_queue().unwrap());
    assert_eq!(
        &video[..8],
        &[-1.0, -1.0, -2.0, -2.0, -2.0, -3.0, -3.0, -3.0]
    );
    // More keys than the queue holds is an error, not a panic.
    assert!(model.dequeue_and_enqueue(key(0.0, 9), key(0.0, 1)).is_err());
    // A batch with a NaN is skipped, as AntMMF.
    model
        .dequeue_and_enqueue(key(f32::NAN, 1), key(f32::NAN, 1))
        .unwrap();
    assert_eq!(model.queue_pointers(), Some((0, 0)));
    let no_moco = tiny().with_moco_queues(None).init::<B>(&device).unwrap();
    assert!(no_moco.moco.is_none());
    assert!(matches!(
        no_moco.dequeue_and_enqueue(key(1.0, 1), key(1.0, 1)),
        Err(UnivlError::NoMoco)
    ));
}

/// Gradients: the L2 loss reaches the text encoder, the visual backbone and `img_proj`; the L1
/// loss reaches `img_fc`; MoCo key encoders and queues get none.
#[test]
fn gradients_reach_encoders_but_not_keys_or_queues() {
    let device = Default::default();
    let model = tiny().init::<AD>(&device).unwrap();
    let b = batch::<AD>(&device);
    let video = model
        .encode_video(b.video.clone(), b.clip_mask.clone())
        .unwrap();
    let cross = model
        .cross(
            b.ids.clone(),
            b.mask.clone(),
            None,
            video.clip_tokens.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    let l2 = model.l2_score(cross.pooled).sum();
    let grads = l2.backward();
    let norm = |g: Option<Tensor<Flex, 2>>| g.map(|g| to_vec(g.abs().sum())[0]).unwrap_or(0.0);
    let layer0 = &model.bert.encoder.layer[0];
    assert!(
        norm(layer0.attention.query.weight.grad(&grads)) > 0.0,
        "text encoder"
    );
    assert!(norm(model.bert.embeddings.word_embeddings.weight.grad(&grads)) > 0.0);
    let antmmf_models::univl::VisualBackbone::Swin(swin) = &model.visual.backbone else {
        panic!("Swin backbone");
    };
    assert!(
        norm(swin.layers[0].blocks[0].attn.qkv.weight.grad(&grads)) > 0.0,
        "backbone"
    );
    assert!(
        norm(model.img_proj.as_ref().unwrap().grad(&grads)) > 0.0,
        "img_proj"
    );
    assert_eq!(
        norm(model.visual.img_fc.fc1.weight.grad(&grads)),
        0.0,
        "img_fc is L1 only"
    );

    // L1 (in-batch) + MoCo loss against the queues, on a fresh forward (a backward pass
    // consumes the autodiff graph it walked).
    let text = model.encode_text(b.ids.clone(), b.mask.clone(), None);
    let video = model
        .encode_video(b.video.clone(), b.clip_mask.clone())
        .unwrap();
    let keys = model
        .moco_keys(
            b.ids.clone(),
            b.mask.clone(),
            b.video.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    let l1 = Univl::l1_similarity(text.l1.clone(), video.l1.clone(), Some(b.clip_mask.clone()));
    let moco = moco_cross_modal_loss(
        MocoInputs {
            text_query: text.l1,
            clip_query: video.l1.reshape([4, HIDDEN]),
            text_keys: keys.text.clone(),
            clip_keys: keys.video.clone().reshape([4, HIDDEN]),
            text_queue: model.text_queue().unwrap(),
            clip_queue: model.video_queue().unwrap(),
        },
        2,
        0.05,
    )
    .unwrap();
    let grads = (l1.sum() + moco.sum()).backward();
    assert!(
        norm(model.visual.img_fc.fc1.weight.grad(&grads)) > 0.0,
        "img_fc"
    );
    assert!(
        norm(model.visual.img_fc.fc2.weight.grad(&grads)) > 0.0,
        "img_fc"
    );
    let m = model.moco.as_ref().unwrap();
    assert!(
        m.text_key.encoder.layer[0]
            .attention
            .query
            .weight
            .grad(&grads)
            .is_none()
    );
    assert!(m.video_key.img_fc.fc1.weight.grad(&grads).is_none());
    assert!(
        !m.text_key
            .embeddings
            .word_embeddings
            .weight
            .val()
            .is_require_grad()
    );
    assert!(!model.text_queue().unwrap().is_require_grad());
    assert!(!keys.text.is_require_grad() && !keys.video.is_require_grad());

    // The momentum update and the enqueue stay outside autodiff.
    model
        .dequeue_and_enqueue(keys.text.clone(), keys.video.clone().reshape([4, HIDDEN]))
        .unwrap();
    assert!(!model.video_queue().unwrap().is_require_grad());
    let model = model.momentum_update(0.5);
    let m = model.moco.as_ref().unwrap();
    assert!(
        !m.text_key.encoder.layer[0]
            .attention
            .query
            .weight
            .val()
            .is_require_grad()
    );
    assert!(
        model.bert.encoder.layer[0]
            .attention
            .query
            .weight
            .val()
            .is_require_grad()
    );
}

/// Save to bytes with Burn's named-MessagePack recorder, load into a fresh model: identical
/// outputs, key encoders, queues and pointers.
#[test]
fn record_round_trip_keeps_weights_keys_and_queues() {
    let device = Default::default();
    let config = tiny();
    let model = config.init::<B>(&device).unwrap();
    let b = batch::<B>(&device);
    // Make the state non-trivial: queue writes and a momentum step away from the copy.
    model
        .dequeue_and_enqueue(
            Tensor::full([3, HIDDEN], 0.5, &device),
            Tensor::full([5, HIDDEN], -0.5, &device),
        )
        .unwrap();
    let mut model = model;
    model.bert = config.init::<B>(&device).unwrap().bert;
    let model = model.momentum_update(0.5);

    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(model.clone().into_record(), ()).unwrap();
    let fresh = config.init::<B>(&device).unwrap();
    let loaded = fresh.load_record(recorder.load(bytes, &device).unwrap());

    assert_eq!(loaded.queue_pointers(), Some((3, 5)));
    assert_eq!(
        max_abs_diff(loaded.text_queue().unwrap(), model.text_queue().unwrap()),
        0.0
    );
    assert_eq!(
        max_abs_diff(loaded.video_queue().unwrap(), model.video_queue().unwrap()),
        0.0
    );
    let out = |m: &Univl<B>| {
        let t = m.encode_text(b.ids.clone(), b.mask.clone(), None);
        let v = m
            .encode_video(b.video.clone(), b.clip_mask.clone())
            .unwrap();
        let c = m
            .cross(
                b.ids.clone(),
                b.mask.clone(),
                None,
                v.clip_tokens.clone(),
                b.clip_mask.clone(),
            )
            .unwrap();
        let k = m
            .moco_keys(
                b.ids.clone(),
                b.mask.clone(),
                b.video.clone(),
                b.clip_mask.clone(),
            )
            .unwrap();
        (
            t.l1,
            v.l1,
            m.l2_score(c.pooled.clone()),
            m.mlm_logits(c.text),
            m.classify(c.pooled).unwrap(),
            k,
        )
    };
    let (a, b2) = (out(&model), out(&loaded));
    assert_eq!(max_abs_diff(a.0, b2.0), 0.0);
    assert_eq!(max_abs_diff(a.1, b2.1), 0.0);
    assert_eq!(max_abs_diff(a.2, b2.2), 0.0);
    assert_eq!(max_abs_diff(a.3, b2.3), 0.0);
    assert_eq!(max_abs_diff(a.4, b2.4), 0.0);
    assert_eq!(max_abs_diff(a.5.text, b2.5.text), 0.0);
    assert_eq!(max_abs_diff(a.5.video, b2.5.video), 0.0);
}

/// Real all-MiniLM-L6-v2 as the text encoder with `num_hidden_layers: 2`: the text sequence is
/// the full model's `hidden_states.2` (fixtures/minilm/minilm_l6_v2_reference.safetensors),
/// atol 1e-4 / rtol 1e-4; the cross pooler and MoCo text key start as copies of the loaded BERT.
#[test]
fn minilm_first_two_layers_match_reference_hidden_states_2() {
    let device = Default::default();
    let folder = asset("minilm/model.safetensors")
        .parent()
        .unwrap()
        .to_path_buf();
    let mut config = UnivlConfig::small(384, 2, 12, 30522).with_text_model_path(&folder);
    config.text_encoder.params.intermediate_size = None;
    config.text_encoder.params.max_position_embeddings = None;
    let (model, reports) = config.init_pretrained::<B>(&device).expect("load MiniLM");
    let report = &reports[0];
    assert!(report.missing.is_empty(), "{report}");
    assert!(
        report
            .unexpected
            .iter()
            .any(|k| k.starts_with("encoder.layer.5.")),
        "layers 2..5 are not kept: {report}"
    );
    assert!(
        !report.loaded.iter().any(|k| k.contains("layer.2.")),
        "{report}"
    );

    let io = WeightFile::open(fixture("minilm/minilm_l6_v2_reference.safetensors")).unwrap();
    let ids = io.int_tensor::<B, 2>("input_ids", &device).unwrap();
    let mask = io.int_tensor::<B, 2>("attention_mask", &device).unwrap();
    let types = io.int_tensor::<B, 2>("token_type_ids", &device).unwrap();
    let text = model.encode_text(ids.clone(), mask.clone(), Some(types));
    let err = assert_close(
        "univl text sequence vs minilm hidden_states.2",
        text.sequence,
        io.tensor::<B, 3>("hidden_states.2", &device).unwrap(),
        1e-4,
        1e-4,
    );
    println!("max |err| = {err:e}");

    let pooler = model.bert.pooler.as_ref().unwrap();
    assert_eq!(
        max_abs_diff(
            pooler.dense.weight.val(),
            model.cross_pooler.dense.weight.val()
        ),
        0.0
    );
    let key = &model.moco.as_ref().unwrap().text_key;
    assert_eq!(
        max_abs_diff(
            key.encoder.layer[1].output.dense.weight.val(),
            model.bert.encoder.layer[1].output.dense.weight.val()
        ),
        0.0
    );
}

/// Masked clip pooling on a hand-checkable grid, and nearest resampling of a pixel mask.
#[test]
fn clip_pooling_leaves_out_padded_cells() {
    use antmmf_models::univl::visual::{pool_clips, resize_mask_nearest};
    use burn::tensor::Bool;
    let device = Default::default();
    // [B=1, T'=2, h=1, w=2, D=1]: frame 0 cells (1, 3), frame 1 cells (5, 7).
    let grid = || {
        Tensor::<B, 5>::from_data(
            TensorData::new(vec![1f32, 3., 5., 7.], [1, 2, 1, 2, 1]),
            &device,
        )
    };
    let mask = || {
        Tensor::<B, 4, Bool>::from_data(
            TensorData::new(vec![false, true, false, false], [1, 2, 1, 2]),
            &device,
        )
    };
    assert_eq!(to_vec(pool_clips(grid(), None, 1).unwrap()), vec![4.0]);
    assert_eq!(to_vec(pool_clips(grid(), None, 2).unwrap()), vec![2.0, 6.0]);
    let one = to_vec(pool_clips(grid(), Some(mask()), 1).unwrap());
    assert!((one[0] - 13.0 / 3.0).abs() < 1e-6, "{one:?}");
    assert_eq!(
        to_vec(pool_clips(grid(), Some(mask()), 2).unwrap()),
        vec![1.0, 6.0]
    );
    assert!(pool_clips(grid(), None, 3).is_err());

    // 4x4 -> 2x2 nearest keeps rows/cols 0 and 2 (torch: floor(i * in / out)).
    let mut pixels = vec![false; 16];
    pixels[2] = true; // row 0, col 2 -> cell (0, 1)
    pixels[5] = true; // row 1, col 1 -> dropped
    let pixels = Tensor::<B, 4, Bool>::from_data(TensorData::new(pixels, [1, 1, 4, 4]), &device);
    let cells: Vec<bool> = resize_mask_nearest(pixels, [1, 2, 2])
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(cells, vec![false, true, false, false]);

    // Through the model: padding the right half of every frame changes the clip tokens, and
    // an all-false mask is the same as no mask.
    let model = tiny().init::<B>(&device).unwrap();
    let b = batch::<B>(&device);
    let plain = model
        .encode_video(b.video.clone(), b.clip_mask.clone())
        .unwrap();
    let none = Tensor::<B, 4, Bool>::from_data(
        TensorData::new(vec![false; 2 * 4 * 16 * 16], [2, 4, 16, 16]),
        &device,
    );
    let same = model
        .encode_video_with_pixel_mask(b.video.clone(), Some(none), b.clip_mask.clone())
        .unwrap();
    assert!(max_abs_diff(plain.clip_tokens.clone(), same.clip_tokens) < 1e-6);
    let half: Vec<bool> = (0..2 * 4 * 16 * 16).map(|i| i % 16 >= 8).collect();
    let half = Tensor::<B, 4, Bool>::from_data(TensorData::new(half, [2, 4, 16, 16]), &device);
    let masked = model
        .encode_video_with_pixel_mask(b.video, Some(half), b.clip_mask)
        .unwrap();
    assert!(max_abs_diff(plain.clip_tokens, masked.clip_tokens) > 1e-4);
}

/// One AdamW step through [`WithMomentumUpdate`]: the query moves, then the key becomes
/// `m * key + (1 - m) * query` with `m = M = 0.5`; the autodiff model converts to its inner
/// backend for validation with its queues.
#[test]
fn optimizer_step_is_followed_by_the_momentum_update() {
    use antmmf_models::univl::WithMomentumUpdate;
    use burn::module::AutodiffModule;
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    let device = Default::default();
    let mut config = tiny();
    config.momentum = 0.5;
    let model = config.init::<AD>(&device).unwrap();
    let b = batch::<AD>(&device);
    let weight = |m: &Univl<AD>| m.bert.encoder.layer[0].attention.query.weight.val().inner();
    let key_weight = |m: &Univl<AD>| {
        m.moco.as_ref().unwrap().text_key.encoder.layer[0]
            .attention
            .query
            .weight
            .val()
            .inner()
    };
    let q_old = weight(&model);
    assert_eq!(max_abs_diff(key_weight(&model), q_old.clone()), 0.0);
    let video = model
        .encode_video(b.video.clone(), b.clip_mask.clone())
        .unwrap();
    let cross = model
        .cross(
            b.ids.clone(),
            b.mask.clone(),
            None,
            video.clip_tokens,
            b.clip_mask.clone(),
        )
        .unwrap();
    let loss = model.l2_score(cross.pooled).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = WithMomentumUpdate::new(AdamWConfig::new().init::<AD, Univl<AD>>());
    let model = optim.step(1e-2, model, grads);
    let q_new = weight(&model);
    assert!(
        max_abs_diff(q_new.clone(), q_old.clone()) > 1e-3,
        "the query moved"
    );
    let expected = q_old.mul_scalar(0.5) + q_new.mul_scalar(0.5);
    assert!(max_abs_diff(key_weight(&model), expected) < 1e-6);

    model
        .dequeue_and_enqueue(
            Tensor::full([2, HIDDEN], 1.0, &device),
            Tensor::full([2, HIDDEN], 1.0, &device),
        )
        .unwrap();
    let inner: Univl<Flex> = model.valid();
    assert_eq!(inner.queue_pointers(), Some((2, 2)));
    assert_eq!(to_vec(inner.text_queue().unwrap())[..2], [1.0, 1.0]);
}

/// `start_hidden_layer`: layers `start..start + n` of the checkpoint fill layers `0..n`.
#[test]
fn start_hidden_layer_selects_checkpoint_layers() {
    let device = Default::default();
    let folder = asset("minilm/model.safetensors")
        .parent()
        .unwrap()
        .to_path_buf();
    let mut config = UnivlConfig::small(384, 2, 12, 30522).with_text_model_path(&folder);
    config.text_encoder.params.start_hidden_layer = 3;
    let (model, reports) = config.init_pretrained::<B>(&device).expect("load MiniLM");
    let report = &reports[0];
    assert!(report.missing.is_empty(), "{report}");
    assert!(
        report
            .unexpected
            .iter()
            .any(|k| k.starts_with("unused_encoder.layer.0.")),
        "{report}"
    );
    let file = WeightFile::open(folder.join("model.safetensors")).unwrap();
    for (ours, theirs) in [(0, 3), (1, 4)] {
        let stored = file
            .tensor::<B, 2>(
                &format!("encoder.layer.{theirs}.attention.self.query.weight"),
                &device,
            )
            .unwrap();
        let loaded = model.bert.encoder.layer[ours].attention.query.weight.val();
        assert_eq!(
            max_abs_diff(loaded, stored.transpose()),
            0.0,
            "layer {ours}"
        );
    }
    // Asking for more layers than the checkpoint has names the key.
    config.text_encoder.params.start_hidden_layer = 5;
    let err = config.init::<B>(&device).unwrap_err().to_string();
    assert!(
        err.contains("model_attributes.univl.text_encoder.params.num_hidden_layers"),
        "{err}"
    );
}

/// The repository's quickstart config builds the model: MiniLM (2 layers, path relative to the
/// config file) as text/cross encoder, a 4-stage tiny VIOLET Swin, no MoCo.
#[test]
fn quickstart_config_builds_the_model() {
    asset("minilm/model.safetensors");
    let path = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/quickstart.yml"
    ));
    let config = Config::load(&ConfigSources {
        config: Some(path),
        ..Default::default()
    })
    .expect("quickstart config");
    let univl = UnivlConfig::from_config(&config).expect("univl view");
    assert_eq!(univl.hidden_size, 384);
    assert!(!univl.with_moco);
    let device = Default::default();
    let (model, reports) = univl.init_pretrained::<B>(&device).expect("build");
    assert_eq!(reports.len(), 1, "MiniLM loaded");
    assert!(model.moco.is_none());
    assert_eq!(model.bert.encoder.layer.len(), 2);
    let b = batch::<B>(&device);
    let video = Tensor::<B, 5>::random([2, 4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let out = model.encode_video(video, b.clip_mask).unwrap();
    assert_eq!(out.clip_tokens.dims(), [2, 2, 384]);
}

/// Writes `model` as an AntMMF retrieval/pre-training state dict would name it (PyTorch layout,
/// `module.` prefixes, the aliases AntMMF registers twice, the tied decoder copy, int64 queue
/// pointers).
fn write_antmmf_checkpoint(model: &Univl<B>, path: &std::path::Path) {
    use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = Vec::new();
    let rename = |p: &str| -> String {
        let mut k = p.to_string();
        for (from, to) in [
            ("moco.text_key.", "moco_utils.txt_encoder_k."),
            (
                "moco.video_key.backbone.Swin.",
                "moco_utils.img_encoder_k.swin.",
            ),
            (
                "moco.video_key.img_fc.fc1.",
                "moco_utils.img_encoder_k.img_fc.0.",
            ),
            (
                "moco.video_key.img_fc.fc2.",
                "moco_utils.img_encoder_k.img_fc.2.",
            ),
            ("moco.text_queue", "moco_utils.txt_queue"),
            ("moco.video_queue", "moco_utils.img_queue"),
            ("bert.", "module.text_encoder."),
            ("cross_pooler.", "module.cross_pooler."),
            ("visual.backbone.Swin.", "module.img_encoder.swin."),
            ("visual.img_fc.fc1.", "module.img_encoder.img_fc.0."),
            ("visual.img_fc.fc2.", "module.img_encoder.img_fc.2."),
            ("img_proj", "module.img_proj"),
            ("similarity_dense.dense1.", "similarity_dense.0."),
            ("similarity_dense.dense2.", "similarity_dense.2."),
            ("mlm.", "mlm_head.transformer_mlm.cls.predictions."),
            ("itm.", "itm_head.cls.seq_relationship."),
        ] {
            if let Some(rest) = k.strip_prefix(from) {
                k = format!("{to}{rest}");
                break;
            }
        }
        k.replace("layer_norm", "LayerNorm")
            .replace(".attention.query.", ".attention.self.query.")
            .replace(".attention.key.", ".attention.self.key.")
            .replace(".attention.value.", ".attention.self.value.")
    };
    for snapshot in model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false) {
        let data = snapshot.to_data().unwrap().convert::<f32>();
        let shape = data.shape.to_vec();
        let bytes: Vec<u8> = data
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let path = snapshot.full_path();
        if path.starts_with("moco.") && path.ends_with("_ptr") {
            let name = if path.contains("text") { "txt" } else { "img" };
            let ptr = f32::from_le_bytes(bytes[..4].try_into().unwrap()) as i64;
            tensors.push((
                format!("moco_utils.{name}_queue_ptr"),
                vec![1],
                ptr.to_le_bytes().to_vec(),
                safetensors::Dtype::I64,
            ));
            continue;
        }
        let key = rename(&path);
        if let Some(rest) = key.strip_prefix("module.text_encoder.") {
            // AntMMF's aliases of the text encoder.
            tensors.push((
                format!("module.text_encoder.module.{rest}"),
                shape.clone(),
                bytes.clone(),
                safetensors::Dtype::F32,
            ));
            if let Some(enc) = rest.strip_prefix("encoder.") {
                tensors.push((
                    format!("module.cross_encoder.{enc}"),
                    shape.clone(),
                    bytes.clone(),
                    safetensors::Dtype::F32,
                ));
            }
            if rest == "embeddings.word_embeddings.weight" {
                tensors.push((
                    "mlm_head.transformer_mlm.cls.predictions.decoder.weight".into(),
                    shape.clone(),
                    bytes.clone(),
                    safetensors::Dtype::F32,
                ));
            }
        }
        tensors.push((key, shape, bytes, safetensors::Dtype::F32));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, shape, bytes, dtype)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// An AntMMF-named checkpoint of a model (text/cross BERT, Swin, img_fc, img_proj, heads, MoCo
/// keys and queues) loads into a fresh model with identical outputs.
#[test]
fn antmmf_checkpoint_round_trip() {
    use antmmf_models::import::LoadOptions;
    let device = Default::default();
    let config = tiny();
    let model = config.init::<B>(&device).unwrap();
    model
        .dequeue_and_enqueue(
            Tensor::full([3, HIDDEN], 0.5, &device),
            Tensor::full([2, HIDDEN], -0.5, &device),
        )
        .unwrap();
    let mut model = model;
    model.bert = config.init::<B>(&device).unwrap().bert; // keys now differ from the query
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("univl_ckpt");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("univl_retrieval.safetensors");
    write_antmmf_checkpoint(&model, &path);

    let fresh = config.init::<B>(&device).unwrap();
    let (loaded, report) = fresh
        .load_antmmf_checkpoint(&path, &LoadOptions::default())
        .expect("load AntMMF checkpoint");
    assert!(report.missing.is_empty(), "{report}");
    assert!(report.unexpected.is_empty(), "{report}");
    assert!(
        report.ignored.iter().any(|k| k.contains("cross_encoder")),
        "{report}"
    );
    let b = batch::<B>(&device);
    let outputs = |m: &Univl<B>| {
        let t = m.encode_text(b.ids.clone(), b.mask.clone(), None);
        let v = m
            .encode_video(b.video.clone(), b.clip_mask.clone())
            .unwrap();
        let c = m
            .cross(
                b.ids.clone(),
                b.mask.clone(),
                None,
                v.clip_tokens.clone(),
                b.clip_mask.clone(),
            )
            .unwrap();
        let k = m
            .moco_keys(
                b.ids.clone(),
                b.mask.clone(),
                b.video.clone(),
                b.clip_mask.clone(),
            )
            .unwrap();
        vec![
            to_vec(t.l1),
            to_vec(v.l1),
            to_vec(m.l2_score(c.pooled.clone())),
            to_vec(m.mlm_logits(c.text)),
            to_vec(m.itm_logits(c.pooled.clone())),
            to_vec(m.classify(c.pooled).unwrap()),
            to_vec(k.text),
            to_vec(k.video),
            to_vec(m.text_queue().unwrap()),
            to_vec(m.video_queue().unwrap()),
        ]
    };
    for (i, (a, b)) in outputs(&model).iter().zip(outputs(&loaded)).enumerate() {
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-6, "output {i} differs by {diff}");
    }
    assert_eq!(
        loaded.queue_pointers(),
        Some((3, 2)),
        "int64 pointers restored"
    );

    // A checkpoint without MoCo state (fine-tuning from a retrieval model without with_moco):
    // the key encoders become copies of the loaded query encoders.
    let plain = config
        .clone()
        .with_moco_queues(None)
        .init::<B>(&device)
        .unwrap();
    let path = dir.join("univl_no_moco.safetensors");
    write_antmmf_checkpoint(&plain, &path);
    let (loaded, report) = config
        .init::<B>(&device)
        .unwrap()
        .load_antmmf_checkpoint(&path, &LoadOptions::allow_missing())
        .unwrap();
    assert!(
        report.missing.iter().all(|k| k.starts_with("moco.")),
        "{report}"
    );
    let keys = loaded
        .moco_keys(
            b.ids.clone(),
            b.mask.clone(),
            b.video.clone(),
            b.clip_mask.clone(),
        )
        .unwrap();
    let text = plain.encode_text(b.ids.clone(), b.mask.clone(), None);
    assert!(max_abs_diff(keys.text, text.l1) < 1e-6);
}

/// An HF `CLIPModel`-style file (vision tower under `vision_model.`, `visual_projection`, a text
/// key) loads into the CLIP visual encoder: identical clip tokens, projection included.
#[test]
fn clip_visual_encoder_loads_hf_clip_weights_with_projection() {
    use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
    let device = Default::default();
    let config = tiny().with_image_encoder(ImageEncoderConfig::VitImageEncoder(ClipVisualParams {
        input_resolution: 16,
        patch_size: 8,
        width: 16,
        layers: 1,
        out_dim: 24,
        head_width: 8,
        ..ClipVisualParams::default()
    }));
    let source = config.init::<B>(&device).unwrap();
    let antmmf_models::univl::VisualBackbone::Clip(clip) = &source.visual.backbone else {
        panic!("CLIP backbone");
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push = |key: String, data: TensorData| {
        let data = data.convert::<f32>();
        let bytes = data
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        tensors.push((key, data.shape.to_vec(), bytes));
    };
    for snapshot in clip
        .vision
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
    {
        push(
            format!("vision_model.{}", snapshot.full_path()),
            snapshot.to_data().unwrap(),
        );
    }
    let proj = clip.proj.as_ref().unwrap().weight.val().transpose(); // PyTorch [out, in]
    push("visual_projection.weight".into(), proj.into_data());
    push(
        "text_model.final_layer_norm.weight".into(),
        TensorData::new(vec![1f32; 4], [4]),
    );
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes);
            (k.clone(), view.unwrap())
        })
        .collect();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("univl_clip");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("clip.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();

    let (loaded, report) = config
        .init::<B>(&device)
        .unwrap()
        .load_visual_encoder(&path)
        .expect("load CLIP");
    assert!(report.loaded.iter().any(|k| k == "proj.weight"), "{report}");
    assert_eq!(
        report.unexpected,
        vec!["text_model.final_layer_norm.weight".to_string()]
    );
    let b = batch::<B>(&device);
    let grid = |m: &Univl<B>| m.visual.backbone.grid(b.video.clone()).unwrap();
    assert!(max_abs_diff(grid(&source), grid(&loaded)) < 1e-6);
}
