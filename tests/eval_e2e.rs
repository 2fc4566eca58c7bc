//! End-to-end tests of `antmmf-eval`, `antmmf-extract` and `antmmf-report` on the embedded
//! sample data (data/sample, media from assets/) with the quickstart's tiny model: a retrieval
//! model trained for two iterations, then retrieval (all pairs and top-k L2), zero-shot MC-QA
//! from the retrieval checkpoint, open QA from a fresh model, extraction equal to evaluation's
//! embeddings, and the report's PNG.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TRAIN: &str = env!("CARGO_BIN_EXE_antmmf-train");
const EVAL: &str = env!("CARGO_BIN_EXE_antmmf-eval");
const EXTRACT: &str = env!("CARGO_BIN_EXE_antmmf-extract");
const REPORT: &str = env!("CARGO_BIN_EXE_antmmf-report");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn assets_ready() -> bool {
    let r = repo_root();
    r.join("assets/minilm/model.safetensors").is_file()
        && r.join("assets/video/bikes.mp4").is_file()
}

fn run(bin: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("binary runs")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A tiny config of `head` on `dataset` (the quickstart's model part, absolute paths).
fn config(
    dir: &Path,
    file: &str,
    dataset: &str,
    head: &str,
    annotations: &str,
    extra: &str,
) -> PathBuf {
    let r = repo_root();
    let r = r.display();
    let quick = std::fs::read_to_string(repo_root().join("configs/quickstart.yml")).unwrap();
    let start = quick.find("model_attributes:").unwrap();
    let end = quick.find("optimizer_attributes:").unwrap();
    let model = quick[start..end]
        .replace("../assets/minilm", &format!("{r}/assets/minilm"))
        .replace(
            "training_head_type: video_pretraining",
            &format!("training_head_type: {head}"),
        );
    let text = format!(
        "task_attributes:
  univl_task:
    dataset_attributes:
      {dataset}:
        data_root_dir: {r}/data/sample
        annotations:
{annotations}
        use_videos: true
        videos:
          train: {r}/assets/video
          val: {r}/assets/video
          test: {r}/assets/video
{extra}        train_ensemble_n_clips: 1
        test_ensembel_n_clips: 2
        num_frm: 2
        processors:
          train_frame_processor:
            type: pyvideo_transform
            params: {{mode: train, crop_size: 64, aug_type: default}}
          test_frame_processor:
            type: pyvideo_transform
            params: {{mode: val, crop_size: 64}}
          caption_processor:
            type: masked_bert_tokenizer
            params:
              max_seq_length: 24
              mask_probability: 0.0
              tokenizer_config:
                type: bert-base-uncased
                params: {{do_lower_case: true, vocab_path: {r}/assets/minilm/vocab.txt}}
{model}optimizer_attributes:
  type: AdamW
  params: {{lr: 1.0e-4}}
training_parameters:
  seed: 1
  batch_size: 2
  test_batch_size: 4
  num_workers: 1
  max_iterations: 2
  log_interval: 1
  snapshot_interval: 1
  run_type: train+val
  monitored_metric: l1_simi_t2v-r@1
  save_dir: {save}
",
        save = dir.join("save").display()
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn metric(m: &Value, key: &str) -> f64 {
    m["metrics"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("no {key} in {m}"))
}

/// f32 tensors of a safetensors file and its metadata.
fn safetensors_f32(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (v, t.shape().to_vec())
}

fn safetensors_meta(path: &Path, key: &str) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let m = meta.metadata().clone().unwrap();
    serde_json::from_str(&m[key]).unwrap()
}

/// A little-endian `<f4` .npy (version 1.0): data and shape.
fn npy_f32(path: &Path) -> (Vec<f32>, Vec<usize>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let shape_s = &header[header.find("'shape': (").unwrap() + 10..];
    let shape: Vec<usize> = shape_s[..shape_s.find(')').unwrap()]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let v = b[10 + hl..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (v, shape)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn retrieval_config(dir: &Path) -> PathBuf {
    config(
        dir,
        "ret.yml",
        "video_text_retrieval",
        "video_text_retrieval",
        "          train: retrieval_train.jsonl\n          val: retrieval_test.jsonl\n          test: retrieval_test.jsonl",
        "",
    )
}

#[test]
fn eval_needs_a_checkpoint_and_a_matching_task() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = retrieval_config(d);
    let cfg = cfg.to_str().unwrap();
    let o = run(EVAL, d, &["--task", "retrieval", "--config", cfg]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--checkpoint") && err.contains("resume_file"),
        "{err}"
    );
    let o = run(
        EVAL,
        d,
        &["--task", "vqa", "--config", cfg, "--random-init"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("training_head_type") && err.contains("video_text_retrieval"),
        "{err}"
    );
    let o = run(
        EVAL,
        d,
        &[
            "--task",
            "retrieval",
            "--config",
            cfg,
            "--l2-topk",
            "0",
            "--random-init",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn train_then_evaluate_extract_and_report() {
    if !assets_ready() {
        eprintln!("skipped: assets/ missing (run scripts/setup.sh)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ret = retrieval_config(d);
    let ret = ret.to_str().unwrap();
    ok(&run(TRAIN, d, &["--config", ret]));
    let run_dir = d.join("save/univl_task_univl_1");
    let ckpt = run_dir.join("univl_final.ckpt");
    assert!(
        ckpt.is_file(),
        "no final checkpoint in {}",
        run_dir.display()
    );
    let ckpt = ckpt.to_str().unwrap();

    // Retrieval, every pair re-ranked, embeddings kept.
    let o = run(
        EVAL,
        d,
        &[
            "--task",
            "retrieval",
            "--config",
            ret,
            "--checkpoint",
            ckpt,
            "--l2-topk",
            "all",
            "--out",
            "all",
            "--save-embeddings",
        ],
    );
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("test/l1_simi_t2v-r@1"));
    let all = read_json(&d.join("all/metrics.json"));
    for dir in ["t2v", "v2t"] {
        for level in ["l1", "l2"] {
            for name in ["r@1", "r@5", "r@10", "mr", "mean_recall"] {
                metric(&all, &format!("test/{level}_simi_{dir}-{name}"));
            }
        }
    }
    assert_eq!(all["l2_topk"], "all");
    let preds = read_jsonl(&d.join("all/predictions.jsonl"));
    assert_eq!(preds.len(), 5, "one line per caption");
    assert!(
        preds
            .iter()
            .all(|p| p["top10"].as_array().unwrap().len() == 4)
    );
    assert_eq!(preds[3]["clip_name"], "bigbuckbunny");
    assert_eq!(preds[3]["caption"], "a cartoon rabbit on a hill");

    // Top-k re-ranking with k covering every ground truth, through resume_file and the default
    // output folder: the pairs it scores get the all-pairs scores, and every text ranked first
    // with all pairs is ranked first with top-k.
    let k = preds
        .iter()
        .map(|p| p["l1_rank"].as_u64().unwrap())
        .max()
        .unwrap();
    let k_s = k.to_string();
    ok(&run(
        EVAL,
        d,
        &[
            "--task",
            "retrieval",
            "--config",
            ret,
            "--l2-topk",
            &k_s,
            "training_parameters.resume_file",
            ckpt,
        ],
    ));
    let out = run_dir.join("eval_test");
    let topk = read_json(&out.join("metrics.json"));
    assert_eq!(topk["l2_topk"], k);
    let kpreds = read_jsonl(&out.join("predictions.jsonl"));
    assert_eq!(kpreds.len(), 5);
    for (a, b) in preds.iter().zip(&kpreds) {
        if a["l2_rank"] == 1 {
            assert_eq!(b["l2_rank"], 1, "{a} vs {b}");
        }
        for v in b["top10"].as_array().unwrap() {
            let Some(s) = v["l2_score"].as_f64() else {
                continue;
            };
            let same = a["top10"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["clip_name"] == v["clip_name"])
                .unwrap();
            assert!((same["l2_score"].as_f64().unwrap() - s).abs() < 1e-5);
        }
    }
    assert!(
        metric(&topk, "test/l2_simi_t2v-r@1") >= metric(&all, "test/l2_simi_t2v-r@1"),
        "top-{k} cannot lose a text ranked first"
    );
    assert_eq!(
        metric(&topk, "test/l1_simi_t2v-r@1"),
        metric(&all, "test/l1_simi_t2v-r@1")
    );

    // Zero-shot MC-QA from the retrieval checkpoint.
    let mc = config(
        d,
        "mcqa.yml",
        "video_multi_choice_qa",
        "video_multi_choice_qa",
        "          test: mcqa_test.jsonl",
        "",
    );
    ok(&run(
        EVAL,
        d,
        &[
            "--task",
            "mcqa",
            "--config",
            mc.to_str().unwrap(),
            "--checkpoint",
            ckpt,
            "--out",
            "mc",
        ],
    ));
    let m = read_json(&d.join("mc/metrics.json"));
    let acc = metric(&m, "test/accuracy");
    assert!((0.0..=1.0).contains(&acc));
    let mp = read_jsonl(&d.join("mc/predictions.jsonl"));
    assert_eq!(mp.len(), 3);
    assert_eq!(mp[1]["qid"], "mc1");
    assert_eq!(mp[1]["answer"], 2);
    assert_eq!(mp[0]["option_scores"].as_array().unwrap().len(), 4);

    // Open QA from a fresh model, AntMMF's csv report beside the jsonl.
    let qa = config(
        d,
        "vqa.yml",
        "video_text_classification",
        "video_text_classification",
        "          train: vqa_train.jsonl\n          test: vqa_test.jsonl",
        "        labels: [bicycle, street, phone, car, rabbit, hill]\n",
    );
    ok(&run(
        EVAL,
        d,
        &[
            "--task",
            "vqa",
            "--config",
            qa.to_str().unwrap(),
            "--random-init",
            "--out",
            "qa",
            "training_parameters.evalai_inference",
            "True",
            "training_parameters.report_format",
            "csv",
        ],
    ));
    let q = read_json(&d.join("qa/metrics.json"));
    metric(&q, "test/accuracy");
    metric(&q, "test/top5_accuracy");
    let per = q["per_label"].as_object().unwrap();
    let total: u64 = per.values().map(|v| v["total"].as_u64().unwrap()).sum();
    assert_eq!(total, 3);
    let qp = read_jsonl(&d.join("qa/predictions.jsonl"));
    assert_eq!(qp.len(), 3);
    assert_eq!(qp[0]["target"], "bicycle");
    assert_eq!(qp[0]["top5"].as_array().unwrap().len(), 5);
    let csv = std::fs::read_to_string(
        d.join("qa/video_text_classification_video_text_classification.csv"),
    )
    .unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // Extraction equals evaluation's embeddings (other batch size than evaluation's 4).
    let input = repo_root().join("data/sample/retrieval_test.jsonl");
    let input = input.to_str().unwrap();
    let o = run(
        EXTRACT,
        d,
        &[
            "--config",
            ret,
            "--checkpoint",
            ckpt,
            "--what",
            "text",
            "--input",
            input,
            "--out",
            "ext/text.safetensors",
            "--batch-size",
            "3",
        ],
    );
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("antmmf-extract: 5/5"));
    ok(&run(
        EXTRACT,
        d,
        &[
            "--config",
            ret,
            "--checkpoint",
            ckpt,
            "--what",
            "video",
            "--input",
            input,
            "--out",
            "ext/video.npy",
            "--batch-size",
            "3",
        ],
    ));
    let emb = d.join("all/embeddings.safetensors");
    let (et, st) = safetensors_f32(&emb, "text_l1");
    let (ev, sv) = safetensors_f32(&emb, "video_l1");
    let (xt, sxt) = safetensors_f32(&d.join("ext/text.safetensors"), "embeddings");
    let (xv, sxv) = npy_f32(&d.join("ext/video.npy"));
    assert_eq!(st, sxt);
    assert_eq!(sv, sxv);
    assert_eq!(sv, vec![4, 2, 384]);
    assert!(max_diff(&et, &xt) < 1e-5, "text {}", max_diff(&et, &xt));
    assert!(max_diff(&ev, &xv) < 1e-5, "video {}", max_diff(&ev, &xv));
    assert_eq!(
        safetensors_meta(&emb, "video_ids"),
        std::fs::read_to_string(d.join("ext/video.ids.txt"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        safetensors_meta(&emb, "text_ids"),
        safetensors_meta(&d.join("ext/text.safetensors"), "ids")
    );

    // The report of the training run: a decodable PNG and a summary.
    let png = d.join("report/curves.png");
    let o = run(
        REPORT,
        d,
        &[run_dir.to_str().unwrap(), "--png", png.to_str().unwrap()],
    );
    ok(&o);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("best l1_simi_t2v-r@1") && s.contains("samples/s"),
        "{s}"
    );
    let img = image::open(&png).expect("a valid PNG");
    assert_eq!((img.width(), img.height()), (1500, 450));
}
