//! Learning on generated data: a fresh tiny UniVL fine-tuned on the synthetic set (coloured
//! shapes moving in one direction, `antmmf_data::synthetic`) with the configs of
//! `configs/synthetic/`, trained and evaluated by `run::<Autodiff<Flex>>` on the CPU, must score
//! far above chance on the held-out clips:
//! - retrieval: text-to-video R@1 at least 10x chance (chance = 100 / held-out videos, in percent);
//! - open QA: accuracy at least 1.6x the question-type prior (the best an answer-free guess by
//!   question kind does: 25 %), which takes reading at least one attribute from the frames.
//!
//! Seeds are fixed (data set and training), so the numbers are reproducible on one machine; they
//! are printed so that CI logs show the margin.

use antmmf_core::{Config, ConfigSources};
use antmmf_data::synthetic::{SyntheticConfig, SyntheticSummary, generate};
use antmmf_tasks::run::{RunPlan, RunReport, run};
use burn::backend::{Autodiff, Flex};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

type B = Autodiff<Flex>;

const DATASET: &str = "task_attributes.univl_task.dataset_attributes.synthetic";

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The uncased BERT vocabulary (`ANTMMF_ASSETS`, default `<workspace>/assets`).
fn vocab() -> PathBuf {
    let dir = std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("assets"));
    let path = dir.join("minilm/vocab.txt");
    assert!(
        path.is_file(),
        "missing asset {}: run scripts/setup.sh to fetch it",
        path.display()
    );
    path
}

/// Generates the synthetic set `cfg` into `dir`.
fn synthetic_set(dir: &Path, cfg: &SyntheticConfig) -> SyntheticSummary {
    let started = Instant::now();
    let summary = generate(cfg, dir).expect("generate the synthetic set");
    eprintln!(
        "generated {} train + {} held-out clips in {:.1} s",
        cfg.num_train_videos,
        cfg.num_test_videos,
        started.elapsed().as_secs_f64()
    );
    summary
}

/// The synthetic set of the learning tests: `num_train` train clips (every shape x colour x
/// direction combination, 4 x 4 x 4, equally often), and 64 held-out clips (each combination
/// once), 8 frames of 64x64.
fn synthetic_config(num_train: usize) -> SyntheticConfig {
    SyntheticConfig {
        num_train_videos: num_train,
        num_test_videos: 64,
        frames: 8,
        width: 64,
        height: 64,
        seed: 0,
        train_captions_per_video: 3,
        test_captions_per_video: 1,
        ..SyntheticConfig::default()
    }
}

/// Loads `configs/synthetic/<name>` with the data, vocabulary and run folder pointed at `data`
/// and `save`, plus `extra` overrides.
fn load_plan(name: &str, data: &Path, save: &Path, extra: &[(&str, String)]) -> RunPlan {
    let mut overrides: Vec<(String, String)> = vec![
        (
            format!("{DATASET}.data_root_dir"),
            data.display().to_string(),
        ),
        (
            format!(
                "{DATASET}.processors.caption_processor.params.tokenizer_config.params.vocab_path"
            ),
            vocab().display().to_string(),
        ),
        (
            "training_parameters.save_dir".into(),
            save.display().to_string(),
        ),
    ];
    overrides.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let config = Config::load(&ConfigSources {
        config: Some(workspace().join("configs/synthetic").join(name)),
        overrides: overrides.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        ..ConfigSources::default()
    })
    .expect("load the config");
    RunPlan::from_config(&config).expect("plan the run")
}

fn train_and_test(plan: &RunPlan) -> (RunReport, f64) {
    let started = Instant::now();
    let report = run::<B>(plan, Default::default()).expect("train and evaluate");
    (report, started.elapsed().as_secs_f64())
}

fn test_metrics(report: &RunReport) -> &BTreeMap<String, f64> {
    report
        .evaluations
        .get("test")
        .expect("the run evaluates the test split")
}

/// Retrieval from random weights (`configs/synthetic/retrieval_from_scratch.yml`: 2,048 train
/// clips, two BERT layers, the wider Swin, `l1_temperature` 0.02, 6,000 iterations, training
/// seed 1): the better of L1 and L2 text-to-video R@1 on the 64 held-out clips must reach 10x
/// chance (15.6 %, 10 hits). About 41 minutes on 2 CPU cores (the flex backend keeps one busy),
/// the longest test of the suite.
///
/// What the bar takes: colour alone gives R@1 6.25 % (16 held-out clips per colour, mean rank
/// 8.5); colour and shape give 25 % (the four held-out texts of a colour and shape embed alike
/// and share one top video, one of them right; mean rank 2.5). The model learns colour within
/// 1,000 iterations, shape after a plateau that ends near 2,000 (seeds 1 and 3) or sooner
/// (seed 2), and not the direction of motion. Seeds measured (L1 / L2 R@1 at 4,000, 5,000 and
/// 6,000 iterations): seed 1 15.6 / 18.8, 18.8 / 21.9, 18.8 / 17.2 %; seed 2 17.2 / 17.2,
/// 17.2 / 23.4, 20.3 / 21.9 %; seed 3 18.8 / 10.9, 17.2 / 18.8, 20.3 / 21.9 %; seed 4 (its
/// plateau ends near 3,000) 12.5 / 12.5, 14.1 / 14.1, 17.2 / 21.9 %: at 6,000 iterations every
/// seed passes, by 2-4 hits. The runs are bit-reproducible on one machine, so CI repeats this
/// test's number exactly on the same CPU; another CPU follows another trajectory, which the
/// other seeds sample. What was tried on the way, and why direction is not learned, is in
/// `docs/LEARNING.md`.
#[test]
fn retrieval_from_scratch_retrieves_held_out_videos_far_above_chance() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let summary = synthetic_set(&data, &synthetic_config(2048));
    let n_videos = summary.split(antmmf_data::synthetic::Split::Test).count();
    assert!(n_videos >= 50);
    let plan = load_plan(
        "retrieval_from_scratch.yml",
        &data,
        &tmp.path().join("save"),
        &[],
    );
    let (report, secs) = train_and_test(&plan);
    let m = test_metrics(&report);
    let chance = 100.0 / n_videos as f64;
    let r1_l1 = m["test/l1_simi_t2v-r@1"];
    let r1_l2 = m["test/l2_simi_t2v-r@1"];
    eprintln!(
        "retrieval: {n_videos} held-out videos, chance R@1 {chance:.1} %: L1 R@1 {r1_l1:.1} %, \
         R@5 {:.1} %; L2 R@1 {r1_l2:.1} %, R@5 {:.1} % ({:.0} s of training and evaluation)",
        m["test/l1_simi_t2v-r@5"], m["test/l2_simi_t2v-r@5"], secs
    );
    eprintln!("retrieval metrics: {m:?}");
    let best = r1_l1.max(r1_l2);
    assert!(
        best >= 10.0 * chance,
        "text-to-video R@1 {best:.1} % is under 10x chance ({:.1} %)",
        10.0 * chance
    );
}

/// The retrieval test's config loads and plans (unknown keys and wrong types are errors) with the
/// settings its measurements were taken with; a quick check before the long test runs.
#[test]
fn retrieval_from_scratch_config_plans() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let plan = load_plan(
        "retrieval_from_scratch.yml",
        &tmp.path().join("data"),
        &tmp.path().join("save"),
        &[],
    );
    assert_eq!(plan.task.head.name(), "video_text_retrieval");
    assert_eq!(plan.task.l1_temperature, 0.02);
    assert_eq!(plan.training.max_iterations, Some(6000));
}

/// Open QA: the held-out accuracy must reach 1.6x the question-type prior, the accuracy of the
/// best answer-free strategy: tell the attribute a question asks about from its words, then give
/// that attribute's most frequent held-out answer (25 % on the generated set, where every
/// combination is held out once). Beating it by that much needs the video: reading one attribute
/// from the frames (the colour) and guessing the other two gives 50 %.
#[test]
fn open_qa_from_scratch_answers_held_out_questions_far_above_the_question_prior() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let cfg = synthetic_config(256);
    let summary = synthetic_set(&data, &cfg);
    let plan = load_plan("vqa.yml", &data, &tmp.path().join("save"), &[]);
    assert_eq!(
        plan.dataset.labels.as_deref(),
        Some(summary.labels.as_slice()),
        "configs/synthetic/vqa.yml's labels are the generated set's"
    );
    // Held-out answer counts, from the written annotations.
    let text = std::fs::read_to_string(data.join("vqa_test.jsonl")).expect("read vqa_test.jsonl");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a jsonl line");
        *counts
            .entry(v["label"].as_str().expect("a label").to_string())
            .or_default() += 1;
    }
    let total: usize = counts.values().sum();
    // The question-type prior: each attribute's most frequent answer, over all questions.
    let kinds: [Vec<&str>; 3] = [
        cfg.colours().iter().map(|c| c.name()).collect(),
        cfg.directions().iter().map(|d| d.name()).collect(),
        cfg.shapes().iter().map(|s| s.name()).collect(),
    ];
    let best_per_kind: usize = kinds
        .iter()
        .map(|names| {
            names
                .iter()
                .map(|n| counts.get(*n).copied().unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .sum();
    let typed: usize = kinds
        .iter()
        .flatten()
        .map(|n| counts.get(*n).copied().unwrap_or(0))
        .sum();
    assert_eq!(
        typed, total,
        "every held-out answer is a colour, direction or shape"
    );
    let prior = best_per_kind as f64 / total as f64;
    let majority = *counts.values().max().expect("questions") as f64 / total as f64;
    let (report, secs) = train_and_test(&plan);
    let m = test_metrics(&report);
    let acc = m["test/accuracy"];
    eprintln!(
        "open QA: {total} held-out questions, question-type prior {:.1} %, majority answer \
         {:.1} %: accuracy {:.1} % ({:.0} s of training and evaluation)",
        100.0 * prior,
        100.0 * majority,
        100.0 * acc,
        secs
    );
    eprintln!("open QA metrics: {m:?}");
    assert!(
        acc >= 1.6 * prior,
        "accuracy {:.1} % is under 1.6x the question-type prior ({:.1} %)",
        100.0 * acc,
        160.0 * prior
    );
}
