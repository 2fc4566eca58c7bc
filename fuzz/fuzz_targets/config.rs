//! The config loader and the override parser on arbitrary input: YAML text (written to a file,
//! loaded with the project's defaults and its includes) and `key value` override tokens. Every
//! outcome is a config or a `ConfigError`; a loaded config's typed views and YAML printing are
//! exercised too.
#![no_main]

use antmmf_core::config::{Config, ConfigSources, DEFAULTS_YAML};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One folder per fuzzing process for the config file (and any include it names there).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("antmmf-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temporary folder");
        d
    })
}

fuzz_target!(|input: (String, Vec<String>)| {
    let (yaml, overrides) = input;
    // Includes may name any file: keep the fuzzer off device files that never end.
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
    if let Ok(config) = Config::load_with_defaults(DEFAULTS_YAML, &sources) {
        let _ = config.training_parameters().map(|t| {
            let _ = t.validate();
            let _ = t.run_type();
            t.eval_batch_size()
        });
        let _ = config.optimizer_attributes().map(|o| o.validate());
        let _ = config.to_yaml();
    }
});
