//! The config loader's mechanics (includes, merging, `$VAR` expansion, anchors, key checking with
//! suggestions, `key value` overrides with list indices) on arbitrary YAML text and override
//! tokens, against a small declared tree so that each run is fast (`config` uses the full
//! `configs/defaults.yml`, whose parsing dominates its speed). Every outcome is a config or a
//! `ConfigError`.
#![no_main]

use antmmf_core::config::{Config, ConfigSources, parse_key_path, parse_override_value};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

const DEFAULTS: &str = "\
training_parameters:
  batch_size: 8
  lr_steps: [10, 20]
  seed: null
  run_type: train
optimizer_attributes:
  type: AdamW
  params:
    lr: 1.0e-4
    '*': any
task_attributes:
  '*':
    dataset_attributes:
      '*':
        annotations: {train: null, val: null}
        num_frm: 4
        processors:
          '*':
            type: null
            params: {'*': any}
";

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d =
            std::env::temp_dir().join(format!("antmmf-fuzz-config-small-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temporary folder");
        d
    })
}

fuzz_target!(|input: (String, Vec<String>)| {
    let (yaml, overrides) = input;
    for token in &overrides {
        let _ = parse_key_path(token);
        let _ = parse_override_value(token);
    }
    if ["/dev", "/proc", "/sys"]
        .iter()
        .any(|p| yaml.contains(p) || overrides.iter().any(|o| o.contains(p)))
    {
        return;
    }
    let path = dir().join("fuzz.yml");
    if std::fs::write(&path, &yaml).is_err() {
        return;
    }
    let sources = ConfigSources {
        config: Some(path),
        config_override: None,
        overrides,
    };
    if let Ok(config) = Config::load_with_defaults(DEFAULTS, &sources) {
        let _ = config.to_yaml();
    }
});
