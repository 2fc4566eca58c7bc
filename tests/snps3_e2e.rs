//! End-to-end SNP-S3 pretraining on the embedded sample data (`configs/sample/snps3_pretrain.yml`):
//! `antmmf-data words` mines the significant words of the sample captions into a temporary
//! folder, then `antmmf-train` pretrains the tiny UniVL with important-word MLM, vision-word
//! matching before and after the text encoder and the text encoder's MLM, and its losses fall.
//!
//! One run of 24 iterations (6 epochs of the 16 sample captions, batches of 4), logged as three
//! 8-iteration means: about 60 s of wall time on 2 busy cores (2.5 s per iteration at load 5).

use crate::common;

use common::{assert_success, run_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const TRAIN: &str = env!("CARGO_BIN_EXE_antmmf-train");
const DATA: &str = env!("CARGO_BIN_EXE_antmmf-data");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The losses of the sample SNP-S3 pretraining that the test follows.
const SNPS3_LOSSES: [&str; 4] = [
    "VWM_before_similarity_loss",
    "VWM_after_similarity_loss",
    "masked_lm_loss",
    "masked_lm_text_encoder_loss",
];

/// One `logs/train_log.json` record: the interval's last iteration, its mean total loss and its
/// mean named losses.
struct Record {
    iteration: u64,
    loss: f64,
    parts: Value,
}

impl Record {
    fn part(&self, name: &str) -> f64 {
        self.parts[name].as_f64().unwrap_or_else(|| {
            panic!(
                "iteration {}: no {name} in the logged losses {}",
                self.iteration, self.parts
            )
        })
    }
}

#[test]
fn snps3_sample_pretraining_with_iw_mlm_and_vwm_learns() {
    let root = repo_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let words = tmp.path().join("words.json");
    let lemmas = tmp.path().join("words_same_lemma.json");

    // Mine the significant words of the sample captions, as the config's comment says.
    let mined = Command::new(DATA)
        .args([
            "words",
            "--annotations",
            "data/sample/pretrain_video.jsonl",
            "data/sample/pretrain_image.jsonl",
            "--vocab",
            "assets/minilm/vocab.txt",
            "--out",
        ])
        .arg(&words)
        .current_dir(&root)
        .output()
        .expect("antmmf-data runs");
    assert_success(&mined, "antmmf-data words");
    assert!(words.is_file() && lemmas.is_file(), "{words:?}, {lemmas:?}");
    let listed = String::from_utf8_lossy(&mined.stdout);
    assert!(listed.contains("distinct words counted"), "{listed}");

    let save = tmp.path().join("save");
    let (words, lemmas) = (
        words.to_string_lossy().into_owned(),
        lemmas.to_string_lossy().into_owned(),
    );
    let intra = "task_attributes.univl_task.dataset_attributes.video_text_pretrain.processors.\
                 caption_processor.params.intra_VTM";
    let o = Command::new(TRAIN)
        .args(["--config", "configs/sample/snps3_pretrain.yml"])
        .args(["training_parameters.save_dir", &save.to_string_lossy()])
        .args(["training_parameters.max_iterations", "24"])
        .args(["training_parameters.log_interval", "8"])
        .args(["training_parameters.snapshot_interval", "1000"])
        .args([&format!("{intra}.HT_words_count_file_dir"), &words])
        .args([&format!("{intra}.vocab_same_lema_dir"), &lemmas])
        .args([
            "model_attributes.univl.pretraining_heads.MASK_All_IWords_info.HT_words_count_file_dir",
            &words,
        ])
        .env("ANTMMF_PROGRESS", "plain")
        .current_dir(&root)
        .output()
        .expect("antmmf-train runs");
    assert_success(
        &o,
        "antmmf-train --config configs/sample/snps3_pretrain.yml",
    );

    let run = run_dir(&save);
    let path = run.join("logs/train_log.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let log: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let log: Vec<Record> = log
        .as_array()
        .expect("train_log.json is a list")
        .iter()
        .map(|r| Record {
            iteration: r["iteration"].as_u64().expect("iteration"),
            loss: r["loss"].as_f64().expect("loss"),
            parts: r["parts"].clone(),
        })
        .collect();
    assert_eq!(
        log.iter().map(|r| r.iteration).collect::<Vec<_>>(),
        vec![8, 16, 24],
        "one record per 8-iteration interval"
    );
    for r in &log {
        assert!(
            r.loss.is_finite(),
            "iteration {}: loss {}",
            r.iteration,
            r.loss
        );
        for name in SNPS3_LOSSES {
            let v = r.part(name);
            assert!(v.is_finite(), "iteration {}: {name} = {v}", r.iteration);
        }
    }
    let (first, last) = (&log[0], &log[log.len() - 1]);
    let mut falls = vec![("total loss".to_string(), first.loss, last.loss)];
    for name in SNPS3_LOSSES {
        falls.push((name.to_string(), first.part(name), last.part(name)));
    }
    eprintln!("mean losses, iterations 1-8 -> 17-24:");
    for (name, a, b) in &falls {
        eprintln!("  {name}: {a:.4} -> {b:.4}");
    }
    for (name, a, b) in &falls {
        assert!(
            b < a,
            "{name} falls: {a} over iterations 1-8, {b} over 17-24"
        );
    }

    // The final validation reports the SNP-S3 losses too.
    let metrics_path = run.join("metrics.json");
    let metrics: Value = serde_json::from_str(
        &std::fs::read_to_string(&metrics_path).unwrap_or_else(|e| panic!("{metrics_path:?}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{metrics_path:?}: {e}"));
    for name in SNPS3_LOSSES {
        let key = format!("val/{name}");
        let v = metrics["evaluations"]["val"][&key]
            .as_f64()
            .unwrap_or_else(|| panic!("metrics.json has no {key}: {metrics}"));
        assert!(v.is_finite(), "{key} = {v}");
    }
    // AntMMF's VWM batch recall metrics, logged beside the losses (batches of 4 videos: a median
    // rank in 1..=4, recalls in percent, R@5 and R@10 of 4 videos always 100).
    for stage in ["before", "after"] {
        let mr = last.part(&format!("VWM_{stage}_mr"));
        let r1 = last.part(&format!("VWM_{stage}_r@1"));
        let r5 = last.part(&format!("VWM_{stage}_r@5"));
        assert!((1.0..=4.0).contains(&mr), "VWM_{stage}_mr = {mr}");
        assert!((0.0..=100.0).contains(&r1), "VWM_{stage}_r@1 = {r1}");
        assert_eq!(r5, 100.0, "VWM_{stage}_r@5");
        let key = format!("val/VWM_{stage}_r@1");
        let v = metrics["evaluations"]["val"][&key]
            .as_f64()
            .unwrap_or_else(|| panic!("metrics.json has no {key}: {metrics}"));
        assert!((0.0..=100.0).contains(&v), "{key} = {v}");
    }
}
