//! The integration tests of antmmf-apps (the binaries, end to end), built as one test binary: every binary links Burn and
//! FFmpeg, so one per crate keeps the test build small and quick to link. Each module is one
//! file of this folder; `every_test_file_is_a_module` (tests/main.rs) checks none is left out.

mod antmmf_data_cli;
mod bad_input;
mod cli_config;
mod common;
mod convert_e2e;
mod eval_e2e;
mod kill_resume;
mod multinode;
mod snps3_e2e;
mod train_e2e;

/// Every `tests/*.rs` file of every crate is declared in its crate's `tests/main.rs` (the crates
/// set `autotests = false`, so a file left out would silently never be compiled).
#[test]
fn every_test_file_is_a_module() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in [
        "tests",
        "antmmf-data/tests",
        "antmmf-models/tests",
        "antmmf-tasks/tests",
    ] {
        let dir = root.join(dir);
        let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
        let declared: Vec<&str> = main
            .lines()
            .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
            .collect();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let module = if path.is_dir() {
                path.join("mod.rs").exists()
            } else {
                path.extension().is_some_and(|e| e == "rs")
            };
            if module && stem != "main" && stem != "wgpu_smoke" {
                assert!(
                    declared.contains(&stem),
                    "{} is not a module of {}",
                    path.display(),
                    dir.join("main.rs").display()
                );
            }
        }
    }
}
