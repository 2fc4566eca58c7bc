//! The bad-input catalogue, through the binaries users run: every kind of damaged media file,
//! annotation line and config is reported with a non-zero exit status and a message naming the
//! file (and line, or key path), never a panic and never a hang. The libraries' own tests cover
//! the same inputs one level down; this file makes sure the command lines report them cleanly.
//!
//! - media: `antmmf-data frames` (opens and decodes) on files made with the `ffmpeg` CLI in a
//!   temporary folder, and `antmmf-data check` (the dataset check) on a folder of them;
//! - annotations: `antmmf-data check --config` on the sample configs pointed at damaged jsonl
//!   files, and one short `antmmf-train` run;
//! - configs and overrides: `antmmf-train --print-config` and `antmmf-data check --config`.
//!
//! Every command runs under a time limit; a run that exceeds it is killed and fails the test.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TRAIN: &str = env!("CARGO_BIN_EXE_antmmf-train");
const DATA: &str = env!("CARGO_BIN_EXE_antmmf-data");

/// Generous: each of these commands takes well under a second to a few seconds when it works.
const LIMIT: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn assets() -> PathBuf {
    let p = std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"));
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// What a finished command printed.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `bin args` from the repository root, killing it (and failing) past [`LIMIT`].
fn run(bin: &str, args: &[&str]) -> Ran {
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(repo_root())
        .env_remove("ANTMMF_TEST_PAUSE_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hang: {bin} {args:?} still running after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code(),
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// A clean failure: a non-zero exit code (not a signal), no panic, and every `needle` in the
/// output.
fn assert_clean_failure(r: &Ran, what: &str, needles: &[&str]) {
    let all = r.all();
    assert!(!all.contains("panicked at"), "{what}: panicked:\n{all}");
    assert!(
        matches!(r.code, Some(c) if c != 0),
        "{what}: expected a non-zero exit code, got {:?}:\n{all}",
        r.code
    );
    for n in needles {
        assert!(all.contains(n), "{what}: `{n}` missing from:\n{all}");
    }
}

fn assert_success(r: &Ran, what: &str) {
    let all = r.all();
    assert!(!all.contains("panicked at"), "{what}: panicked:\n{all}");
    assert_eq!(r.code, Some(0), "{what}:\n{all}");
}

/// Runs the `ffmpeg` CLI (quiet), failing the test if it fails.
fn ffmpeg(args: &[&str]) {
    let o = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("the ffmpeg CLI (installed by scripts/setup.sh) runs");
    assert!(
        o.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn testsrc(dir: &Path, name: &str, size: &str, extra: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let src = format!("testsrc=size={size}:rate=10");
    let mut args = vec!["-f", "lavfi", "-i", &src];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-pix_fmt", "yuv420p"]);
    let out = p.to_string_lossy().into_owned();
    args.push(&out);
    ffmpeg(&args);
    p
}

/// Every kind of media file the catalogue lists, in `dir`. Returns (name, path, valid).
fn media_catalogue(dir: &Path) -> Vec<(&'static str, PathBuf, bool)> {
    let good = testsrc(dir, "good.mp4", "64x48", &["-t", "2"]);
    let bytes = std::fs::read(&good).expect("good.mp4");
    let mut out = vec![("valid 2 s video", good.clone(), true)];

    let zero = dir.join("zero.mp4");
    std::fs::write(&zero, b"").expect("write");
    out.push(("zero-byte file", zero, false));

    // ffmpeg writes the index (moov) after the data: half a file has none.
    let trunc = dir.join("truncated.mp4");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).expect("write");
    out.push(("truncated MP4", trunc, false));

    let text = dir.join("text.mp4");
    std::fs::write(&text, "this is a text file, not a video\n").expect("write");
    out.push(("text file named .mp4", text, false));

    let audio = dir.join("audio_only.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-c:a",
        "aac",
        &audio.to_string_lossy(),
    ]);
    out.push(("audio-only MP4", audio, false));

    // Random bytes over the middle third: the container opens, the frames do not decode.
    let mut corrupt = bytes.clone();
    let n = corrupt.len();
    let mut x: u32 = 0x9E37_79B9;
    for b in &mut corrupt[n / 3..2 * n / 3] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let corrupt_p = dir.join("corrupt_middle.mp4");
    std::fs::write(&corrupt_p, &corrupt).expect("write");
    out.push(("corrupted middle", corrupt_p, false));

    out.push((
        "one-frame video",
        testsrc(dir, "one_frame.mp4", "64x48", &["-frames:v", "1"]),
        true,
    ));
    out.push((
        "0.1 s video",
        testsrc(dir, "short.mp4", "64x48", &["-t", "0.1"]),
        true,
    ));
    out.push((
        "4096x16 video",
        testsrc(dir, "wide.mp4", "4096x16", &["-t", "1"]),
        true,
    ));
    out.push((
        "2x2 video",
        testsrc(dir, "tiny.mp4", "2x2", &["-t", "1"]),
        true,
    ));

    let jpg = dir.join("frame.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48",
        "-frames:v",
        "1",
        &jpg.to_string_lossy(),
    ]);
    let jpg_bytes = std::fs::read(&jpg).expect("frame.jpg");
    out.push(("valid JPEG", jpg, true));
    let tjpg = dir.join("truncated.jpg");
    std::fs::write(&tjpg, &jpg_bytes[..jpg_bytes.len() / 2]).expect("write");
    out.push(("truncated JPEG", tjpg, false));

    out.push(("missing file", dir.join("missing.mp4"), false));
    out
}

/// `antmmf-data frames` decodes each catalogue file: the valid ones give frames, each bad one
/// is an error naming the file (and, where it says, what is wrong).
#[test]
fn media_catalogue_through_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, path, valid) in media_catalogue(dir.path()) {
        let p = path.to_string_lossy().into_owned();
        let r = run(
            DATA,
            &[
                "frames",
                "--json",
                "--num-frames",
                "4",
                "--crop-size",
                "32",
                &p,
            ],
        );
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if valid {
            assert_success(&r, what);
            let v: serde_json::Value = serde_json::from_str(&r.stdout)
                .unwrap_or_else(|e| panic!("{what}: {e}: {}", r.stdout));
            assert_eq!(
                v["indices"].as_array().map(Vec::len),
                Some(4),
                "{what}: {v}"
            );
        } else {
            let detail: &[&str] = match what {
                "audio-only MP4" => &["no video stream"],
                "corrupted middle" => &["could not be decoded"],
                "truncated JPEG" => &["truncated JPEG"],
                "missing file" => &["No such file"],
                _ => &[],
            };
            let mut needles = vec![name.as_str()];
            needles.extend_from_slice(detail);
            assert_clean_failure(&r, what, &needles);
        }
    }
}

fn classification_key(suffix: &str) -> String {
    format!("task_attributes.univl_task.dataset_attributes.video_text_classification.{suffix}")
}

fn mcqa_key(suffix: &str) -> String {
    format!("task_attributes.univl_task.dataset_attributes.video_multi_choice_qa.{suffix}")
}

/// `antmmf-data check` of a sample config pointed at `root` (annotations) and `videos`.
fn check(config: &str, key: fn(&str) -> String, root: &Path, train: &str, videos: &Path) -> Ran {
    let (root, videos) = (
        root.to_string_lossy().into_owned(),
        videos.to_string_lossy().into_owned(),
    );
    let keys = [
        key("data_root_dir"),
        key("annotations.train"),
        key("videos.train"),
    ];
    run(
        DATA,
        &[
            "check", "--config", config, "--split", "train", &keys[0], &root, &keys[1], train,
            &keys[2], &videos,
        ],
    )
}

/// `antmmf-data check` over a folder of the catalogue's videos: each bad one is listed as a
/// problem naming the file, exit code 1, the good ones are counted.
#[test]
fn media_catalogue_through_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).expect("mkdir");
    let catalogue = media_catalogue(&videos);
    let mut lines = String::new();
    for (_, path, _) in &catalogue {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.extension().is_some_and(|e| e == "mp4") {
            lines.push_str(&format!(
                "{{\"clip_name\": \"{stem}\", \"caption\": \"what is it\", \"label\": \"bicycle\"}}\n"
            ));
        }
    }
    std::fs::write(dir.path().join("ann.jsonl"), lines).expect("write");
    let r = check(
        "configs/sample/vqa.yml",
        classification_key,
        dir.path(),
        "ann.jsonl",
        &videos,
    );
    // Opening probes the container without decoding: the corrupted-middle file opens (the
    // decode test above catches it).
    assert_clean_failure(
        &r,
        "check of the media catalogue",
        &[
            "zero.mp4",
            "truncated.mp4",
            "text.mp4",
            "audio_only.mp4",
            "missing",
        ],
    );
    assert_eq!(r.code, Some(1), "problems found: exit code 1\n{}", r.all());
    for ok in [
        "good.mp4",
        "one_frame.mp4",
        "short.mp4",
        "wide.mp4",
        "tiny.mp4",
    ] {
        assert!(
            !r.stdout
                .lines()
                .any(|l| l.contains(ok) && l.starts_with("  /")),
            "{ok} is not a problem:\n{}",
            r.stdout
        );
    }
}

/// Damaged annotation lines: each named by `file:line` (and the key), exit code 1.
#[test]
fn annotation_catalogue_through_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let videos = assets().join("video");
    let mut vqa: Vec<u8> = Vec::new();
    vqa.extend_from_slice(
        b"{\"clip_name\": \"bikes\", \"caption\": \"what is the man riding\", \"label\": \"bicycle\"}\n",
    );
    vqa.extend_from_slice(b"{\"clip_name\": \"bikes\", \"caption\": broken\n"); // 2 malformed
    vqa.extend_from_slice(b"{\"caption\": \"no clip\", \"label\": \"street\"}\n"); // 3
    vqa.extend_from_slice(b"{\"clip_name\": \"bikes\", \"caption\": 42, \"label\": \"street\"}\n"); // 4
    vqa.extend_from_slice(
        b"{\"clip_name\": \"bikes\", \"caption\": \"where\", \"label\": \"spaceship\"}\n",
    ); // 5
    vqa.extend_from_slice(b"{\"clip_name\": \"bikes\", \"caption\": \"where\", \"label\": 17}\n"); // 6
    vqa.extend_from_slice(
        b"{\"clip_name\": \"bikes\", \"caption\": \"caf\xe9\", \"label\": \"street\"}\n",
    ); // 7
    vqa.extend_from_slice(b"{\"clip_name\": \"bikes\", \"capt"); // 8, no newline
    std::fs::write(d.join("vqa.jsonl"), &vqa).expect("write");
    let r = check(
        "configs/sample/vqa.yml",
        classification_key,
        d,
        "vqa.jsonl",
        &videos,
    );
    let f = d.join("vqa.jsonl").to_string_lossy().into_owned();
    let at = |line: usize| format!("{f}:{line}");
    let expected = [
        (at(2), "invalid JSON"),
        (at(3), "missing field `clip_name`"),
        (at(4), "key `caption`"),
        (at(5), "key `label`"),
        (at(6), "key `label`"),
        (at(7), "not valid UTF-8"),
        (at(8), "invalid JSON"),
    ];
    assert_clean_failure(&r, "vqa annotations", &[]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    for (loc, msg) in &expected {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.contains(&format!("{loc}:")) && l.contains(msg)),
            "`{loc}` with `{msg}` missing:\n{}",
            r.stdout
        );
    }
    assert!(
        !r.stdout.contains(&format!("{}:", at(1))),
        "line 1 is good:\n{}",
        r.stdout
    );

    std::fs::write(d.join("empty.jsonl"), b"").expect("write");
    let r = check(
        "configs/sample/vqa.yml",
        classification_key,
        d,
        "empty.jsonl",
        &videos,
    );
    assert_clean_failure(&r, "empty annotation file", &["empty.jsonl", "empty"]);

    std::fs::write(
        d.join("mcqa.jsonl"),
        concat!(
            "{\"qid\": \"q0\", \"clip_name\": \"bikes\", \"answer\": 0, \"options\": [\"a bike\", \"a car\"]}\n",
            "{\"qid\": \"q1\", \"clip_name\": \"bikes\", \"answer\": 0, \"options\": []}\n",
            "{\"qid\": \"q2\", \"clip_name\": \"bikes\", \"answer\": 7, \"options\": [\"a\", \"b\"]}\n",
        ),
    )
    .expect("write");
    let r = check(
        "configs/sample/mcqa.yml",
        mcqa_key,
        d,
        "mcqa.jsonl",
        &videos,
    );
    let f = d.join("mcqa.jsonl").to_string_lossy().into_owned();
    assert_clean_failure(
        &r,
        "mcqa annotations",
        &[
            &format!("{f}:2: key `options`"),
            &format!("{f}:3: key `answer`: answer 7 is out of range"),
        ],
    );
}

/// A training run on annotations with a malformed line fails before training (exit code 2) with
/// the message naming `file:line`, and writes no checkpoint.
#[test]
fn training_on_a_malformed_annotation_line_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = std::fs::read_to_string(repo_root().join("data/sample/vqa_train.jsonl"))
        .expect("data/sample/vqa_train.jsonl");
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(2, "{\"clip_name\": \"bikes\", \"caption\": ");
    std::fs::write(d.join("train.jsonl"), lines.join("\n") + "\n").expect("write");
    let (root, videos, save) = (
        d.to_string_lossy().into_owned(),
        assets().join("video").to_string_lossy().into_owned(),
        d.join("save").to_string_lossy().into_owned(),
    );
    let keys = [
        classification_key("data_root_dir"),
        classification_key("annotations.train"),
        classification_key("videos.train"),
    ];
    let r = run(
        TRAIN,
        &[
            "--config",
            "configs/sample/vqa.yml",
            &keys[0],
            &root,
            &keys[1],
            "train.jsonl",
            &keys[2],
            &videos,
            "training_parameters.max_iterations",
            "1",
            "training_parameters.save_dir",
            &save,
            "training_parameters.run_type",
            "train",
        ],
    );
    let loc = format!("{}:3:", d.join("train.jsonl").display());
    assert_clean_failure(&r, "training on a malformed line", &[&loc, "invalid JSON"]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    let ckpts = std::fs::read_dir(d.join("save/univl_task_univl_1/models"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    assert_eq!(ckpts, 0, "no checkpoint written");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_string_lossy().into_owned()
}

/// Bad configs and overrides, through both binaries that read configs: `antmmf-train
/// --print-config` and `antmmf-data check`: exit code 2, the message names the file (and line)
/// or the key path.
#[test]
fn config_catalogue_through_both_binaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let unknown = write(
        d,
        "unknown.yml",
        "training_parameters:\n  max_iteration: 10\n",
    );
    let wrong_type = write(
        d,
        "wrong_type.yml",
        "training_parameters:\n  batch_size: lots\n",
    );
    let cycle = write(d, "cycle_a.yml", "includes: [cycle_b.yml]\n");
    write(d, "cycle_b.yml", "includes: [cycle_a.yml]\n");
    let missing = write(d, "missing_inc.yml", "includes: [nowhere/base.yml]\n");
    let tabs = write(d, "tabs.yml", "training_parameters:\n\tbatch_size: 3\n");
    let deep_flow = write(
        d,
        "deep_flow.yml",
        &format!("x: {}1{}\n", "[".repeat(20000), "]".repeat(20000)),
    );
    let mut deep_block = String::new();
    for i in 0..3000 {
        deep_block.push_str(&" ".repeat(i));
        deep_block.push_str("a:\n");
    }
    let deep_block = write(d, "deep_block.yml", &deep_block);
    let q = "configs/quickstart.yml";
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "unknown key",
            vec!["--config", &unknown],
            vec![
                "unknown.yml: unknown config key `training_parameters.max_iteration`",
                "did you mean `training_parameters.max_iterations`",
            ],
        ),
        (
            "unknown override key",
            vec!["--config", q, "training_parameters.bach_size", "3"],
            vec!["`training_parameters.bach_size`"],
        ),
        (
            "wrong type in a file",
            vec!["--config", &wrong_type],
            vec!["`training_parameters.batch_size`", "lots"],
        ),
        (
            "include cycle",
            vec!["--config", &cycle],
            vec!["include cycle", "cycle_a.yml", "cycle_b.yml"],
        ),
        (
            "missing include",
            vec!["--config", &missing],
            vec!["nowhere/base.yml", "missing_inc.yml"],
        ),
        (
            "tabs",
            vec!["--config", &tabs],
            vec!["invalid YAML", "tabs.yml:2:"],
        ),
        (
            "deeply nested flow YAML",
            vec!["--config", &deep_flow],
            vec!["deep_flow.yml"],
        ),
        (
            "deeply nested block YAML",
            vec!["--config", &deep_block],
            vec!["deep_block.yml"],
        ),
        (
            "odd override count",
            vec![
                "--config",
                q,
                "training_parameters.batch_size",
                "3",
                "training_parameters.seed",
            ],
            vec![
                "odd number of override tokens",
                "`training_parameters.seed`",
            ],
        ),
        (
            "negative batch size",
            vec!["--config", q, "training_parameters.batch_size", "-5"],
            vec!["`training_parameters.batch_size`", "-5"],
        ),
        (
            "non-numeric learning rate",
            vec!["--config", q, "optimizer_attributes.params.lr", "fast"],
            vec!["`optimizer_attributes.params.lr`", "fast"],
        ),
        (
            "missing config file",
            vec!["--config", "/nonexistent/x.yml"],
            vec!["/nonexistent/x.yml"],
        ),
    ];
    for (what, args, needles) in &cases {
        // `--print-config` first: after an odd override list it would be read as the value.
        let mut train_args = vec!["--print-config"];
        train_args.extend_from_slice(args);
        let r = run(TRAIN, &train_args);
        assert_clean_failure(&r, &format!("antmmf-train: {what}"), needles);
        assert_eq!(r.code, Some(2), "antmmf-train: {what}:\n{}", r.all());

        // `antmmf-data check --config FILE [KEY VALUE ...]` reads the same way; the batch size
        // and learning rate are not its business (it validates the dataset part).
        if matches!(*what, "negative batch size" | "non-numeric learning rate") {
            continue;
        }
        let mut check_args = vec!["check"];
        check_args.extend_from_slice(args);
        let r = run(DATA, &check_args);
        assert_clean_failure(&r, &format!("antmmf-data check: {what}"), needles);
    }
}
