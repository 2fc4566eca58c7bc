//! The command line every antmmf-rs binary shares, with AntMMF's flag names so users' launch
//! scripts carry over: `--config`, `--config_override`, trailing `key value` overrides,
//! `--local_rank` (accepted for launcher compatibility), plus `--backend`, `--devices` and
//! `--print-config`.

use antmmf_core::backend::{BackendKind, parse_devices};
use antmmf_core::{Config, ConfigError, ConfigSources};
use clap::Args;
use std::path::PathBuf;

/// Flags shared by `antmmf-train` and `antmmf-eval`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The AntMMF-style YAML config.
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,

    /// A YAML file whose keys override the config (only the keys it sets).
    #[arg(
        long = "config_override",
        alias = "config-override",
        value_name = "FILE"
    )]
    pub config_override: Option<PathBuf>,

    /// Burn backend: flex (CPU, default), ndarray (CPU), wgpu, cuda.
    #[arg(long, default_value = "flex", value_name = "NAME")]
    pub backend: String,

    /// GPU indices for wgpu/cuda, comma-separated (e.g. 0,1,2,3).
    #[arg(long, value_name = "LIST")]
    pub devices: Option<String>,

    /// Validate the configuration, print the merged YAML and exit.
    #[arg(long = "print-config", alias = "print_config")]
    pub print_config: bool,

    /// Accepted for compatibility with torch-style launchers (ignored).
    #[arg(long = "local_rank", alias = "local-rank", value_name = "N")]
    pub local_rank: Option<i64>,

    /// Overrides as `key value` pairs, e.g. `training_parameters.batch_size 128`.
    #[arg(value_name = "KEY VALUE", allow_hyphen_values = true, num_args = 0..)]
    pub overrides: Vec<String>,
}

impl CommonArgs {
    /// Moves flags written after the `key value` pairs (`... batch_size 3 --print-config`) out of
    /// the override list. Only key positions are inspected, so a value such as `-5` stays a value.
    pub fn lift_trailing_flags(&mut self) -> anyhow::Result<()> {
        let tokens = std::mem::take(&mut self.overrides);
        let mut kept = Vec::with_capacity(tokens.len());
        let mut it = tokens.into_iter();
        while let Some(tok) = it.next() {
            if !tok.starts_with("--") {
                kept.push(tok);
                if let Some(value) = it.next() {
                    kept.push(value);
                }
                continue;
            }
            let (flag, inline) = match tok.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (tok.clone(), None),
            };
            let mut value = |name: &str| -> anyhow::Result<String> {
                match inline.clone().or_else(|| it.next()) {
                    Some(v) => Ok(v),
                    None => anyhow::bail!("{name} needs a value"),
                }
            };
            match flag.as_str() {
                "--print-config" | "--print_config" => self.print_config = true,
                "--backend" => self.backend = value("--backend")?,
                "--devices" => self.devices = Some(value("--devices")?),
                "--config_override" | "--config-override" => {
                    self.config_override = Some(value("--config_override")?.into())
                }
                "--local_rank" | "--local-rank" => {
                    let v = value("--local_rank")?;
                    self.local_rank = Some(v.parse().map_err(|_| {
                        anyhow::anyhow!("--local_rank expects an integer, got {v:?}")
                    })?);
                }
                "--config" => self.config = value("--config")?.into(),
                other => anyhow::bail!("unexpected flag {other:?} among the `key value` overrides"),
            }
        }
        self.overrides = kept;
        Ok(())
    }

    /// The selected backend.
    pub fn backend_kind(&self) -> anyhow::Result<BackendKind> {
        Ok(self.backend.parse::<BackendKind>()?)
    }

    /// The selected GPU indices (empty = the backend's default device).
    pub fn device_ids(&self) -> anyhow::Result<Vec<usize>> {
        match &self.devices {
            None => Ok(Vec::new()),
            Some(s) => Ok(parse_devices(s)?),
        }
    }

    /// Where the configuration comes from.
    pub fn sources(&self) -> ConfigSources {
        ConfigSources {
            config: Some(self.config.clone()),
            config_override: self.config_override.clone(),
            overrides: self.overrides.clone(),
        }
    }
}

/// Config keys this build acts on (see [`antmmf_tasks::run::ACTED_ON_KEYS`]).
pub use antmmf_tasks::run::ACTED_ON_KEYS;

/// Logs, once, the user-set keys that this build does not act on.
pub fn warn_ignored_keys(config: &Config) {
    let ignored = config.ignored_keys(ACTED_ON_KEYS);
    if !ignored.is_empty() {
        log::warn!(
            "{} config key(s) are declared by AntMMF but not acted on by this build: {}",
            ignored.len(),
            ignored.join(", ")
        );
    }
}

/// Loads and fully validates the configuration the flags describe (keys, types and ranges of
/// the sections every run reads).
pub fn load_config(args: &CommonArgs) -> Result<Config, ConfigError> {
    let config = Config::load(&args.sources())?;
    config.training_parameters()?;
    config.optimizer_attributes()?;
    Ok(config)
}
