//! `VideoTextDataset` on the project's sample annotations (`data/sample`) and the sample media
//! (`assets/video`, `assets/images`, fetched by scripts/setup.sh), at 32 px: every task kind,
//! reproducibility from the generator, ASR-free pretraining with false captions, missing media
//! with and without `allow_video_miss`.

use std::path::{Path, PathBuf};

use antmmf_data::annotations::LineShard;
use antmmf_data::dataset::{
    DatasetOptions, SampleError, SampleLabel, TaskKind, VideoTextDataset, sample_rng,
};
use antmmf_data::dataset_config::{DatasetAttributes, Split};
use antmmf_data::media::DecodeOptions;
use burn::data::dataset::Dataset;
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn assets() -> PathBuf {
    let dir = std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("assets"));
    for p in ["video/bikes.mp4", "images/chelsea.png", "minilm/vocab.txt"] {
        assert!(
            dir.join(p).is_file(),
            "missing asset {}: run scripts/setup.sh to fetch it",
            dir.join(p).display()
        );
    }
    dir
}

/// A dataset node over `data/sample` with 2 clips x 2 frames, 32 px frames, 16 tokens.
fn node(train: &str, test: &str, extra: Value) -> Value {
    let a = assets();
    let mut v = json!({
        "data_root_dir": workspace().join("data/sample").to_string_lossy(),
        "annotations": {"train": train, "val": test, "test": test},
        "use_videos": true,
        "videos": {"train": a.join("video").to_string_lossy(), "val": a.join("video").to_string_lossy(), "test": a.join("video").to_string_lossy()},
        "use_images": true,
        "images": {"train": a.join("images").to_string_lossy(), "val": a.join("images").to_string_lossy(), "test": a.join("images").to_string_lossy()},
        "train_ensemble_n_clips": 2,
        "test_ensembel_n_clips": 2,
        "num_frm": 2,
        "processors": {
            "caption_processor": {"type": "masked_bert_tokenizer", "params": {
                "max_seq_length": 16, "mask_probability": 0.15,
                "tokenizer_config": {"type": "bert-base-uncased",
                    "params": {"vocab_path": a.join("minilm/vocab.txt").to_string_lossy()}}}},
            "train_frame_processor": {"type": "pyvideo_transform",
                "params": {"mode": "train", "crop_size": 32, "aug_type": "randaug"}},
            "test_frame_processor": {"type": "pyvideo_transform",
                "params": {"mode": "val", "crop_size": 32}}
        }
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    v
}

fn options() -> DatasetOptions {
    DatasetOptions {
        prefix: "dataset".into(),
        decode: DecodeOptions {
            resize: Some((64, 48)),
            ..DecodeOptions::default()
        },
        ..DatasetOptions::default()
    }
}

fn dataset(node: Value, split: Split, kind: TaskKind) -> VideoTextDataset {
    let attrs = DatasetAttributes::from_deserializer(node, "dataset").expect("valid node");
    VideoTextDataset::with_options(&attrs, split, Path::new("."), kind, &options())
        .expect("dataset builds")
}

#[test]
fn retrieval_eval_is_file_order_with_id_maps() {
    let ds = dataset(
        node("retrieval_train.jsonl", "retrieval_test.jsonl", json!({})),
        Split::Test,
        TaskKind::RetrievalEval,
    );
    assert_eq!(ds.len(), 5);
    let ret = ds.retrieval().expect("retrieval maps");
    assert_eq!(ret.num_videos(), 4);
    assert_eq!(ret.num_texts(), 5);
    let clips = [
        "bikes",
        "carphone_pristine",
        "carphone_distorted",
        "bigbuckbunny",
        "bigbuckbunny",
    ];
    for (i, clip) in clips.iter().enumerate() {
        let s = ds
            .get_with_rng(i, &mut sample_rng(0, 0, i as u64))
            .expect("sample");
        assert_eq!(s.clip_name, *clip);
        assert_eq!(s.text_id, Some(i));
        assert_eq!(s.video_id, Some(i.min(3)));
        assert_eq!(s.frame_shape, [4, 3, 32, 32]);
        assert_eq!(s.frames.len(), 4 * 3 * 32 * 32);
        assert_eq!(s.clip_mask, vec![true, true]);
        assert_eq!(s.caption.input_ids.len(), 16);
        assert!(s.false_caption.is_none() && s.label.is_none() && s.options.is_none());
        // Normalized frames of a real clip are not all zero.
        assert!(s.frames.iter().any(|v| v.abs() > 0.1));
    }
    assert_eq!(ret.texts_of_video(3), &[3, 4]);
    // Eval sampling and a test split without masking randomness in the frames: the generator
    // only drives the caption masks, so the frames do not depend on it.
    let a = ds.get_with_rng(0, &mut sample_rng(1, 0, 0)).expect("a");
    let b = ds.get_with_rng(0, &mut sample_rng(2, 0, 0)).expect("b");
    assert_eq!(a.frames, b.frames);
}

#[test]
fn same_generator_same_sample_and_burn_dataset_get() {
    let ds = dataset(
        node("retrieval_train.jsonl", "retrieval_test.jsonl", json!({})),
        Split::Train,
        TaskKind::RetrievalTrain,
    );
    assert_eq!(ds.len(), 3);
    let a = ds.get_with_rng(1, &mut sample_rng(7, 3, 11)).expect("a");
    let b = ds.get_with_rng(1, &mut sample_rng(7, 3, 11)).expect("b");
    assert_eq!(a, b);
    assert!(a.caption.input_ids_unmasked.len() == 16);
    // Train mode: random frames, randaug, a random caption of the video; over a few seeds the
    // frames and captions change.
    let draws: Vec<_> = (0..6)
        .map(|s| ds.get_with_rng(1, &mut sample_rng(s, 0, 0)).expect("draw"))
        .collect();
    assert!(draws.iter().any(|d| d.frames != draws[0].frames));
    let texts: std::collections::HashSet<_> = draws.iter().map(|d| d.text.clone()).collect();
    assert_eq!(
        texts,
        [
            "a man talks on a phone while sitting in a car",
            "a passenger speaks into a mobile phone"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    // Burn's Dataset::get: the generator derives from (seed, index).
    let g = Dataset::get(&ds, 2).expect("item");
    assert_eq!(
        g,
        ds.get_with_rng(2, &mut sample_rng(0, 0, 2)).expect("same")
    );
    assert!(Dataset::get(&ds, 3).is_none());
    assert!(matches!(
        ds.get_with_rng(3, &mut sample_rng(0, 0, 0)),
        Err(SampleError::IndexOutOfRange { index: 3, len: 3 })
    ));
}

#[test]
fn pretrain_images_repeat_and_false_captions_come_from_other_videos() {
    let ds = dataset(
        node(
            "pretrain_image.jsonl",
            "pretrain_video.jsonl",
            json!({"add_false_caption": true}),
        ),
        Split::Train,
        TaskKind::Pretrain,
    );
    assert_eq!(ds.len(), 8);
    let cap = ds.caption_processor();
    let mut seen_false = std::collections::HashSet::new();
    for i in 0..ds.len() {
        for seed in 0..4 {
            let s = ds
                .get_with_rng(i, &mut sample_rng(seed, 0, i as u64))
                .expect("image sample");
            assert_eq!(s.frame_shape, [4, 3, 32, 32]);
            // One image, transformed once, repeated to every frame.
            let per = 3 * 32 * 32;
            for t in 1..4 {
                assert_eq!(s.frames[..per], s.frames[t * per..(t + 1) * per]);
            }
            assert_eq!(s.video_id, Some(i));
            let own = cap.process_with_probability(&s.text, 0.0, &mut sample_rng(0, 0, 0));
            let f = s.false_caption.expect("false caption");
            assert_ne!(
                f.input_ids, own.input_ids,
                "item {i}: false caption is its own"
            );
            assert_eq!(
                f.lm_label_ids,
                vec![-1; 16],
                "false captions are not masked"
            );
            seen_false.insert(f.input_ids);
        }
    }
    assert!(seen_false.len() > 3);
}

#[test]
fn pretrain_video_windows_eval() {
    let ds = dataset(
        node("pretrain_image.jsonl", "pretrain_video.jsonl", json!({})),
        Split::Val,
        TaskKind::Pretrain,
    );
    // bikes [0,5], bikes [5,10], carphone_pristine, carphone_distorted, bigbuckbunny [0,5.3].
    assert_eq!(ds.len(), 5);
    let s0 = ds.get_with_rng(0, &mut sample_rng(0, 0, 0)).expect("s0");
    let s1 = ds.get_with_rng(1, &mut sample_rng(0, 0, 1)).expect("s1");
    assert_eq!((s0.video_id, s1.video_id), (Some(0), Some(0)));
    assert_ne!(
        s0.frames, s1.frames,
        "two windows of one video give other frames"
    );
    assert_eq!(s1.text, "a bicycle rider passes along a quiet street");
}

#[test]
fn classification_and_mcqa_items() {
    let labels = json!({"labels": ["bicycle", "street", "phone", "car", "rabbit", "hill"]});
    let ds = dataset(
        node("vqa_train.jsonl", "vqa_test.jsonl", labels),
        Split::Test,
        TaskKind::Classification,
    );
    let got: Vec<_> = (0..ds.len())
        .map(|i| {
            let s = ds.get_with_rng(i, &mut sample_rng(0, 0, 0)).expect("vqa");
            (s.text, s.label)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "what vehicle does the man ride".to_string(),
                Some(SampleLabel::Single(0))
            ),
            (
                "what does the man talk into".to_string(),
                Some(SampleLabel::Single(2))
            ),
            (
                "which animal is in the cartoon".to_string(),
                Some(SampleLabel::Single(4))
            ),
        ]
    );

    let ds = dataset(
        node("mcqa_test.jsonl", "mcqa_test.jsonl", json!({})),
        Split::Test,
        TaskKind::McQa,
    );
    assert_eq!(ds.len(), 3);
    let s = ds.get_with_rng(1, &mut sample_rng(0, 0, 1)).expect("mcqa");
    assert_eq!(s.qid.as_deref(), Some("mc1"));
    assert_eq!(s.answer, Some(2));
    let opts = s.options.expect("options");
    assert_eq!(opts.len(), 4);
    let cap = ds.caption_processor();
    let third = cap.process_with_probability(
        "a man talks on a phone in a car",
        0.0,
        &mut sample_rng(0, 0, 0),
    );
    assert_eq!(opts[2].input_ids, third.input_ids);
    assert_eq!(
        s.caption.input_mask.iter().sum::<i64>(),
        2,
        "empty caption: CLS SEP"
    );
}

#[test]
fn multi_label_targets_are_multi_hot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ann = dir.path().join("multi.jsonl");
    std::fs::write(
        &ann,
        "{\"clip_name\": \"bikes\", \"caption\": \"q\", \"label\": [\"phone\", 0]}\n\
         {\"clip_name\": \"bikes\", \"caption\": \"q\", \"label\": []}\n",
    )
    .expect("write");
    let labels = json!({"labels": ["bicycle", "street", "phone"]});
    let ann = ann.to_string_lossy().into_owned();
    let ds = dataset(
        node(&ann, &ann, labels),
        Split::Test,
        TaskKind::Classification,
    );
    let s = ds.get_with_rng(0, &mut sample_rng(0, 0, 0)).expect("multi");
    assert_eq!(s.label, Some(SampleLabel::MultiHot(vec![1.0, 0.0, 1.0])));
    let s = ds.get_with_rng(1, &mut sample_rng(0, 0, 1)).expect("empty");
    assert_eq!(s.label, Some(SampleLabel::MultiHot(vec![0.0; 3])));
}

#[test]
fn missing_video_is_an_error_or_zero_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ann = dir.path().join("missing.jsonl");
    std::fs::write(
        &ann,
        "{\"caption\": \"a clip that is not there\", \"clip_name\": \"no_such_clip\", \"sen_id\": 0}\n",
    )
    .expect("write");
    let ann = ann.to_string_lossy().into_owned();
    let ds = dataset(
        node(&ann, &ann, json!({})),
        Split::Test,
        TaskKind::RetrievalEval,
    );
    let err = ds
        .get_with_rng(0, &mut sample_rng(0, 0, 0))
        .expect_err("missing media");
    assert!(err.is_media(), "{err}");
    let path = err.path().expect("names the file");
    assert!(path.ends_with("no_such_clip.mp4"), "{}", path.display());
    assert!(err.to_string().contains("no_such_clip"));

    let ds = dataset(
        node(&ann, &ann, json!({"allow_video_miss": true})),
        Split::Test,
        TaskKind::RetrievalEval,
    );
    let s = ds
        .get_with_rng(0, &mut sample_rng(0, 0, 0))
        .expect("zero-filled");
    assert_eq!(s.frame_shape, [4, 3, 32, 32]);
    assert!(s.frames.iter().all(|&v| v == 0.0));
    assert_eq!(s.clip_mask, vec![false, false]);
    assert!(s.is_media_missing());
    assert_eq!(
        s.caption.input_mask.iter().sum::<i64>(),
        8,
        "CLS + 6 words + SEP"
    );
}

#[test]
fn config_errors_name_the_key() {
    let mut n = node("retrieval_train.jsonl", "retrieval_test.jsonl", json!({}));
    n["processors"]["test_frame_processor"] = json!({"type": "pyvideo_transform",
        "params": {"mode": "val", "crop_size": 32, "num_samples": 3}});
    let attrs = DatasetAttributes::from_deserializer(n, "dataset").expect("node");
    let err = VideoTextDataset::with_options(
        &attrs,
        Split::Val,
        Path::new("."),
        TaskKind::RetrievalEval,
        &options(),
    )
    .expect_err("num_samples != n_clips * num_frm");
    assert!(
        err.to_string()
            .starts_with("dataset.processors.test_frame_processor.params.num_samples: 3 frames"),
        "{err}"
    );
    let n = node(
        "retrieval_train.jsonl",
        "retrieval_test.jsonl",
        json!({"video_field_key": "video_path"}),
    );
    let attrs = DatasetAttributes::from_deserializer(n, "dataset").expect("node");
    let err = VideoTextDataset::with_options(
        &attrs,
        Split::Val,
        Path::new("."),
        TaskKind::RetrievalEval,
        &options(),
    )
    .expect_err("unsupported video_field_key");
    assert_eq!(
        err.to_string(),
        "dataset.video_field_key: \"video_path\" is not supported: clips are named by `clip_name`"
    );
    let mut n = node("retrieval_train.jsonl", "retrieval_test.jsonl", json!({}));
    n["processors"]
        .as_object_mut()
        .expect("object")
        .remove("train_frame_processor");
    let attrs = DatasetAttributes::from_deserializer(n, "dataset").expect("node");
    let err = VideoTextDataset::with_options(
        &attrs,
        Split::Train,
        Path::new("."),
        TaskKind::RetrievalTrain,
        &options(),
    )
    .expect_err("no train processor");
    assert_eq!(
        err.to_string(),
        "dataset.processors.train_frame_processor: is not set"
    );
}

#[test]
fn pretrain_asr_captions_take_their_segment_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let asrs = dir.path().join("asrs");
    std::fs::create_dir(&asrs).expect("mkdir");
    std::fs::write(
        asrs.join("bikes"),
        r#"{"start": [0.0, 5.0], "end": [4.0, 9.9], "text": ["a man rides a bike", "he passes parked cars"]}"#,
    )
    .expect("write transcript");
    let ann = dir.path().join("asr.jsonl");
    std::fs::write(
        &ann,
        "{\"clip_name\": \"bikes.mp4\", \"caption\": null, \"type\": \"video\"}\n\
         {\"clip_name\": \"bikes.mp4\", \"caption\": \"first\", \"start\": 0.0, \"end\": 4.0, \"sen_id\": 1}\n\
         {\"clip_name\": \"bikes.mp4\", \"caption\": \"second\", \"start\": 5.0, \"end\": 9.9, \"sen_id\": 2}\n\
         {\"clip_name\": \"carphone_pristine.mp4\", \"caption\": \"\"}\n",
    )
    .expect("write annotations");
    let ann = ann.to_string_lossy().into_owned();
    let asr_dir = asrs.to_string_lossy().into_owned();
    let extra = json!({
        "use_asrs": true,
        "asrs": {"train": asr_dir, "val": asr_dir, "test": asr_dir},
        "asr_sampler_config": {"train_n_pairs": 1, "test_n_pairs": 1, "min_time": 1.0}
    });
    let ds = dataset(node(&ann, &ann, extra), Split::Val, TaskKind::Pretrain);
    assert_eq!(ds.len(), 4);
    let first = ds.get_with_rng(1, &mut sample_rng(0, 0, 1)).expect("first");
    let second = ds
        .get_with_rng(2, &mut sample_rng(0, 0, 2))
        .expect("second");
    let mut seen = std::collections::HashSet::new();
    for seed in 0..8 {
        let s = ds
            .get_with_rng(0, &mut sample_rng(seed, 0, 0))
            .expect("ASR sample");
        match s.text.as_str() {
            "a man rides a bike" => assert_eq!(s.frames, first.frames),
            "he passes parked cars" => assert_eq!(s.frames, second.frames),
            other => panic!("unexpected ASR caption {other:?}"),
        }
        seen.insert(s.text);
    }
    assert_eq!(seen.len(), 2, "both segments are drawn");
    // No transcript for carphone_pristine: no caption, an error naming the clip.
    let err = ds
        .get_with_rng(3, &mut sample_rng(0, 0, 3))
        .expect_err("no transcript");
    assert!(matches!(err, SampleError::NoCaption { .. }), "{err}");
    assert!(err.to_string().contains("carphone_pristine.mp4"), "{err}");
}

#[test]
fn auto_split_pretraining_reads_only_the_ranks_share() {
    let attrs = DatasetAttributes::from_deserializer(
        node(
            "pretrain_image.jsonl",
            "pretrain_video.jsonl",
            json!({"annotations_loader": "auto_split"}),
        ),
        "dataset",
    )
    .expect("valid node");
    let build = |split, rank, world| {
        let options = DatasetOptions {
            shard: LineShard::new(rank, world).expect("shard"),
            ..options()
        };
        VideoTextDataset::with_options(&attrs, split, Path::new("."), TaskKind::Pretrain, &options)
            .expect("dataset builds")
    };
    // 8 images, one per line, over 3 ranks: lines 0..2, 2..5, 5..8.
    let mut names = Vec::new();
    for (rank, len) in [(0, 2), (1, 3), (2, 3)] {
        let ds = build(Split::Train, rank, 3);
        assert_eq!(ds.len(), len, "rank {rank}");
        assert_eq!(ds.annotation_shard(), LineShard::new(rank, 3).ok());
        names.extend((0..ds.len()).map(|i| ds.clip_name(i).expect("clip").to_owned()));
    }
    let whole = dataset(
        node("pretrain_image.jsonl", "pretrain_video.jsonl", json!({})),
        Split::Train,
        TaskKind::Pretrain,
    );
    let all: Vec<String> = (0..whole.len())
        .map(|i| whole.clip_name(i).expect("clip").to_owned())
        .collect();
    assert_eq!(names, all, "the shards tile the file in order");
    assert_eq!(whole.annotation_shard(), None);
    // Evaluation splits are read whole (AntMMF splits training annotations only).
    let val = build(Split::Val, 1, 3);
    assert_eq!((val.len(), val.annotation_shard()), (5, None));
    // More ranks than lines: a clear error naming the file.
    let err = VideoTextDataset::with_options(
        &attrs,
        Split::Train,
        Path::new("."),
        TaskKind::Pretrain,
        &DatasetOptions {
            shard: LineShard::new(0, 9).expect("shard"),
            ..options()
        },
    )
    .expect_err("rank 0 of 9 has no line of 8");
    assert!(
        err.to_string().contains("pretrain_image.jsonl") && err.to_string().contains("rank 0 of 9"),
        "{err}"
    );
}
