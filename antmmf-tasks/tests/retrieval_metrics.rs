//! Retrieval ranks and metrics against `fixtures/retrieval.{json,safetensors}` (fixture README
//! section 5), for every case the JSON lists.
//!
//! Tolerances: ranks and evaluated video ids exact; R@1/5/10, MedR and MeanR `abs 1e-9`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use antmmf_tasks::metrics::{L1_SIMILARITY_KEY, RetrievalMetrics, ScoreMatrix, evaluate_retrieval};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

const METRIC_ATOL: f64 = 1e-9;

fn fixtures_dir() -> PathBuf {
    std::env::var_os("ANTMMF_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")))
}

enum Array {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<i64>),
}

fn load_arrays(bytes: &[u8]) -> HashMap<String, Array> {
    let st = SafeTensors::deserialize(bytes).expect("parse retrieval.safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let array = match view.dtype() {
                Dtype::F32 => Array::F32(
                    view.shape().to_vec(),
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                Dtype::I64 => Array::I64(
                    data.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                ),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, array)
        })
        .collect()
}

fn ints(arrays: &HashMap<String, Array>, name: &str) -> Vec<usize> {
    match arrays.get(name) {
        Some(Array::I64(v)) => v
            .iter()
            .map(|&x| usize::try_from(x).expect("non-negative"))
            .collect(),
        _ => panic!("missing int64 tensor {name}"),
    }
}

fn check_metrics(case: &str, direction: &str, got: &RetrievalMetrics, want: &Value) {
    let fields = [
        ("R@1", got.r1),
        ("R@5", got.r5),
        ("R@10", got.r10),
        ("MedR", got.median_rank),
        ("MeanR", got.mean_rank),
    ];
    for (key, value) in fields {
        let w = want[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{case}.{direction}.{key} missing"));
        assert!(
            (value - w).abs() <= METRIC_ATOL,
            "{case} {direction} {key}: got {value}, want {w} (abs {METRIC_ATOL})"
        );
    }
    // AntMMF's mean recall is the mean of R@1, R@5 and R@10.
    let mean_recall = (want["R@1"].as_f64().unwrap_or(f64::NAN)
        + want["R@5"].as_f64().unwrap_or(f64::NAN)
        + want["R@10"].as_f64().unwrap_or(f64::NAN))
        / 3.0;
    assert!((got.mean_recall - mean_recall).abs() <= METRIC_ATOL);
}

#[test]
fn retrieval_metrics_match_fixture() {
    let dir = fixtures_dir();
    let json: Value = serde_json::from_slice(
        &std::fs::read(dir.join("retrieval.json")).expect("read retrieval.json"),
    )
    .expect("parse retrieval.json");
    let bytes = std::fs::read(dir.join("retrieval.safetensors")).expect("read safetensors");
    let arrays = load_arrays(&bytes);
    let cases = json["cases"].as_object().expect("cases");
    assert!(!cases.is_empty());
    for (case, want) in cases {
        let (shape, scores) = match arrays.get(&format!("{case}.S")) {
            Some(Array::F32(shape, v)) => (shape.clone(), v.as_slice()),
            _ => panic!("missing {case}.S"),
        };
        let gt = ints(&arrays, &format!("{case}.gt"));
        let sim = ScoreMatrix::new(scores, shape[0], shape[1]).expect("matrix");
        let start = Instant::now();
        let report = evaluate_retrieval(&sim, &gt).expect("evaluate");
        eprintln!(
            "{case}: {} x {} ranked in {:?}",
            shape[0],
            shape[1],
            start.elapsed()
        );
        assert_eq!(
            report.t2v_ranks,
            ints(&arrays, &format!("{case}.t2v_ranks")),
            "{case} t2v ranks"
        );
        assert_eq!(
            report.v2t_ranks.ranks,
            ints(&arrays, &format!("{case}.v2t_ranks")),
            "{case} v2t ranks"
        );
        assert_eq!(
            report.v2t_ranks.video_ids,
            ints(&arrays, &format!("{case}.v2t_video_ids")),
            "{case} v2t video ids"
        );
        check_metrics(case, "t2v", &report.t2v, &want["t2v"]);
        check_metrics(case, "v2t", &report.v2t, &want["v2t"]);
        let names = report.named("val", L1_SIMILARITY_KEY);
        assert!(
            names
                .iter()
                .any(|(n, _)| n == "val/l1_simi_t2v-mean_recall")
        );
        assert!(names.iter().any(|(n, _)| n == "val/l1_simi_v2t-mr"));
    }
}

/// Speed check on a 10,000 x 10,000 matrix (400 MB): `cargo test -p antmmf-tasks --test integration
/// ranks_10k -- --ignored` (or `scripts/test.sh --ignored`).
#[test]
#[ignore]
fn ranks_10k_by_10k() {
    let n = 10_000usize;
    let mut state = 7u64;
    let scores: Vec<f32> = (0..n * n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) % 4096) as f32 / 64.0
        })
        .collect();
    let gt: Vec<usize> = (0..n).collect();
    let sim = ScoreMatrix::new(&scores, n, n).expect("matrix");
    let start = Instant::now();
    let report = evaluate_retrieval(&sim, &gt).expect("evaluate");
    eprintln!("10k x 10k: both directions in {:?}", start.elapsed());
    assert_eq!(report.t2v_ranks.len(), n);
}
