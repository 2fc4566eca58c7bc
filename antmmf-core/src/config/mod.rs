//! AntMMF-compatible configuration: YAML files with `includes:`, `$VAR` expansion, deep merge over
//! the declared defaults (`configs/defaults.yml`), `--config_override` files and `key value`
//! command-line overrides, validated against the declared key tree and through typed views.
//!
//! Mirrors AntMMF's `antmmf/common/configuration.py` (`load_from_file`, `nested_dict_update`,
//! `_merge_from_list`, `parse_field`), with these deliberate differences (see README):
//! includes are resolved relative to the including file or as absolute paths (AntMMF first tries
//! its package root), an override file only sets the keys it contains (AntMMF re-imposes
//! defaults), and unknown keys are errors instead of silently accepted entries.
//!
//! Priority, low to high: defaults < includes (in order) < the file < `--config_override FILE` <
//! positional `key value` pairs, left to right.

mod error;
mod load;
mod overrides;
mod schema;
mod views;

pub use error::ConfigError;
pub use load::{expand_env, load_yaml_file};
pub use overrides::{KeySegment, parse_key_path, parse_override_value};
pub use schema::Schema;
pub use views::{OptimizerAttributes, OptimizerParams, RunType, SeedPolicy, TrainingParameters};

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The declared defaults, embedded so that every binary carries them.
pub const DEFAULTS_YAML: &str = include_str!("../../../configs/defaults.yml");

/// Where the configuration comes from: the file, an optional override file and `key value` pairs.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// The main config file (`--config`).
    pub config: Option<PathBuf>,
    /// An override file (`--config_override`): only the keys it sets are applied.
    pub config_override: Option<PathBuf>,
    /// Positional `key value` tokens, applied left to right.
    pub overrides: Vec<String>,
}

/// A merged, validated configuration tree.
#[derive(Debug, Clone)]
pub struct Config {
    tree: Value,
    schema: Schema,
    user_keys: BTreeSet<String>,
    config_path: Option<PathBuf>,
}

impl Config {
    /// Loads defaults, the config file with its includes, the override file and the `key value`
    /// pairs, in that priority order, validating every key against the declared tree.
    pub fn load(sources: &ConfigSources) -> Result<Self, ConfigError> {
        Self::load_with_defaults(DEFAULTS_YAML, sources)
    }

    /// As [`Config::load`], with another defaults document (tests, embedding applications).
    pub fn load_with_defaults(
        defaults_yaml: &str,
        sources: &ConfigSources,
    ) -> Result<Self, ConfigError> {
        let schema = Schema::parse(defaults_yaml)?;
        let mut tree = schema.defaults().clone();
        let mut user_keys = BTreeSet::new();

        if let Some(path) = &sources.config {
            let user = load::load_with_includes(path, &schema)?;
            collect_leaf_paths(&user, &mut Vec::new(), &mut user_keys);
            merge(&mut tree, user);
        }
        if let Some(path) = &sources.config_override {
            let user = load::load_with_includes(path, &schema)?;
            collect_leaf_paths(&user, &mut Vec::new(), &mut user_keys);
            merge(&mut tree, user);
        }
        schema.instantiate_templates(&mut tree);

        if !sources.overrides.len().is_multiple_of(2) {
            return Err(ConfigError::OddOverrides {
                count: sources.overrides.len(),
                last: sources.overrides.last().cloned().unwrap_or_default(),
            });
        }
        for pair in sources.overrides.chunks(2) {
            let (key, raw) = (&pair[0], &pair[1]);
            overrides::apply(&mut tree, key, raw)?;
            user_keys.insert(normalize_key(key));
        }
        Ok(Self {
            tree,
            schema,
            user_keys,
            config_path: sources.config.clone(),
        })
    }

    /// The merged tree.
    pub fn tree(&self) -> &Value {
        &self.tree
    }

    /// The config file this configuration was loaded from, if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The folder of the config file (relative data paths may resolve against it).
    pub fn config_dir(&self) -> Option<&Path> {
        self.config_path.as_deref().and_then(Path::parent)
    }

    /// The value at a dotted key path (`training_parameters.batch_size`, `a.b[1].c`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        let segments = parse_key_path(path).ok()?;
        let mut current = &self.tree;
        for segment in &segments {
            current = match (segment, current) {
                (KeySegment::Key(k), Value::Mapping(m)) => m.get(k.as_str())?,
                (KeySegment::Index(i), Value::Sequence(s)) => s.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// Deserializes the subtree at `path` into a typed view; errors name the full key path and the
    /// offending value.
    pub fn view<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConfigError> {
        let value = self.get(path).cloned().unwrap_or(Value::Null);
        view_value(path, value)
    }

    /// The training parameters, validated (types and ranges).
    pub fn training_parameters(&self) -> Result<TrainingParameters, ConfigError> {
        let params: TrainingParameters = self.view("training_parameters")?;
        params.validate()?;
        Ok(params)
    }

    /// The optimizer attributes, validated.
    pub fn optimizer_attributes(&self) -> Result<OptimizerAttributes, ConfigError> {
        let params: OptimizerAttributes = self.view("optimizer_attributes")?;
        params.validate()?;
        Ok(params)
    }

    /// Sets a value at a key path that already exists (same rules as a command-line override).
    pub fn set(&mut self, key: &str, value: Value) -> Result<(), ConfigError> {
        overrides::set(&mut self.tree, key, value)?;
        self.user_keys.insert(normalize_key(key));
        Ok(())
    }

    /// Key paths that a config file, override file or command-line pair set explicitly.
    pub fn user_keys(&self) -> &BTreeSet<String> {
        &self.user_keys
    }

    /// User-set keys that match none of `acted_on` (patterns where `*` stands for one segment and a
    /// trailing `**` for any suffix): declared keys the program does not act on.
    pub fn ignored_keys(&self, acted_on: &[&str]) -> Vec<String> {
        self.user_keys
            .iter()
            .filter(|k| !acted_on.iter().any(|p| key_matches(p, k)))
            .cloned()
            .collect()
    }

    /// The merged configuration as YAML (what `--print-config` prints and the run directory keeps).
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_yaml_ng::to_string(&self.tree).map_err(|e| ConfigError::Serialize(e.to_string()))
    }

    /// The declared key tree this config was checked against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

/// Deserializes `value` as `T`, naming `base.<path>` and the value in errors.
pub fn view_value<T: DeserializeOwned>(base: &str, value: Value) -> Result<T, ConfigError> {
    let shown = value.clone();
    serde_path_to_error::deserialize(value).map_err(|err| {
        let inner = err.path().to_string();
        let key = join_path(base, &inner);
        let at = lookup_display(&shown, err.path());
        ConfigError::InvalidValue {
            key,
            value: at,
            message: err.into_inner().to_string(),
        }
    })
}

fn join_path(base: &str, inner: &str) -> String {
    match (base.is_empty(), inner == "." || inner.is_empty()) {
        (true, _) => inner.to_string(),
        (false, true) => base.to_string(),
        (false, false) if inner.starts_with('[') => format!("{base}{inner}"),
        (false, false) => format!("{base}.{inner}"),
    }
}

/// Renders the value found at a serde path (for error messages).
fn lookup_display(root: &Value, path: &serde_path_to_error::Path) -> String {
    let mut current = root;
    for seg in path.iter() {
        let next = match (seg, current) {
            (serde_path_to_error::Segment::Map { key }, Value::Mapping(m)) => m.get(key.as_str()),
            (serde_path_to_error::Segment::Seq { index }, Value::Sequence(s)) => s.get(*index),
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return "<missing>".to_string(),
        }
    }
    display_value(current)
}

/// A one-line rendering of a YAML value.
pub fn display_value(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(s) => format!("{s:?}"),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim_end().replace('\n', " "))
            .unwrap_or_else(|_| "<unprintable>".into()),
    }
}

/// Deep merge: mappings merge key by key; lists and scalars replace.
pub fn merge(base: &mut Value, update: Value) {
    match (base, update) {
        (Value::Mapping(b), Value::Mapping(u)) => {
            for (k, v) in u {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_mapping() && v.is_mapping() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, u) => *b = u,
    }
}

fn collect_leaf_paths(value: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                prefix.push(key_to_string(k));
                collect_leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.join("."));
            }
        }
    }
}

/// Renders a mapping key as a path segment.
pub(crate) fn key_to_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => display_value(other),
    }
}

/// `a.b[1].c` and `a.b.[1].c` both become `a.b.[1].c`.
fn normalize_key(key: &str) -> String {
    match parse_key_path(key) {
        Ok(segs) => segs
            .iter()
            .map(|s| match s {
                KeySegment::Key(k) => k.clone(),
                KeySegment::Index(i) => format!("[{i}]"),
            })
            .collect::<Vec<_>>()
            .join("."),
        Err(_) => key.to_string(),
    }
}

fn key_matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    for (i, ps) in p.iter().enumerate() {
        if *ps == "**" {
            return true;
        }
        match k.get(i) {
            Some(ks) if *ps == "*" || ps == ks => {}
            _ => return false,
        }
    }
    p.len() == k.len()
}

/// An empty mapping value.
pub(crate) fn empty_mapping() -> Value {
    Value::Mapping(Mapping::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn merge_is_deep_for_mappings_and_replaces_lists_and_scalars() {
        let mut base = yaml("a: {b: 1, c: [1, 2], d: {e: x}}\nf: 3");
        merge(&mut base, yaml("a: {c: [9], d: {g: y}}\nf: {h: 1}"));
        assert_eq!(base, yaml("a: {b: 1, c: [9], d: {e: x, g: y}}\nf: {h: 1}"));
    }

    #[test]
    fn key_patterns() {
        assert!(key_matches("a.*.c", "a.b.c"));
        assert!(!key_matches("a.*.c", "a.b.d"));
        assert!(key_matches("a.**", "a.b.c"));
        assert!(!key_matches("a.b", "a.b.c"));
        assert_eq!(normalize_key("a.b[1].c"), "a.b.[1].c");
    }

    #[test]
    fn view_errors_name_path_and_value() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            batch_size: usize,
        }
        let err = view_value::<T>("training_parameters", yaml("batch_size: lots")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("training_parameters.batch_size"), "{msg}");
        assert!(msg.contains("\"lots\""), "{msg}");
    }
}
