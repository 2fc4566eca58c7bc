//! Parity of `antmmf_models::losses` with the PyTorch autograd references in
//! `fixtures/losses.{json,safetensors}` (fixture README section 6).
//!
//! Every case the JSON lists is checked; a case without a checker fails the test.
//! Tolerances: losses and logits `|got - want| <= 1e-5 * max(|want|, 1)`; gradients
//! `|got - want| <= 1e-6 + 1e-4 * |want|`, computed with `Autodiff<Flex>`.

use std::collections::HashMap;
use std::path::PathBuf;

use antmmf_models::losses::{
    IGNORE_INDEX, LogitScale, bce_on_probabilities, bce_with_logits, masked_cross_entropy,
    multiple_choice_loss, symmetric_infonce,
};
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

type AB = Autodiff<Flex>;

const LOSS_RTOL: f64 = 1e-5;
const GRAD_ATOL: f64 = 1e-6;
const GRAD_RTOL: f64 = 1e-4;

fn fixtures_dir() -> PathBuf {
    std::env::var_os("ANTMMF_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")))
}

/// A fixture tensor: shape and values widened to f64 (ints kept exact as i64 too).
struct Array {
    shape: Vec<usize>,
    f: Vec<f64>,
    i: Vec<i64>,
}

struct Fixture {
    json: Value,
    arrays: HashMap<String, Array>,
}

fn load() -> Fixture {
    let dir = fixtures_dir();
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("losses.json")).expect("read losses.json"))
            .expect("parse losses.json");
    let bytes = std::fs::read(dir.join("losses.safetensors")).expect("read losses.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("parse losses.safetensors");
    let mut arrays = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let (f, i): (Vec<f64>, Vec<i64>) = match view.dtype() {
            Dtype::F32 => {
                let f: Vec<f64> = data
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect();
                (f, Vec::new())
            }
            Dtype::I64 => {
                let i: Vec<i64> = data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                (i.iter().map(|&x| x as f64).collect(), i)
            }
            other => panic!("{name}: unexpected dtype {other:?}"),
        };
        arrays.insert(
            name.clone(),
            Array {
                shape: view.shape().to_vec(),
                f,
                i,
            },
        );
    }
    Fixture { json, arrays }
}

impl Fixture {
    fn get(&self, name: &str) -> &Array {
        self.arrays
            .get(name)
            .unwrap_or_else(|| panic!("missing tensor {name}"))
    }

    fn float<const D: usize>(&self, name: &str) -> Tensor<AB, D> {
        let a = self.get(name);
        let v: Vec<f32> = a.f.iter().map(|&x| x as f32).collect();
        Tensor::from_data(TensorData::new(v, a.shape.clone()), &Default::default())
    }

    fn int<const D: usize>(&self, name: &str) -> Tensor<AB, D, Int> {
        let a = self.get(name);
        Tensor::from_data(
            TensorData::new(a.i.clone(), a.shape.clone()),
            &Default::default(),
        )
    }

    fn scalar(&self, name: &str) -> f64 {
        self.get(name).f[0]
    }
}

fn values<const D: usize, B: burn::tensor::backend::Backend>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Checks `got` against `want` and returns the max absolute error.
fn check_loss(what: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut max_err = 0f64;
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        max_err = max_err.max(err);
        assert!(
            err <= LOSS_RTOL * w.abs().max(1.0),
            "{what}[{k}]: got {g}, want {w} (rtol {LOSS_RTOL})"
        );
    }
    eprintln!("{what}: max abs error {max_err:.3e}");
    max_err
}

fn check_grad(what: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut max_err = 0f64;
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        max_err = max_err.max(err);
        assert!(
            err <= GRAD_ATOL + GRAD_RTOL * w.abs(),
            "{what}[{k}]: got {g}, want {w} (atol {GRAD_ATOL}, rtol {GRAD_RTOL})"
        );
    }
    eprintln!("{what}: max abs error {max_err:.3e}");
    max_err
}

fn json_f64(v: &Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("JSON key {key} missing"))
}

fn check_infonce(fx: &Fixture, prefix: &str, case: &Value) {
    let text = fx.float::<2>(&format!("{prefix}.text_emb")).require_grad();
    let video = fx.float::<2>(&format!("{prefix}.video_emb")).require_grad();
    let log_scale_name = format!("{prefix}.logit_scale");
    // A stored logit scale means the CLIP variant (normalised, learned scale); otherwise a fixed
    // temperature on raw embeddings.
    let learned = fx.arrays.contains_key(&log_scale_name);
    let (scale, log_scale) = if learned {
        let ls =
            Tensor::<AB, 1>::from_data([fx.scalar(&log_scale_name) as f32], &Default::default())
                .require_grad();
        (LogitScale::Log(ls.clone()), Some(ls))
    } else {
        (LogitScale::Temperature(json_f64(case, "temperature")), None)
    };
    let out = symmetric_infonce(text.clone(), video.clone(), scale, learned).expect("infonce");
    let grads = out.loss.backward();
    let loss = values(out.loss.clone());
    check_loss(
        &format!("{prefix}.loss"),
        &loss,
        &[fx.scalar(&format!("{prefix}.loss"))],
    );
    check_loss(
        &format!("{prefix}.loss (json)"),
        &loss,
        &[json_f64(case, "loss")],
    );
    for part in ["loss_t2v", "loss_v2t"] {
        let name = format!("{prefix}.{part}");
        if fx.arrays.contains_key(&name) {
            let got = match part {
                "loss_t2v" => values(out.loss_t2v.clone()),
                _ => values(out.loss_v2t.clone()),
            };
            check_loss(&name, &got, &[fx.scalar(&name)]);
        }
    }
    let logits_name = format!("{prefix}.logits");
    if fx.arrays.contains_key(&logits_name) {
        check_loss(
            &logits_name,
            &values(out.logits.clone()),
            &fx.get(&logits_name).f,
        );
    }
    let gt = text.grad(&grads).expect("text grad");
    let gv = video.grad(&grads).expect("video grad");
    check_grad(
        &format!("{prefix}.grad_text_emb"),
        &values(gt),
        &fx.get(&format!("{prefix}.grad_text_emb")).f,
    );
    check_grad(
        &format!("{prefix}.grad_video_emb"),
        &values(gv),
        &fx.get(&format!("{prefix}.grad_video_emb")).f,
    );
    if let Some(ls) = log_scale {
        let g = ls.grad(&grads).expect("logit scale grad");
        check_grad(
            &format!("{prefix}.grad_logit_scale"),
            &values(g),
            &[fx.scalar(&format!("{prefix}.grad_logit_scale"))],
        );
    }
}

fn check_mlm(fx: &Fixture, prefix: &str, case: &Value) {
    let logits = fx.float::<3>(&format!("{prefix}.logits")).require_grad();
    let labels = fx.int::<2>(&format!("{prefix}.labels"));
    let out = masked_cross_entropy(logits.clone(), labels.clone(), IGNORE_INDEX).expect("mlm");
    let grads = out.loss.backward();
    check_loss(
        &format!("{prefix}.loss"),
        &values(out.loss.clone()),
        &[fx.scalar(&format!("{prefix}.loss"))],
    );
    check_loss(
        &format!("{prefix}.loss_sum"),
        &values(out.loss_sum.clone()),
        &[fx.scalar(&format!("{prefix}.loss_sum"))],
    );
    assert_eq!(
        values(out.num_counted.clone())[0],
        json_f64(case, "num_counted"),
        "{prefix}.num_counted"
    );
    check_grad(
        &format!("{prefix}.grad_logits"),
        &values(logits.grad(&grads).expect("logits grad")),
        &fx.get(&format!("{prefix}.grad_logits")).f,
    );
    // Every label ignored: torch's mean is NaN (recorded as null in the JSON); ours is 0.
    let all_ignored = labels.full_like(IGNORE_INDEX);
    let out = masked_cross_entropy(logits, all_ignored, IGNORE_INDEX).expect("mlm all ignored");
    assert_eq!(values(out.loss)[0], 0.0, "{prefix}: all labels ignored");
    assert!(
        case.get("all_labels_ignored_mean_loss")
            .is_some_and(Value::is_null)
    );
}

fn check_bce(fx: &Fixture, prefix: &str, case: &Value) {
    let logits = fx.float::<1>(&format!("{prefix}.logits")).require_grad();
    let targets = fx.float::<1>(&format!("{prefix}.targets"));
    let loss = bce_with_logits(logits.clone(), targets.clone()).expect("bce");
    let grads = loss.backward();
    let got = values(loss);
    assert!(
        got[0].is_finite(),
        "{prefix}: saturated logits must stay finite"
    );
    check_loss(
        &format!("{prefix}.loss"),
        &got,
        &[fx.scalar(&format!("{prefix}.loss"))],
    );
    check_loss(
        &format!("{prefix}.loss (json)"),
        &got,
        &[json_f64(case, "loss")],
    );
    let g = values(logits.grad(&grads).expect("bce grad"));
    assert!(g.iter().all(|x| x.is_finite()));
    check_grad(
        &format!("{prefix}.grad_logits"),
        &g,
        &fx.get(&format!("{prefix}.grad_logits")).f,
    );
    let probs = burn::tensor::activation::sigmoid(logits.detach());
    check_loss(
        &format!("{prefix}.loss_on_probs"),
        &values(bce_on_probabilities(probs, targets).expect("bce on probs")),
        &[fx.scalar(&format!("{prefix}.loss_on_probs"))],
    );
}

fn check_multiple_choice(fx: &Fixture, prefix: &str, case: &Value) {
    let scores = fx.float::<2>(&format!("{prefix}.scores")).require_grad();
    let answer = fx.int::<1>(&format!("{prefix}.answer"));
    let out = multiple_choice_loss(scores.clone(), answer).expect("mc");
    let grads = out.loss.backward();
    check_loss(
        &format!("{prefix}.loss"),
        &values(out.loss.clone()),
        &[fx.scalar(&format!("{prefix}.loss"))],
    );
    check_grad(
        &format!("{prefix}.grad_scores"),
        &values(scores.grad(&grads).expect("mc grad")),
        &fx.get(&format!("{prefix}.grad_scores")).f,
    );
    assert_eq!(
        values(out.accuracy)[0],
        json_f64(case, "accuracy"),
        "{prefix}.accuracy"
    );
}

/// Tensor prefix of a JSON case: the case name, except `multiple_choice` stored as `mc.*`.
fn tensor_prefix(fx: &Fixture, case: &str) -> String {
    let has = |p: &str| fx.arrays.keys().any(|k| k.starts_with(&format!("{p}.")));
    if has(case) {
        case.to_string()
    } else if case == "multiple_choice" && has("mc") {
        "mc".to_string()
    } else {
        panic!("no tensors for case {case}")
    }
}

#[test]
fn losses_match_torch_fixture() {
    let fx = load();
    let cases = fx.json["cases"].as_object().expect("cases object");
    assert!(!cases.is_empty());
    for (name, case) in cases {
        let prefix = tensor_prefix(&fx, name);
        if name.starts_with("infonce") {
            check_infonce(&fx, &prefix, case);
        } else if name.starts_with("mlm") {
            check_mlm(&fx, &prefix, case);
        } else if name.starts_with("bce") {
            check_bce(&fx, &prefix, case);
        } else if name.starts_with("multiple_choice") || name.starts_with("mc") {
            check_multiple_choice(&fx, &prefix, case);
        } else {
            panic!("losses fixture case {name} has no checker");
        }
    }
}
