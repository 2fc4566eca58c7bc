//! Kill tests of `antmmf-train`: a run killed with SIGKILL at a precise place (in the middle of a
//! training step, while a snapshot file is being written, during a snapshot's validation) and
//! then resumed in the same run directory ends with exactly the weights and metrics of the run
//! that was never interrupted; a truncated newest snapshot is skipped with a message and the
//! resume falls back to the one before.
//!
//! The program stops at a kill point through `antmmf_core::testing_pause`: with
//! `ANTMMF_TEST_PAUSE_AT=<point>` (and `ANTMMF_TEST_PAUSE_ITER=<n>` for the loop's points) it prints
//! `ANTMMF_PAUSED_AT <point>` on stderr and sleeps; the test waits for that line and kills it.
//!
//! Runs: the quickstart config on the embedded sample data, shrunk (a random-init 1-layer BERT of
//! width 64), 6 iterations, a snapshot with validation every 2, one data-loading thread.
//! Measured on 2 shared cores: about 1 minute.

use crate::common::weights;
use antmmf_core::checkpoint::Checkpoint;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TRAIN: &str = env!("CARGO_BIN_EXE_antmmf-train");

/// How long a paused run may take to reach its kill point.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A vocabulary for the tiny model: the special tokens and the words of the sample captions.
fn write_vocab(dir: &Path) -> (PathBuf, usize) {
    let mut words = std::collections::BTreeSet::new();
    for f in ["pretrain_video.jsonl", "pretrain_image.jsonl"] {
        let text = std::fs::read_to_string(repo_root().join("data/sample").join(f))
            .unwrap_or_else(|e| panic!("data/sample/{f}: {e}"));
        for w in text
            .to_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            words.insert(w.to_string());
        }
    }
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vocab.extend(words);
    let path = dir.join("vocab.txt");
    std::fs::write(&path, vocab.join("\n") + "\n").expect("write vocab.txt");
    (path, vocab.len())
}

/// The quickstart run, short and small: 6 iterations (two epochs of 3 batches), validation and a
/// snapshot every 2, a log record per iteration, every snapshot kept, one loading thread; a
/// randomly initialised 1-layer BERT of width 64 over a vocabulary of the sample captions (the
/// MiniLM weights would make each snapshot 200 MB). `work` holds the vocabulary.
fn command(save_dir: &Path, work: &Path, extra: &[&str]) -> Command {
    let (vocab, vocab_size) = write_vocab(work);
    let vocab_size = vocab_size.to_string();
    let vocab = vocab.to_string_lossy().into_owned();
    let u = |k: &str| format!("model_attributes.univl.{k}");
    let mut model: Vec<String> = vec![
        u("hidden_size"),
        "64".into(),
        u("half_model_size"),
        "32".into(),
        u("pretraining_heads.transformer_mlm.params.in_dim"),
        "64".into(),
        u("pretraining_heads.transformer_mlm.params.hidden_size"),
        "64".into(),
        u("pretraining_heads.itm.params.hidden_size"),
        "64".into(),
        "task_attributes.univl_task.dataset_attributes.video_text_pretrain.processors.caption_processor.params.tokenizer_config.params.vocab_path".into(),
        vocab,
    ];
    for enc in ["text_encoder", "cross_encoder"] {
        for (k, v) in [
            ("model_path", "None"),
            ("pretrained", "False"),
            ("vocab_size", vocab_size.as_str()),
            ("hidden_size", "64"),
            ("num_hidden_layers", "1"),
        ] {
            model.push(u(&format!("{enc}.params.{k}")));
            model.push(v.to_string());
        }
    }
    let mut c = Command::new(TRAIN);
    c.args(["--config", "configs/quickstart.yml"])
        .args(["training_parameters.save_dir", &save_dir.to_string_lossy()])
        .args([
            "training_parameters.max_iterations",
            "6",
            "training_parameters.snapshot_interval",
            "2",
            "training_parameters.log_interval",
            "1",
            "training_parameters.num_workers",
            "0",
            "training_parameters.max_ckpt_num",
            "10",
        ])
        .args(&model)
        .args(extra)
        .current_dir(repo_root())
        .env_remove("ANTMMF_TEST_PAUSE_AT")
        .env_remove("ANTMMF_TEST_PAUSE_ITER");
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn assert_success(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        o.status,
        tail(&stderr(o))
    );
    assert!(!stderr(o).contains("panicked at"), "{what}: {}", stderr(o));
}

/// The run directory under `save_dir` (`univl_task_univl_1` for the quickstart config).
fn run_dir(save_dir: &Path) -> PathBuf {
    save_dir.join("univl_task_univl_1")
}

/// Starts a run that pauses at `point` (at iteration `iter` for the loop's points), waits for
/// its `ANTMMF_PAUSED_AT` line and SIGKILLs it. Returns its stderr up to the pause.
fn run_until_killed(save_dir: &Path, point: &str, iter: Option<u64>) -> String {
    let mut cmd = command(save_dir, save_dir, &[]);
    cmd.env("ANTMMF_TEST_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(i) = iter {
        cmd.env("ANTMMF_TEST_PAUSE_ITER", i.to_string());
    }
    let mut child = cmd.spawn().expect("antmmf-train starts");
    let err = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("ANTMMF_PAUSED_AT ") {
                let _ = tx.send(Ok(seen.clone()));
            }
        }
        // End of stderr: the program exited (or was killed) without pausing.
        let _ = tx.send(Err(seen));
    });
    let started = Instant::now();
    let outcome = rx.recv_timeout(PAUSE_TIMEOUT);
    // SIGKILL, whatever happened: nothing is left running.
    let _ = child.kill();
    let status = child.wait().expect("wait for the killed run");
    let _ = reader.join();
    match outcome {
        Ok(Ok(seen)) => {
            assert!(
                seen.trim_end()
                    .ends_with(&format!("ANTMMF_PAUSED_AT {point}")),
                "{seen}"
            );
            assert!(!status.success(), "the run was killed: {status}");
            seen
        }
        Ok(Err(seen)) => panic!(
            "the run ended ({status}) without reaching the kill point {point}:\n{}",
            tail(&seen)
        ),
        Err(_) => panic!("no ANTMMF_PAUSED_AT {point} within {:?}", started.elapsed()),
    }
}

/// The snapshot files of a run directory, by iteration.
fn snapshots(run: &Path) -> Vec<u64> {
    let mut its: Vec<u64> = std::fs::read_dir(run.join("models"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("model_")?
                        .strip_suffix(".ckpt")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    its.sort_unstable();
    its
}

/// What a finished run must reproduce bit for bit.
struct Outcome {
    /// The weights in the `model` section of `univl_final.ckpt`.
    final_model: Vec<u8>,
    /// The final loop state (iteration, epoch, scheduler steps, best metric, last metrics).
    final_state: serde_json::Value,
    /// `logs/metrics.jsonl`: one line per snapshot.
    metrics_lines: Vec<String>,
    /// `metrics.json`'s final evaluations.
    evaluations: serde_json::Value,
    /// The snapshot weights (`model` sections) by iteration.
    snapshot_models: Vec<(u64, Vec<u8>)>,
}

fn outcome(run: &Path) -> Outcome {
    let final_path = run.join("univl_final.ckpt");
    let ckpt = Checkpoint::load(&final_path).unwrap_or_else(|e| panic!("{e}"));
    let metrics_lines = std::fs::read_to_string(run.join("logs/metrics.jsonl"))
        .expect("logs/metrics.jsonl")
        .lines()
        .map(str::to_string)
        .collect();
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("metrics.json")).expect("metrics.json"),
    )
    .expect("metrics.json is JSON");
    let snapshot_models = snapshots(run)
        .into_iter()
        .map(|i| {
            let p = run.join(format!("models/model_{i}.ckpt"));
            let c = Checkpoint::load(&p).unwrap_or_else(|e| panic!("{e}"));
            (i, weights(c.require("model", &p).expect("model section")))
        })
        .collect();
    Outcome {
        final_model: weights(ckpt.require("model", &final_path).expect("model section")),
        final_state: ckpt.state,
        metrics_lines,
        evaluations: metrics["evaluations"].clone(),
        snapshot_models,
    }
}

/// `logs/train_log.json` as iteration -> (lr, loss) bit patterns.
fn train_log(run: &Path) -> Vec<(u64, u64, u64)> {
    let text = std::fs::read_to_string(run.join("logs/train_log.json")).expect("train_log.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("train_log.json is JSON");
    v.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["iteration"].as_u64().expect("iteration"),
                r["lr"].as_f64().expect("lr").to_bits(),
                r["loss"].as_f64().expect("loss").to_bits(),
            )
        })
        .collect()
}

/// Where a killed run must resume from, and the kill itself.
struct KillCase {
    name: &'static str,
    point: &'static str,
    iter: Option<u64>,
    /// The newest intact snapshot after the kill.
    resumes_from: u64,
}

const CASES: &[KillCase] = &[
    // After iteration 3's forward and backward, before its optimizer step.
    KillCase {
        name: "during a step",
        point: "step",
        iter: Some(3),
        resumes_from: 2,
    },
    // The second snapshot's temporary file is written, the rename to model_4.ckpt not done.
    KillCase {
        name: "during the checkpoint write",
        point: "write:model_4.ckpt",
        iter: None,
        resumes_from: 2,
    },
    // At the second snapshot, before its validation.
    KillCase {
        name: "during validation",
        point: "validation",
        iter: Some(4),
        resumes_from: 2,
    },
];

/// Kills a run at `case`'s point, checks what is on disk, resumes it and returns the resumed
/// run's outcome.
fn kill_and_resume(case: &KillCase) -> (Outcome, Vec<(u64, u64, u64)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let save = dir.path();
    run_until_killed(save, case.point, case.iter);
    let run = run_dir(save);
    assert_eq!(
        snapshots(&run),
        vec![case.resumes_from],
        "{}: snapshots on disk after the kill",
        case.name
    );
    let newest = run.join(format!("models/model_{}.ckpt", case.resumes_from));
    let ckpt = Checkpoint::load(&newest)
        .unwrap_or_else(|e| panic!("{}: the previous snapshot is damaged: {e}", case.name));
    for section in ["model", "optimizer"] {
        ckpt.require(section, &newest)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
    assert_eq!(
        ckpt.state["iteration"], case.resumes_from,
        "{}: {}",
        case.name, ckpt.state
    );
    assert!(
        !run.join("univl_final.ckpt").exists(),
        "{}: no final checkpoint",
        case.name
    );
    let resumed = command(
        save,
        save,
        &[
            "training_parameters.resume",
            "True",
            "training_parameters.restart",
            "False",
        ],
    )
    .output()
    .expect("antmmf-train runs");
    assert_success(&resumed, case.name);
    let err = stderr(&resumed);
    assert!(
        err.contains(&format!(
            "resumed from {} at iteration {}",
            newest.display(),
            case.resumes_from
        )),
        "{}: the resume names its snapshot:\n{}",
        case.name,
        tail(&err)
    );
    (outcome(&run), train_log(&run))
}

/// The uninterrupted reference run, then the three kill points (two at a time on the two cores):
/// each resumed run ends with the reference's final weights, snapshots and metrics, bit for bit,
/// and logs the reference's learning rates and losses for the iterations it ran.
#[test]
fn a_run_killed_anywhere_resumes_to_the_uninterrupted_result() {
    let started = Instant::now();
    let reference_dir = tempfile::tempdir().expect("tempdir");
    let (reference, results) = std::thread::scope(|s| {
        let reference = s.spawn(|| {
            let o = command(reference_dir.path(), reference_dir.path(), &[])
                .output()
                .expect("antmmf-train runs");
            assert_success(&o, "uninterrupted run");
            let run = run_dir(reference_dir.path());
            (outcome(&run), train_log(&run))
        });
        let kills: Vec<_> = CASES
            .iter()
            .map(|case| (case, s.spawn(move || kill_and_resume(case))))
            .collect();
        let reference = reference.join().expect("reference run");
        let results: Vec<_> = kills
            .into_iter()
            .map(|(case, h)| {
                (
                    case,
                    h.join()
                        .unwrap_or_else(|_| panic!("kill case `{}` failed", case.name)),
                )
            })
            .collect();
        (reference, results)
    });
    let (reference, reference_log) = reference;
    assert_eq!(
        reference.final_state["iteration"], 6,
        "{:?}",
        reference.final_state
    );
    assert_eq!(
        reference.metrics_lines.len(),
        3,
        "{:?}",
        reference.metrics_lines
    );
    assert_eq!(
        reference
            .snapshot_models
            .iter()
            .map(|s| s.0)
            .collect::<Vec<_>>(),
        vec![2, 4, 6]
    );
    for (case, (resumed, log)) in results {
        assert!(
            resumed.final_model == reference.final_model,
            "{}: the final weights differ from the uninterrupted run's ({} vs {} bytes)",
            case.name,
            resumed.final_model.len(),
            reference.final_model.len()
        );
        for ((i, a), (j, b)) in resumed
            .snapshot_models
            .iter()
            .zip(&reference.snapshot_models)
        {
            assert_eq!(i, j, "{}", case.name);
            assert!(a == b, "{}: model_{i}.ckpt weights differ", case.name);
        }
        assert_eq!(resumed.final_state, reference.final_state, "{}", case.name);
        assert_eq!(
            resumed.metrics_lines, reference.metrics_lines,
            "{}: logs/metrics.jsonl",
            case.name
        );
        assert_eq!(
            resumed.evaluations, reference.evaluations,
            "{}: metrics.json",
            case.name
        );
        // train_log.json of a resumed run continues the interrupted run's: every iteration, the
        // same learning rates and losses bit for bit.
        assert_eq!(
            log, reference_log,
            "{}: learning rates and losses",
            case.name
        );
    }
    eprintln!("kill cases: {:.0?}", started.elapsed());
}

/// A newest snapshot cut short (a crash of the storage, a copy interrupted) is skipped by
/// `resume True` with a message naming it, and the run resumes from the one before and finishes.
#[test]
fn a_truncated_newest_snapshot_is_skipped_on_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let save = dir.path();
    // Killed at the third snapshot: model_2 and model_4 are on disk.
    run_until_killed(save, "checkpoint", Some(6));
    let run = run_dir(save);
    assert_eq!(snapshots(&run), vec![2, 4]);
    let newest = run.join("models/model_4.ckpt");
    let bytes = std::fs::read(&newest).expect("model_4.ckpt");
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).expect("truncate model_4.ckpt");
    let err = Checkpoint::load(&newest).expect_err("a truncated checkpoint is detected");
    assert!(err.to_string().contains("truncated"), "{err}");

    let resumed = command(
        save,
        save,
        &[
            "training_parameters.resume",
            "True",
            "training_parameters.restart",
            "False",
        ],
    )
    .output()
    .expect("antmmf-train runs");
    assert_success(&resumed, "resume past a truncated snapshot");
    let err = stderr(&resumed);
    assert!(
        err.contains("skipping damaged checkpoint") && err.contains("model_4.ckpt"),
        "the damaged snapshot is named:\n{}",
        tail(&err)
    );
    let previous = run.join("models/model_2.ckpt");
    assert!(
        err.contains(&format!(
            "resumed from {} at iteration 2",
            previous.display()
        )),
        "resumed from model_2:\n{}",
        tail(&err)
    );
    let finished = outcome(&run);
    assert_eq!(finished.final_state["iteration"], 6);
    // The damaged file was replaced by a good one when the run passed iteration 4 again.
    assert_eq!(
        finished
            .snapshot_models
            .iter()
            .map(|s| s.0)
            .collect::<Vec<_>>(),
        vec![2, 4, 6]
    );
}

/// Killed after `model_2.ckpt` is in place but before its line reaches `logs/metrics.jsonl`
/// (here: while `best.ckpt` is written). The resumed run rebuilds `metrics.jsonl` up to the
/// snapshot it resumes from, restoring that snapshot's line from the checkpoint's state, so the
/// file ends up equal to the uninterrupted run's.
#[test]
fn a_run_killed_before_its_metrics_line_resumes_with_complete_metrics() {
    let reference_dir = tempfile::tempdir().expect("tempdir");
    let o = command(reference_dir.path(), reference_dir.path(), &[])
        .output()
        .expect("antmmf-train runs");
    assert_success(&o, "uninterrupted run");
    let reference = outcome(&run_dir(reference_dir.path()));
    let (resumed, _) = kill_and_resume(&KillCase {
        name: "between the snapshot and its metrics line",
        point: "write:best.ckpt",
        iter: None,
        resumes_from: 2,
    });
    assert!(
        resumed.final_model == reference.final_model,
        "final weights"
    );
    assert_eq!(
        resumed.metrics_lines, reference.metrics_lines,
        "logs/metrics.jsonl"
    );
}
