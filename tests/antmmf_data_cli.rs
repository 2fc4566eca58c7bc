//! End-to-end tests of `antmmf-data`: `synth` into a temporary folder, its exit code, summary and
//! files, and its errors.

use std::process::{Command, Output};

const DATA: &str = env!("CARGO_BIN_EXE_antmmf-data");

fn run(args: &[&str]) -> Output {
    Command::new(DATA).args(args).output().expect("binary runs")
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .count()
}

#[test]
fn synth_writes_a_small_set_and_prints_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let out_s = out.to_str().unwrap();
    let o = run(&[
        "synth",
        "--out",
        out_s,
        "--train",
        "8",
        "--test",
        "3",
        "--frames",
        "6",
        "--size",
        "32",
        "--seed",
        "4",
        "--shapes",
        "2",
        "--colours",
        "2",
        "--directions",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("8 train + 3 test"), "{stdout}");
    assert!(
        stdout.contains(r#"labels (6 classes): ["red","green","left","right","circle","square"]"#),
        "{stdout}"
    );
    for (file, n) in [
        ("pretrain.jsonl", 24),
        ("retrieval_train.jsonl", 24),
        ("retrieval_test.jsonl", 3),
        ("vqa_train.jsonl", 24),
        ("vqa_test.jsonl", 9),
        ("mcqa_train.jsonl", 8),
        ("mcqa_test.jsonl", 3),
        ("attributes.jsonl", 11),
    ] {
        assert_eq!(lines(&out.join(file)), n, "{file}");
    }
    let clips = std::fs::read_dir(out.join("videos")).unwrap().count();
    assert_eq!(clips, 11);
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("seed 4"), "{readme}");

    // Into the same, now non-empty, folder: refused without --force, accepted with it.
    let again = [
        "synth",
        "--out",
        out_s,
        "--train",
        "8",
        "--shapes",
        "2",
        "--colours",
        "2",
        "--directions",
        "2",
    ];
    let o = run(&again);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("not empty") && stderr.contains(out_s),
        "{stderr}"
    );
    let mut forced = again.to_vec();
    forced.extend(["--test", "2", "--frames", "4", "--force"]);
    let o = run(&forced);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(out.join("videos")).unwrap().count(), 10);
}

#[test]
fn synth_rejects_bad_settings_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let o = run(&["synth", "--out", out.to_str().unwrap(), "--train", "10"]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("num_train_videos") && stderr.contains("64"),
        "{stderr}"
    );
    let o = run(&["synth", "--out", out.to_str().unwrap(), "--size", "33"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("odd"));
    // No flag: clap's usage error.
    let o = run(&["synth"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--out"));
}
