//! `antmmf_data::check`: counts and statistics of a small retrieval set over the sample clips,
//! and every bad line and missing file named (fixtures: `assets/video`, `assets/minilm/vocab.txt`).

use std::path::{Path, PathBuf};

use antmmf_data::check::{CheckOptions, check_dataset};
use antmmf_data::dataset::TaskKind;
use antmmf_data::dataset_config::{DatasetAttributes, Split};

fn assets() -> PathBuf {
    let p = std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets"));
    std::fs::canonicalize(&p).unwrap_or(p)
}

fn attrs(root: &Path) -> DatasetAttributes {
    let yaml = format!(
        r#"
data_root_dir: {root}
annotations: {{train: ann.jsonl, test: ann.jsonl}}
videos: {{train: {videos}, test: {videos}}}
processors:
  caption_processor:
    type: masked_bert_tokenizer
    params:
      max_seq_length: 8
      tokenizer_config:
        type: bert-base-uncased
        params: {{do_lower_case: true, vocab_path: {vocab}}}
"#,
        root = root.display(),
        videos = assets().join("video").display(),
        vocab = assets().join("minilm/vocab.txt").display(),
    );
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    DatasetAttributes::from_deserializer(v, "d").unwrap()
}

#[test]
fn good_set_counts_and_statistics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ann.jsonl"),
        concat!(
            "{\"clip_name\": \"bikes\", \"caption\": \"a man rides a bike\", \"sen_id\": 0}\n",
            "{\"clip_name\": \"bikes\", \"caption\": \"a cyclist\", \"sen_id\": 1}\n",
            "{\"clip_name\": \"carphone_pristine\", \"caption\": \"a man on the phone in a car at night\"}\n",
        ),
    )
    .unwrap();
    let report = check_dataset(
        &attrs(dir.path()),
        dir.path(),
        &[
            (Split::Train, TaskKind::RetrievalTrain),
            (Split::Test, TaskKind::RetrievalEval),
        ],
        &CheckOptions::default(),
    )
    .unwrap();
    assert!(report.is_ok(), "{report}");
    let train = &report.splits[0];
    assert_eq!(
        (train.records, train.items, train.videos, train.images),
        (3, 2, 2, 0)
    );
    assert_eq!(report.splits[1].items, 3);
    // Words 5, 2, 10.
    assert_eq!(
        (train.words.min, train.words.max, train.words.median),
        (2.0, 10.0, 5.0)
    );
    let tokens = train.tokens.expect("tokenizer loads");
    assert_eq!(tokens.count, 3);
    assert_eq!(train.token_budget, Some(6));
    assert_eq!(train.truncated, 1);
    // bikes: 250 frames; carphone_pristine: 382 frames (the decoder's exact counts).
    assert_eq!(train.frames.count, 2);
    assert_eq!(train.durations.count, 2);
    assert!(train.durations.min > 1.0, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("captions length in words (whitespace-separated)"),
        "{text}"
    );
    assert!(text.ends_with("check: OK, no problem found\n"), "{text}");
}

#[test]
fn every_bad_line_and_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ann = dir.path().join("ann.jsonl");
    std::fs::write(
        &ann,
        concat!(
            "{\"clip_name\": \"bikes\", \"caption\": \"a man rides a bike\", \"sen_id\": 0}\n",
            "{\"clip_name\": \"bikes\", \"caption\": broken\n",
            "\n",
            "{\"clip_name\": \"no_such_clip\", \"caption\": \"nothing\"}\n",
            "{\"caption\": \"no clip\"}\n",
        ),
    )
    .unwrap();
    let report = check_dataset(
        &attrs(dir.path()),
        dir.path(),
        &[(Split::Test, TaskKind::RetrievalEval)],
        &CheckOptions::default(),
    )
    .unwrap();
    assert!(!report.is_ok());
    let msgs: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(msgs.len(), 3, "{report}");
    let at = |line: usize| format!("{}:{line}", ann.display());
    assert!(
        msgs.iter()
            .any(|m| m.starts_with(&format!("{}:", at(2))) && m.contains("invalid JSON")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with(&at(5)) && m.contains("clip_name")),
        "{msgs:?}"
    );
    let missing = assets().join("video/no_such_clip.mp4");
    assert!(
        msgs.iter().any(
            |m| m.starts_with(&format!("{}: no such file", missing.display()))
                && m.contains("clip `no_such_clip`")
        ),
        "{msgs:?}"
    );
    let split = &report.splits[0];
    assert_eq!(split.files[0].lines, 4);
    assert_eq!(split.files[0].bad_lines, 2);
    assert_eq!((split.records, split.videos, split.bad_media), (2, 2, 1));
}
