//! Annotation readers on our own samples in AntMMF's jsonl formats (`tests/data/`), and every kind
//! of bad input written into a temporary folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use antmmf_data::annotations::asr::{AsrCaption, AsrSampler, AsrSamplerConfig, AsrTranscript};
use antmmf_data::annotations::classification::{ClassLabel, ClassificationAnnotations, LabelSpace};
use antmmf_data::annotations::mcqa::McQaAnnotations;
use antmmf_data::annotations::pretrain::PretrainAnnotations;
use antmmf_data::annotations::retrieval::{RetrievalAnnotations, RetrievalMode};
use antmmf_data::annotations::{AnnotationError, MediaKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

fn labels() -> LabelSpace {
    LabelSpace {
        names: vec!["guitar".into(), "dog".into(), "snow".into()],
        num_classes: None,
    }
}

#[test]
fn pretrain_groups_by_clip_and_window() {
    let ann =
        PretrainAnnotations::load(&[data("pretrain_video.jsonl"), data("pretrain_img.jsonl")])
            .expect("loads");
    assert_eq!(ann.len(), 6);
    let captions = |i: usize| -> Vec<Option<String>> {
        ann.group(i)
            .expect("group")
            .iter()
            .map(|x| x.caption.clone())
            .collect()
    };
    // ball.mp4 0-4.5 s: two lines, sorted by sen_id.
    assert_eq!(
        captions(0),
        [
            Some("a ball rolling".into()),
            Some("a red ball rolls across the floor".into())
        ]
    );
    let g0 = ann.group(0).expect("group");
    assert_eq!((g0[0].start, g0[0].end), (Some(0.0), Some(4.5)));
    assert_eq!(g0[0].key.as_deref(), Some("0"));
    // ball.mp4 5-8 s is its own group of the same clip.
    assert_eq!(captions(1), [Some("the ball stops near a wall".into())]);
    assert_eq!(ann.group(1).expect("group")[0].video_idx, 0);
    // lecture.mp4: empty caption (ASR), no window.
    let lecture = &ann.group(2).expect("group")[0];
    assert_eq!(
        (lecture.caption.as_deref(), lecture.start, lecture.video_idx),
        (None, None, 1)
    );
    assert_eq!(ann.group(3).expect("group")[0].clip_name, "street.mp4");
    // Images of the second file: clip indices continue after the first file's three clips.
    let cat = ann.group(4).expect("group");
    assert_eq!(
        (cat.len(), cat[0].kind, cat[0].video_idx),
        (2, MediaKind::Image, 3)
    );
    assert_eq!(ann.group(5).expect("group")[0].video_idx, 4);
    assert_eq!(ann.group(0).expect("group")[0].kind, MediaKind::Video);

    // Each access draws one caption of the group; both are drawn over many seeds.
    let mut seen = BTreeSet::new();
    for seed in 0..64 {
        let item = ann
            .sample(0, &mut ChaCha8Rng::seed_from_u64(seed))
            .expect("item");
        seen.insert(item.caption.clone().expect("caption"));
    }
    assert_eq!(seen.len(), 2);
    assert!(ann.sample(6, &mut ChaCha8Rng::seed_from_u64(0)).is_none());
}

fn lecture() -> AsrTranscript {
    AsrTranscript::load_for_clip(&data("asr_files"), "videos/lecture.mp4")
        .expect("valid transcript")
        .expect("file exists")
}

fn cap(caption: &str, start: f64, end: f64) -> AsrCaption {
    AsrCaption {
        caption: caption.into(),
        start,
        end,
    }
}

#[test]
fn asr_segments_grow_to_min_time() {
    let t = lecture();
    assert_eq!(t.len(), 5);
    let cfg = AsrSamplerConfig {
        train_n_pairs: -1,
        min_time: 5.0,
        ..AsrSamplerConfig::default()
    };
    let s = AsrSampler::new(cfg, true);
    // seg 0 (0-2 s) has no previous: grows forward to 0-10 s; seg 3 (10-11 s) takes the
    // previous segment because that span (4-11) is shorter than with the next (10-20).
    assert_eq!(s.single_transcript(&t, 0), Some(cap("aabbbc", 0.0, 10.0)));
    assert_eq!(s.single_transcript(&t, 2), Some(cap("c", 4.0, 10.0)));
    assert_eq!(s.single_transcript(&t, 3), Some(cap("cdddd", 4.0, 11.0)));
    assert_eq!(s.single_transcript(&t, 5), None);
    // n_pairs -1: every segment in order, repeated texts dropped (seg 1 also gives "aabbbc").
    let all = s.sample(&t, &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!(
        all,
        [
            cap("aabbbc", 0.0, 10.0),
            cap("c", 4.0, 10.0),
            cap("cdddd", 4.0, 11.0),
            cap("ee", 11.0, 20.0)
        ]
    );
}

#[test]
fn asr_min_words_and_no_context() {
    let t = lecture();
    let by_words = AsrSampler::new(
        AsrSamplerConfig {
            min_time: 0.0,
            min_words: 4,
            ..AsrSamplerConfig::default()
        },
        true,
    );
    // min_time 0: with neighbours on both sides AntMMF adds the previous segment when the next
    // text is not longer ("c" vs "aa").
    assert_eq!(
        by_words.single_transcript(&t, 1),
        Some(cap("aabbb", 0.0, 4.0))
    );
    assert_eq!(
        by_words.single_transcript(&t, 3),
        Some(cap("dddd", 10.0, 11.0))
    );
    let plain = AsrSampler::new(
        AsrSamplerConfig {
            with_long_context: false,
            ..AsrSamplerConfig::default()
        },
        false,
    );
    assert_eq!(plain.single_transcript(&t, 1), Some(cap("bbb", 2.0, 4.0)));
}

#[test]
fn asr_sampling_counts() {
    let t = lecture();
    let known: BTreeSet<&str> = ["aabbbc", "c", "cdddd", "ee"].into_iter().collect();
    let three = AsrSampler::new(
        AsrSamplerConfig {
            train_n_pairs: 3,
            min_time: 5.0,
            ..AsrSamplerConfig::default()
        },
        true,
    );
    let eight = AsrSampler::new(
        AsrSamplerConfig {
            test_n_pairs: 8,
            min_time: 5.0,
            ..AsrSamplerConfig::default()
        },
        false,
    );
    let mut firsts = BTreeSet::new();
    for seed in 0..200 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let caps = three.sample(&t, &mut rng);
        assert!((2..=3).contains(&caps.len()), "{caps:?}");
        assert!(caps.iter().all(|c| known.contains(c.caption.as_str())));
        firsts.insert(caps[0].caption.clone());
        // More pairs than segments: every segment is used, so all four texts appear.
        assert_eq!(eight.sample(&t, &mut rng).len(), 4);
    }
    assert_eq!(firsts.len(), 4, "shuffled: any caption may come first");
}

#[test]
fn asr_missing_and_malformed_transcripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        AsrTranscript::load_for_clip(dir.path(), "nothing.mp4")
            .expect("missing is not an error")
            .is_none()
    );
    write(
        dir.path(),
        "uneven",
        br#"{"start": [0.0], "end": [1.0, 2.0], "text": ["a"]}"#,
    );
    let err = AsrTranscript::load_for_clip(dir.path(), "uneven.mp4").expect_err("uneven");
    assert!(
        err.to_string()
            .contains("uneven: `start`, `end` and `text` differ"),
        "{err}"
    );
    write(
        dir.path(),
        "badtype",
        br#"{"start": [0.0], "end": [1.0], "text": [3]}"#,
    );
    let err = AsrTranscript::load_for_clip(dir.path(), "badtype").expect_err("bad type");
    assert!(err.to_string().contains("key `text[0]`"), "{err}");
    let empty = AsrTranscript {
        start: vec![],
        end: vec![],
        text: vec![],
    };
    let s = AsrSampler::new(AsrSamplerConfig::default(), true);
    assert!(
        s.sample(&empty, &mut ChaCha8Rng::seed_from_u64(0))
            .is_empty()
    );
}

#[test]
fn retrieval_train_and_eval() {
    let train = RetrievalAnnotations::load(&[data("retrieval_train.jsonl")], RetrievalMode::Train)
        .expect("loads");
    assert_eq!(
        (train.len(), train.num_videos(), train.num_texts()),
        (3, 3, 3)
    );
    // "a man plays a guitar" describes clip1 and clip3.
    assert_eq!(train.videos_of_text(0), [0, 2]);
    assert_eq!(train.texts_of_video(0), [0, 1]);
    assert_eq!(train.video_names()[2], "data/mp4/clip3");
    let mut seen = BTreeSet::new();
    for seed in 0..64 {
        let item = train
            .get(0, &mut ChaCha8Rng::seed_from_u64(seed))
            .expect("item");
        assert_eq!(item.vid, 0);
        seen.insert(item.tid);
    }
    assert_eq!(seen, BTreeSet::from([0, 1]));

    let test = RetrievalAnnotations::load(&[data("retrieval_test.jsonl")], RetrievalMode::Eval)
        .expect("loads");
    assert_eq!((test.len(), test.num_videos(), test.num_texts()), (3, 2, 3));
    let ids: Vec<(usize, usize, Option<&str>)> = test
        .items()
        .iter()
        .map(|x| (x.vid, x.tid, x.key.as_deref()))
        .collect();
    assert_eq!(
        ids,
        [
            (0, 0, Some("ret0")),
            (1, 1, Some("ret1")),
            (1, 2, Some("ret2"))
        ]
    );
    assert_eq!(test.texts_of_video(1), [1, 2]);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert_eq!(
        test.get(2, &mut rng).expect("item").caption,
        "a dog plays in the snow"
    );
    assert!(test.get(3, &mut rng).is_none());
}

#[test]
fn classification_labels() {
    let ann =
        ClassificationAnnotations::load(&[data("classification.jsonl")], &labels()).expect("loads");
    let got: Vec<Option<ClassLabel>> = ann.items().iter().map(|x| x.label.clone()).collect();
    assert_eq!(
        got,
        [
            Some(ClassLabel::Single(2)),
            Some(ClassLabel::Single(0)),
            Some(ClassLabel::Single(1)),
            Some(ClassLabel::Multi(vec![1, 2])),
            Some(ClassLabel::Multi(vec![])),
            None
        ]
    );
    assert_eq!(
        ann.items()[1].question.as_deref(),
        Some("what is the man playing?")
    );
}

#[test]
fn classification_label_errors_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "cls.jsonl",
        b"{\"clip_name\": \"a\", \"caption\": \"\", \"label\": 0}\n{\"clip_name\": \"b\", \"caption\": \"\", \"label\": 3}\n",
    );
    let err = ClassificationAnnotations::load(&[&p], &labels()).expect_err("out of range");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: key `label`: label 3 is out of range: 3 classes (0..=2)",
            p.display()
        )
    );
    // Without a `labels` list the class count comes from num_labels.
    let space = LabelSpace {
        names: vec![],
        num_classes: Some(101),
    };
    assert!(ClassificationAnnotations::load(&[&p], &space).is_ok());
    let p = write(
        dir.path(),
        "name.jsonl",
        b"{\"clip_name\": \"a\", \"label\": [\"dog\", \"cat\"]}\n",
    );
    let err = ClassificationAnnotations::load(&[&p], &labels()).expect_err("unknown name");
    assert!(
        err.to_string()
            .contains("name.jsonl:1: key `label`: label \"cat\" is neither"),
        "{err}"
    );
    let p = write(
        dir.path(),
        "neg.jsonl",
        b"{\"clip_name\": \"a\", \"label\": -1}\n",
    );
    let err = ClassificationAnnotations::load(&[&p], &space).expect_err("negative");
    assert!(
        err.to_string()
            .contains("neg.jsonl:1: key `label`: label -1 is out of range"),
        "{err}"
    );
    let p = write(
        dir.path(),
        "float.jsonl",
        b"{\"clip_name\": \"a\", \"label\": 1.5}\n",
    );
    let err = ClassificationAnnotations::load(&[&p], &space).expect_err("float");
    assert!(
        err.to_string()
            .contains("float.jsonl:1: key `label`: label 1.5 is not an integer"),
        "{err}"
    );
}

#[test]
fn multi_choice_qa() {
    let ann = McQaAnnotations::load(&[data("mcqa.jsonl")]).expect("loads");
    let got: Vec<(&str, usize, Option<usize>)> = ann
        .items()
        .iter()
        .map(|x| (x.qid.as_str(), x.options.len(), x.answer))
        .collect();
    assert_eq!(got, [("q0", 3, Some(1)), ("7", 2, Some(0))]);

    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "mc.jsonl",
        b"{\"qid\": \"a\", \"clip_name\": \"v\", \"answer\": 0, \"options\": [\"x\"]}\n{\"qid\": \"b\", \"clip_name\": \"v\", \"answer\": \"2\", \"options\": [\"x\", \"y\"]}\n",
    );
    let err = McQaAnnotations::load(&[&p]).expect_err("answer out of range");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: key `answer`: answer 2 is out of range: 2 options (0..=1)",
            p.display()
        )
    );
    let p = write(
        dir.path(),
        "empty_options.jsonl",
        b"{\"qid\": \"a\", \"clip_name\": \"v\", \"answer\": 0, \"options\": []}\n",
    );
    let err = McQaAnnotations::load(&[&p]).expect_err("no options");
    assert_eq!(
        err.to_string(),
        format!("{}:1: key `options`: options is empty", p.display())
    );
    let p = write(
        dir.path(),
        "word.jsonl",
        b"{\"qid\": \"a\", \"clip_name\": \"v\", \"answer\": \"first\", \"options\": [\"x\"]}\n",
    );
    let err = McQaAnnotations::load(&[&p]).expect_err("answer not an index");
    assert!(
        err.to_string()
            .contains("word.jsonl:1: key `answer`: expected an option index"),
        "{err}"
    );
}

fn pretrain_err(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, AnnotationError) {
    let p = write(dir, name, bytes);
    let err = PretrainAnnotations::load(&[&p]).expect_err("bad input");
    (p, err)
}

const GOOD: &str = "{\"clip_name\": \"a.mp4\", \"caption\": \"a cat\"}\n";

#[test]
fn bad_input_errors_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    let (p, err) = pretrain_err(
        d,
        "malformed.jsonl",
        format!("{GOOD}{{\"clip_name\": \"b.mp4\", \"caption\": \n{GOOD}").as_bytes(),
    );
    assert!(
        err.to_string().starts_with(&format!("{}:2:", p.display()))
            && err.to_string().contains("invalid JSON"),
        "{err}"
    );

    let (p, err) = pretrain_err(
        d,
        "no_clip.jsonl",
        format!("{GOOD}{{\"caption\": \"x\"}}\n").as_bytes(),
    );
    assert_eq!(
        err.to_string(),
        format!("{}:2: missing field `clip_name`", p.display())
    );

    let (p, err) = pretrain_err(
        d,
        "caption_type.jsonl",
        b"{\"clip_name\": \"a.mp4\", \"caption\": 12}\n",
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1: key `caption`: invalid type: integer `12`, expected a string",
            p.display()
        )
    );

    let (p, err) = pretrain_err(d, "latin1.jsonl", b"{\"clip_name\": \"a.mp4\", \"caption\": \"ok\"}\n{\"clip_name\": \"b.mp4\", \"caption\": \"caf\xe9\"}\n");
    assert_eq!(
        err.to_string(),
        format!("{}:2: not valid UTF-8", p.display())
    );

    let (p, err) = pretrain_err(d, "empty.jsonl", b"");
    assert_eq!(
        err.to_string(),
        format!(
            "annotation file {} is empty: it holds no annotation line",
            p.display()
        )
    );
    let (_, err) = pretrain_err(d, "blank.jsonl", b"\n  \n\r\n");
    assert!(matches!(err, AnnotationError::Empty { .. }), "{err}");

    let (p, err) = pretrain_err(
        d,
        "partial.jsonl",
        format!("{GOOD}{{\"clip_name\": \"b.m").as_bytes(),
    );
    assert!(
        err.to_string().starts_with(&format!("{}:2:", p.display())),
        "{err}"
    );

    let (p, err) = pretrain_err(
        d,
        "half_window.jsonl",
        format!("{GOOD}{GOOD}{{\"clip_name\": \"a.mp4\", \"caption\": \"x\", \"start\": 1.0}}\n")
            .as_bytes(),
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: key `end`: `start` is given without `end`",
            p.display()
        )
    );

    let (p, err) = pretrain_err(
        d,
        "kind.jsonl",
        b"{\"clip_name\": \"a.mp4\", \"caption\": \"x\", \"type\": \"audio\"}\n",
    );
    assert!(
        err.to_string().starts_with(&format!(
            "{}:1: key `type`: unknown variant `audio`",
            p.display()
        )),
        "{err}"
    );

    let (_, err) = pretrain_err(d, "array.jsonl", b"[1, 2]\n");
    assert!(err.to_string().contains("array.jsonl:1: "), "{err}");

    let missing = d.join("missing.jsonl");
    let err = PretrainAnnotations::load(&[&missing]).expect_err("missing file");
    assert!(err.to_string().contains("missing.jsonl"), "{err}");
    let none: [PathBuf; 0] = [];
    assert!(matches!(
        PretrainAnnotations::load(&none),
        Err(AnnotationError::NoFiles)
    ));
}

#[test]
fn tolerated_input_variants() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Valid last line without newline, CRLF endings, blank lines, a BOM, extra keys.
    let p = write(
        dir.path(),
        "ok.jsonl",
        b"\xEF\xBB\xBF{\"clip_name\": \"a.mp4\", \"caption\": \"one\", \"label\": 3}\r\n\r\n{\"clip_name\": \"b.mp4\", \"caption\": null}",
    );
    let ann = PretrainAnnotations::load(&[&p]).expect("loads");
    assert_eq!(ann.len(), 2);
    assert_eq!(ann.group(1).expect("group")[0].caption, None);
}

#[test]
fn list_of_files_keeps_file_and_line_in_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "a.jsonl", format!("{GOOD}{GOOD}").as_bytes());
    let b = write(
        dir.path(),
        "b.jsonl",
        format!("{GOOD}{{\"clip_name\": 5}}\n").as_bytes(),
    );
    let err = PretrainAnnotations::load(&[&a, &b]).expect_err("second file bad");
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2: key `clip_name`", b.display())),
        "{err}"
    );
    let err =
        RetrievalAnnotations::load(&[&a, &b], RetrievalMode::Eval).expect_err("second file bad");
    assert!(
        err.to_string().starts_with(&format!("{}:2:", b.display())),
        "{err}"
    );
    // Concatenated retrieval ids run over both files.
    let c = write(
        dir.path(),
        "c.jsonl",
        b"{\"clip_name\": \"z.mp4\", \"caption\": \"a dog\"}\n",
    );
    let r = RetrievalAnnotations::load(&[&a, &c], RetrievalMode::Eval).expect("loads");
    assert_eq!((r.len(), r.num_videos(), r.num_texts()), (3, 2, 2));
    assert_eq!(r.items()[2].vid, 1);
}
