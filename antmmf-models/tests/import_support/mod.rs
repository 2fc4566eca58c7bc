//! Shared helpers for the model parity tests: fixture/asset locations and tolerance checks.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// The CPU backend every parity test runs on.
pub type B = burn::backend::Flex;

/// The fixture folder (`ANTMMF_FIXTURES`, default `<workspace>/fixtures`).
pub fn fixtures() -> PathBuf {
    std::env::var_os("ANTMMF_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")))
}

/// A fixture file; panics with a clear message when absent.
pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures().join(name);
    assert!(path.is_file(), "fixture {} is missing", path.display());
    path
}

/// A registry asset (`ANTMMF_ASSETS`, default `<workspace>/assets`); fails with a message to
/// run scripts/setup.sh when absent.
pub fn asset(name: &str) -> PathBuf {
    let root = std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets")));
    let path = root.join(name);
    assert!(
        path.is_file(),
        "asset {} is missing: run scripts/setup.sh to fetch it",
        path.display()
    );
    path
}

/// Reads a JSON fixture.
pub fn json(name: &str) -> serde_json::Value {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).expect("fixture JSON readable");
    serde_json::from_str(&text).expect("fixture JSON valid")
}

/// Asserts `|actual - expected| <= atol + rtol * |expected|` everywhere (no NaN/inf) and returns
/// the largest absolute difference; prints it so `--nocapture` shows the measured error.
pub fn assert_close<Bk: Backend, const D: usize>(
    what: &str,
    actual: Tensor<Bk, D>,
    expected: Tensor<Bk, D>,
    atol: f32,
    rtol: f32,
) -> f32 {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shape");
    let a: Vec<f32> = actual
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 data");
    let e: Vec<f32> = expected
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 data");
    let mut max_err = 0f32;
    let mut worst = None;
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        assert!(
            x.is_finite(),
            "{what}: non-finite value {x} at flat index {i}"
        );
        let err = (x - y).abs();
        if err > max_err {
            max_err = err;
        }
        if err > atol + rtol * y.abs() && worst.is_none() {
            worst = Some((i, *x, *y));
        }
    }
    if let Some((i, x, y)) = worst {
        panic!(
            "{what}: flat index {i}: got {x}, expected {y} (atol {atol}, rtol {rtol}); max abs error {max_err}"
        );
    }
    println!("{what}: max abs error {max_err:.3e} (atol {atol}, rtol {rtol})");
    max_err
}
