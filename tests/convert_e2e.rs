//! `antmmf-convert` end to end: the tiny BERT fixture (fixtures/README.md section 4,
//! `bert_weights.safetensors`) converted to Burn's native record loads through the same loaders
//! (`WeightFile::open` on the `.mpk`, and `Bert::from_pretrained` on a folder holding
//! `config.json` + `model.mpk`) and gives the same outputs: identical to the safetensors-loaded
//! model (atol 0) and within atol 1e-4 of the PyTorch `last_hidden_state`.

use std::path::{Path, PathBuf};
use std::process::Command;

use antmmf_models::bert::{Bert, BertConfig};
use antmmf_models::import::{KeyMap, LoadOptions, WeightFile};
use burn::tensor::{Int, Tensor};

type B = burn::backend::Flex;

const CONVERT: &str = env!("CARGO_BIN_EXE_antmmf-convert");

fn fixtures() -> PathBuf {
    std::env::var_os("ANTMMF_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures"))
}

fn max_abs_diff(a: Tensor<B, 3>, b: Tensor<B, 3>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar()
}

#[test]
fn tiny_bert_converts_to_native_and_loads_with_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("bert_tiny.json")).unwrap())
            .unwrap();
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, meta["config"].to_string()).unwrap();
    let weights = fixtures().join("bert_weights.safetensors");
    let out = dir.path().join("model.mpk");

    let run = Command::new(CONVERT)
        .args(["--from".as_ref(), weights.as_os_str()])
        .args(["--family", "bert"])
        .args(["--config".as_ref(), config_path.as_os_str()])
        .args(["--out".as_ref(), out.as_os_str()])
        .output()
        .expect("antmmf-convert runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The load report: 39 tensors in, nothing missing or unexpected.
    assert!(
        stdout.contains("[hf-bert]: 39 loaded, 0 missing, 0 unexpected"),
        "{stdout}"
    );
    assert!(stdout.contains("wrote"), "{stdout}");
    assert!(out.is_file());

    let device = Default::default();
    let config = BertConfig::from_file(&config_path).unwrap();
    let (from_safetensors, _) = WeightFile::open(&weights)
        .unwrap()
        .load_into(
            config.init::<B>(&device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )
        .unwrap();
    let native = WeightFile::open(&out).unwrap();
    assert!(native.is_native());
    let (from_native, report) = native
        .load_into(
            config.init::<B>(&device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )
        .unwrap();
    assert_eq!(report.loaded.len(), 39, "{report}");
    // The folder form: config.json + model.mpk.
    let pretrained = Bert::<B>::from_pretrained(dir.path(), true, &device).unwrap();

    let io = WeightFile::open(fixtures().join("bert_io.safetensors")).unwrap();
    let ids: Tensor<B, 2, Int> = io.int_tensor("input_ids", &device).unwrap();
    let types: Tensor<B, 2, Int> = io.int_tensor("token_type_ids", &device).unwrap();
    let mask: Tensor<B, 2, Int> = io.int_tensor("attention_mask", &device).unwrap();
    let expected: Tensor<B, 3> = io.tensor("last_hidden_state", &device).unwrap();
    let run = |m: &Bert<B>| {
        m.forward(ids.clone(), Some(types.clone()), Some(mask.clone()), false)
            .last_hidden_state
    };
    let reference = run(&from_safetensors);
    for (what, model) in [
        ("WeightFile .mpk", &from_native),
        ("model folder", &pretrained.model),
    ] {
        let out = run(model);
        assert_eq!(max_abs_diff(out.clone(), reference.clone()), 0.0, "{what}");
        let err = max_abs_diff(out, expected.clone());
        assert!(err <= 1e-4, "{what}: max abs error {err} vs PyTorch");
    }
}

#[test]
fn unknown_family_and_missing_file_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mpk");
    let run = Command::new(CONVERT)
        .args([
            "--from",
            "/nonexistent/model.safetensors",
            "--family",
            "swin3d",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("no such file"), "{err}");
    let run = Command::new(CONVERT)
        .args(["--from", "a.safetensors", "--family", "gpt", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("gpt"));
}
