//! The run directory, laid out as AntMMF lays it out so users' `resume_file` lines keep working:
//! `<save_dir>/<task>_<model>[_<seed>]/` with `config.yaml`, `logs/`, `models/model_<iter>.*`,
//! `best.*` and `<model>_final.*`.

use crate::config::{Config, ConfigError};
use crate::fsutil::write_atomic;
use serde_yaml_ng::Value;
use std::io;
use std::path::{Path, PathBuf};

/// The folder of one training run.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    model_name: String,
}

/// Errors creating or writing the run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A folder or file could not be written.
    #[error("cannot write run directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The config could not be rendered.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl RunDir {
    /// AntMMF's folder name: task names and model names joined by `-`, then `_<seed>` when a
    /// seed is configured (`ckpt_name_from_core_args`).
    pub fn folder_name(config: &Config, seed: Option<i64>) -> String {
        let keys = |path: &str| -> String {
            match config.get(path) {
                Some(Value::Mapping(m)) => m
                    .keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
                    .join("-"),
                _ => String::new(),
            }
        };
        let mut name = format!("{}_{}", keys("task_attributes"), keys("model_attributes"));
        if let Some(seed) = seed {
            name.push_str(&format!("_{seed}"));
        }
        name
    }

    /// The run directory for `config` under its `save_dir` (not created yet).
    pub fn for_config(config: &Config, save_dir: &Path, seed: Option<i64>) -> Self {
        let model_name = match config.get("model_attributes") {
            Some(Value::Mapping(m)) => m
                .keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect::<Vec<_>>()
                .join("-"),
            _ => "model".to_string(),
        };
        Self {
            root: save_dir.join(Self::folder_name(config, seed)),
            model_name,
        }
    }

    /// A run directory at an explicit path.
    pub fn at(root: impl Into<PathBuf>, model_name: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            model_name: model_name.into(),
        }
    }

    /// Creates the folders and writes the merged `config.yaml`.
    pub fn create(&self, config: &Config) -> Result<(), RunDirError> {
        for dir in [self.root.clone(), self.logs_dir(), self.models_dir()] {
            std::fs::create_dir_all(&dir).map_err(|source| RunDirError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let yaml = config.to_yaml()?;
        let path = self.config_file();
        write_atomic(&path, yaml.as_bytes()).map_err(|source| RunDirError::Io { path, source })
    }

    /// The run folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<run>/config.yaml`.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.yaml")
    }

    /// `<run>/logs`.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `<run>/models`.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// `<run>/models/model_<iter>.<ext>`.
    pub fn iteration_checkpoint(&self, iteration: u64, ext: &str) -> PathBuf {
        self.models_dir().join(format!("model_{iteration}.{ext}"))
    }

    /// `<run>/best.<ext>`.
    pub fn best_checkpoint(&self, ext: &str) -> PathBuf {
        self.root.join(format!("best.{ext}"))
    }

    /// `<run>/<model>_final.<ext>`.
    pub fn final_checkpoint(&self, ext: &str) -> PathBuf {
        self.root.join(format!("{}_final.{ext}", self.model_name))
    }

    /// Iteration checkpoints present in `models/` with extension `ext`, oldest first.
    pub fn list_iteration_checkpoints(&self, ext: &str) -> Vec<(u64, PathBuf)> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(self.models_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let name = path.file_name()?.to_str()?;
                let iter = name
                    .strip_prefix("model_")?
                    .strip_suffix(&format!(".{ext}"))?
                    .parse::<u64>()
                    .ok()?;
                Some((iter, path))
            })
            .collect();
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSources;

    #[test]
    fn antmmf_layout() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yml");
        std::fs::write(&cfg, "training_parameters: {seed: 3}\n").unwrap();
        let config = Config::load(&ConfigSources {
            config: Some(cfg),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(RunDir::folder_name(&config, Some(3)), "univl_task_univl_3");
        assert_eq!(RunDir::folder_name(&config, None), "univl_task_univl");
        let run = RunDir::for_config(&config, dir.path(), Some(3));
        run.create(&config).unwrap();
        assert!(run.config_file().is_file());
        assert!(run.logs_dir().is_dir());
        assert_eq!(
            run.iteration_checkpoint(500, "mpk"),
            dir.path().join("univl_task_univl_3/models/model_500.mpk")
        );
        assert_eq!(
            run.final_checkpoint("mpk"),
            dir.path().join("univl_task_univl_3/univl_final.mpk")
        );
        std::fs::write(run.iteration_checkpoint(20, "mpk"), b"x").unwrap();
        std::fs::write(run.iteration_checkpoint(3, "mpk"), b"x").unwrap();
        let iters: Vec<u64> = run
            .list_iteration_checkpoints("mpk")
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(iters, vec![3, 20]);
    }
}
