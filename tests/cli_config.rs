//! End-to-end tests of the configuration rules through the binaries: priority order, overrides,
//! includes, unknown keys, wrong types, and the exit codes and messages users see.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TRAIN: &str = env!("CARGO_BIN_EXE_antmmf-train");
const EVAL: &str = env!("CARGO_BIN_EXE_antmmf-eval");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// The value of `key:` in the `section:` block of printed YAML.
fn printed(yaml: &str, section: &str, key: &str) -> String {
    let v: serde_json::Value = {
        let mut in_section = false;
        let mut found = None;
        for line in yaml.lines() {
            if !line.starts_with(' ') {
                in_section = line.trim_end() == format!("{section}:");
                continue;
            }
            if in_section && let Some(rest) = line.strip_prefix(&format!("  {key}: ")) {
                found = Some(rest.to_string());
            }
        }
        serde_json::Value::String(found.unwrap_or_default())
    };
    v.as_str().unwrap().to_string()
}

#[test]
fn quickstart_print_config_with_override() {
    let o = run(
        TRAIN,
        &[
            "--config",
            "configs/quickstart.yml",
            "--print-config",
            "training_parameters.batch_size",
            "3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\n  batch_size: 3\n"), "{}", stdout(&o));
}

#[test]
fn priority_defaults_includes_file_override_file_then_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "inc/first.yml",
        "training_parameters:\n  batch_size: 11\n  log_interval: 11\n  num_workers: 11\n  patience: 11\n",
    );
    write(
        d,
        "inc/second.yml",
        "training_parameters:\n  batch_size: 22\n  log_interval: 22\n  num_workers: 22\n",
    );
    let main = write(
        d,
        "main.yml",
        "includes:\n  - inc/first.yml\n  - inc/second.yml\ntraining_parameters:\n  batch_size: 33\n  log_interval: 33\n",
    );
    let ovr = write(
        d,
        "override.yml",
        "training_parameters:\n  batch_size: 44\n",
    );
    let o = run(
        TRAIN,
        &[
            "--config",
            main.to_str().unwrap(),
            "--config_override",
            ovr.to_str().unwrap(),
            "--print-config",
            "training_parameters.batch_size",
            "55",
            "training_parameters.batch_size",
            "66",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let y = stdout(&o);
    assert_eq!(printed(&y, "training_parameters", "batch_size"), "66"); // last pair wins
    assert_eq!(printed(&y, "training_parameters", "log_interval"), "33"); // file over includes
    assert_eq!(printed(&y, "training_parameters", "num_workers"), "22"); // later include wins
    assert_eq!(printed(&y, "training_parameters", "patience"), "11"); // first include over defaults
    assert_eq!(
        printed(&y, "training_parameters", "snapshot_interval"),
        "1000"
    ); // defaults
    // The override file sets only its own keys: it does not re-impose defaults.
    assert_eq!(printed(&y, "training_parameters", "log_interval"), "33");
}

#[test]
fn absolute_include_and_env_expansion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inc = write(d, "abs/base.yml", "training_parameters:\n  patience: 7\n");
    let main = write(
        d,
        "main.yml",
        &format!(
            "includes: [{}]\ntraining_parameters:\n  save_dir: ${{ANTMMF_TEST_SAVE}}/runs\n",
            inc.display()
        ),
    );
    let o = Command::new(TRAIN)
        .args(["--config", main.to_str().unwrap(), "--print-config"])
        .env("ANTMMF_TEST_SAVE", "/tmp/antmmf-e2e")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let y = stdout(&o);
    assert_eq!(printed(&y, "training_parameters", "patience"), "7");
    assert_eq!(
        printed(&y, "training_parameters", "save_dir"),
        "/tmp/antmmf-e2e/runs"
    );
}

#[test]
fn unknown_override_key_is_an_error_with_suggestion() {
    let o = run(
        TRAIN,
        &[
            "--config",
            "configs/quickstart.yml",
            "training_parameters.bach_size",
            "3",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "override of unknown config key `training_parameters.bach_size`; did you mean `training_parameters.batch_size`?"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn odd_override_count_is_an_error() {
    let o = run(
        TRAIN,
        &[
            "--config",
            "configs/quickstart.yml",
            "training_parameters.batch_size",
            "3",
            "training_parameters.seed",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("odd number of override tokens (3)"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("`training_parameters.seed` has no value"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn include_cycle_shows_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = write(d, "a.yml", "includes: [b.yml]\n");
    write(d, "b.yml", "includes: [c.yml]\n");
    write(d, "c.yml", "includes: [a.yml]\n");
    let o = run(TRAIN, &["--config", a.to_str().unwrap(), "--print-config"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("include cycle:"), "{e}");
    let chain: Vec<&str> = ["a.yml", "b.yml", "c.yml", "a.yml"].to_vec();
    let mut pos = 0;
    for name in chain {
        let found = e[pos..]
            .find(name)
            .unwrap_or_else(|| panic!("{name} missing in chain: {e}"));
        pos += found + name.len();
    }
}

#[test]
fn missing_include_names_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let main = write(d, "main.yml", "includes: [nowhere/base.yml]\n");
    let o = run(
        TRAIN,
        &["--config", main.to_str().unwrap(), "--print-config"],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("missing include"), "{e}");
    assert!(e.contains("nowhere/base.yml"), "{e}");
    assert!(
        e.contains("(included from") && e.contains("main.yml"),
        "{e}"
    );
}

#[test]
fn missing_config_file() {
    let o = run(TRAIN, &["--config", "/nonexistent/x.yml", "--print-config"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read config file /nonexistent/x.yml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_key_in_a_file_names_file_key_and_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "main.yml",
        "training_parameters:\n  max_iteration: 10\n",
    );
    let o = run(
        TRAIN,
        &["--config", main.to_str().unwrap(), "--print-config"],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("main.yml: unknown config key `training_parameters.max_iteration`"),
        "{e}"
    );
    assert!(
        e.contains("did you mean `training_parameters.max_iterations`"),
        "{e}"
    );
}

#[test]
fn wrong_types_and_ranges_name_the_key() {
    let cases: [(&str, &str, &str); 5] = [
        (
            "training_parameters.batch_size",
            "lots",
            "invalid value for `training_parameters.batch_size`: \"lots\"",
        ),
        (
            "training_parameters.batch_size",
            "0",
            "invalid value for `training_parameters.batch_size`: 0: must be at least 1",
        ),
        (
            "training_parameters.batch_size",
            "-5",
            "invalid value for `training_parameters.batch_size`: -5: must be at least 1",
        ),
        (
            "optimizer_attributes.params.lr",
            "fast",
            "invalid value for `optimizer_attributes.params.lr`: \"fast\": expected a number",
        ),
        (
            "optimizer_attributes.params.lr",
            "-1e-4",
            "invalid value for `optimizer_attributes.params.lr`",
        ),
    ];
    for (key, value, expect) in cases {
        let o = run(
            TRAIN,
            &[
                "--config",
                "configs/quickstart.yml",
                "--print-config",
                key,
                value,
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{key} {value}");
        assert!(stderr(&o).contains(expect), "{key} {value}: {}", stderr(&o));
    }
}

#[test]
fn invalid_yaml_with_tabs_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "tabs.yml",
        "training_parameters:\n\tbatch_size: 3\n",
    );
    let o = run(
        TRAIN,
        &["--config", main.to_str().unwrap(), "--print-config"],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("invalid YAML in") && e.contains("tabs.yml:2:"),
        "{e}"
    );
}

#[test]
fn deeply_nested_yaml_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!(
        "training_parameters:\n  sampler:\n    params:\n      x: {}1{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let main = write(dir.path(), "deep.yml", &deep);
    let o = run(
        TRAIN,
        &["--config", main.to_str().unwrap(), "--print-config"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("recursion limit exceeded"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_element_override_and_value_decoding() {
    let o = run(
        TRAIN,
        &[
            "--config",
            "configs/quickstart.yml",
            "--print-config",
            "optimizer_attributes.params.betas[1]",
            "0.95",
            "training_parameters.lr_steps",
            "[10, 20]",
            "training_parameters.resume_file",
            "None",
            "training_parameters.clip_gradients",
            "True",
            "training_parameters.max_grad_l2_norm",
            "1e-1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let y = stdout(&o);
    assert!(y.contains("    betas:\n    - 0.9\n    - 0.95\n"), "{y}");
    assert!(y.contains("  lr_steps:\n  - 10\n  - 20\n"), "{y}");
    assert_eq!(printed(&y, "training_parameters", "resume_file"), "null");
    assert_eq!(printed(&y, "training_parameters", "clip_gradients"), "true");
    assert_eq!(
        printed(&y, "training_parameters", "max_grad_l2_norm"),
        "0.1"
    );
}

#[test]
fn flags_after_overrides_and_local_rank_are_accepted() {
    let o = run(
        EVAL,
        &[
            "--config",
            "configs/quickstart.yml",
            "training_parameters.batch_size",
            "2",
            "--local_rank",
            "0",
            "--print-config",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        printed(&stdout(&o), "training_parameters", "batch_size"),
        "2"
    );
}

#[test]
fn backend_not_compiled_names_the_feature() {
    for (backend, feature) in [("cuda", "--features cuda"), ("wgpu", "--features wgpu")] {
        let o = run(
            TRAIN,
            &[
                "--config",
                "configs/quickstart.yml",
                "--backend",
                backend,
                "--print-config",
            ],
        );
        if cfg!(feature = "cuda") || cfg!(feature = "wgpu") {
            continue;
        }
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(feature), "{}", stderr(&o));
    }
    let o = run(
        TRAIN,
        &["--config", "configs/quickstart.yml", "--backend", "tpu"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown backend `tpu`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_has_a_worked_example() {
    for bin in [TRAIN, EVAL] {
        let o = run(bin, &["--help"]);
        assert!(o.status.success());
        let s = stdout(&o);
        assert!(s.contains("Example:") && s.contains("--config"), "{s}");
        assert!(
            s.contains("--config_override") && s.contains("--backend"),
            "{s}"
        );
    }
}

#[test]
fn keys_not_acted_on_are_listed_once() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "main.yml",
        "training_parameters:\n  batch_size: 2\n  pin_memory: true\n",
    );
    let o = run(
        TRAIN,
        &["--config", main.to_str().unwrap(), "--print-config"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.matches("not acted on by this build").count(), 1, "{e}");
    assert!(e.contains("training_parameters.pin_memory"), "{e}");
    assert!(!e.contains("training_parameters.batch_size"), "{e}");
}

#[test]
fn missing_resume_file_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        TRAIN,
        &[
            "--config",
            "configs/quickstart.yml",
            "training_parameters.save_dir",
            dir.path().to_str().unwrap(),
            "training_parameters.resume_file",
            "/nonexistent/model_10.ckpt",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("training_parameters.resume_file: /nonexistent/model_10.ckpt does not exist"),
        "{}",
        stderr(&o)
    );
}

/// `antmmf-train` arguments for `configs/synthetic/retrieval.yml` on the embedded synthetic set,
/// writing into `save`.
fn synthetic_retrieval(save: &str) -> [&str; 6] {
    [
        "--config",
        "configs/synthetic/retrieval.yml",
        "task_attributes.univl_task.dataset_attributes.synthetic.data_root_dir",
        "data/sample/synth",
        "training_parameters.save_dir",
        save,
    ]
}

#[test]
fn l1_temperature_must_be_positive() {
    let tmp = tempfile::tempdir().unwrap();
    let save = tmp.path().display().to_string();
    for bad in ["0", "-0.1", "warm"] {
        let mut args = synthetic_retrieval(&save).to_vec();
        args.extend(["model_attributes.univl.l1_temperature", bad]);
        let o = run(TRAIN, &args);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("model_attributes.univl.l1_temperature: must be a number > 0"),
            "{bad}: {}",
            stderr(&o)
        );
    }
}
