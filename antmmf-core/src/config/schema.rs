//! The declared key tree (`configs/defaults.yml`): which keys exist, with which defaults, and which
//! levels take user-chosen names (`'*': {...}`) or free-form content (`'*': any`).

use super::{ConfigError, key_to_string, merge};
use serde_yaml_ng::{Mapping, Value};
use std::path::Path;

const WILDCARD: &str = "*";
const ANY: &str = "any";

/// The declared configuration keys and their defaults.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The defaults document with its wildcard entries.
    raw: Value,
    /// The defaults without wildcard entries.
    defaults: Value,
    /// Every declared key path (wildcards shown as `<name>`), for suggestions.
    declared: Vec<String>,
}

impl Schema {
    /// Parses a defaults document.
    pub fn parse(yaml: &str) -> Result<Self, ConfigError> {
        let raw = super::load::parse_yaml(yaml, Path::new("<defaults>"))
            .map_err(|e| ConfigError::Defaults(e.to_string()))?;
        let defaults = strip_wildcards(&raw);
        let mut declared = Vec::new();
        collect_declared(&raw, &mut Vec::new(), &mut declared);
        Ok(Self {
            raw,
            defaults,
            declared,
        })
    }

    /// The default values (no wildcard entries).
    pub fn defaults(&self) -> &Value {
        &self.defaults
    }

    /// Every declared key path, wildcards shown as `<name>`.
    pub fn declared_paths(&self) -> &[String] {
        &self.declared
    }

    /// Checks that every key in `user` (one file's own content) is declared.
    pub fn check_keys(&self, user: &Value, file: &Path) -> Result<(), ConfigError> {
        check(
            user,
            &self.raw,
            &mut Vec::new(),
            &mut Vec::new(),
            self,
            file,
        )
    }

    /// Fills in the template defaults of every user-named entry (a dataset, a processor) so that
    /// its declared keys exist, can be overridden and are printed.
    pub fn instantiate_templates(&self, tree: &mut Value) {
        instantiate(tree, &self.raw);
    }

    /// The declared keys closest to `key` (a full dotted path), best first.
    pub fn suggest(&self, key: &str) -> Vec<String> {
        suggest_among(key, self.declared.iter().map(String::as_str))
    }
}

/// The `'*'` entry of a mapping, if any.
fn wildcard(m: &Mapping) -> Option<&Value> {
    m.get(WILDCARD)
}

fn is_any(v: &Value) -> bool {
    matches!(v, Value::String(s) if s == ANY)
}

fn strip_wildcards(v: &Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .filter(|(k, _)| k.as_str() != Some(WILDCARD))
                .map(|(k, v)| (k.clone(), strip_wildcards(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn collect_declared(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<String>) {
    if let Value::Mapping(m) = v {
        for (k, child) in m {
            let name = if k.as_str() == Some(WILDCARD) {
                if is_any(child) {
                    continue;
                }
                "<name>".to_string()
            } else {
                key_to_string(k)
            };
            prefix.push(name);
            out.push(prefix.join("."));
            collect_declared(child, prefix, out);
            prefix.pop();
        }
    }
}

fn check(
    user: &Value,
    schema: &Value,
    path: &mut Vec<String>,
    schema_path: &mut Vec<String>,
    whole: &Schema,
    file: &Path,
) -> Result<(), ConfigError> {
    let (Value::Mapping(u), Value::Mapping(s)) = (user, schema) else {
        // Leaves, lists and type mismatches are for the typed views to judge.
        return Ok(());
    };
    for (k, child) in u {
        let name = key_to_string(k);
        let (child_schema, schema_name) = match s.get(k) {
            Some(cs) if name != WILDCARD => (cs, name.clone()),
            _ => match wildcard(s) {
                Some(w) if is_any(w) => continue,
                Some(w) => (w, "<name>".to_string()),
                None => {
                    path.push(name);
                    let key = path.join(".");
                    let siblings: Vec<String> = s
                        .keys()
                        .filter(|k| k.as_str() != Some(WILDCARD))
                        .map(|k| {
                            let mut p = path[..path.len() - 1].to_vec();
                            p.push(key_to_string(k));
                            p.join(".")
                        })
                        .collect();
                    let mut suggestions = suggest_among(&key, siblings.iter().map(String::as_str));
                    if suggestions.is_empty() {
                        suggestions = whole.suggest(&key);
                    }
                    return Err(ConfigError::UnknownKey {
                        file: file.to_path_buf(),
                        key,
                        suggestions,
                    });
                }
            },
        };
        path.push(name);
        schema_path.push(schema_name);
        check(child, child_schema, path, schema_path, whole, file)?;
        schema_path.pop();
        path.pop();
    }
    Ok(())
}

fn instantiate(tree: &mut Value, schema: &Value) {
    let (Value::Mapping(t), Value::Mapping(s)) = (tree, schema) else {
        return;
    };
    let template = wildcard(s).filter(|w| !is_any(w));
    for (k, child) in t.iter_mut() {
        match s.get(k) {
            Some(cs) if k.as_str() != Some(WILDCARD) => instantiate(child, cs),
            _ => {
                if let Some(w) = template {
                    if child.is_mapping() || child.is_null() {
                        let mut filled = strip_wildcards(w);
                        merge(&mut filled, std::mem::replace(child, Value::Null));
                        *child = filled;
                    }
                    instantiate(child, w);
                }
            }
        }
    }
}

/// Up to three candidates close to `key`, compared on the last segment (so a typo finds its
/// sibling, and a key put at the wrong level finds where it belongs); same-parent candidates win
/// ties. Only candidates close to the best one are kept.
pub(crate) fn suggest_among<'a>(
    key: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let (parent, last) = match key.rsplit_once('.') {
        Some((p, l)) => (p, l),
        None => ("", key),
    };
    let last = last.to_lowercase();
    let mut scored: Vec<(f64, String)> = candidates
        .filter_map(|c| {
            let (c_parent, c_last) = match c.rsplit_once('.') {
                Some((p, l)) => (p, l),
                None => ("", c),
            };
            let c_last = c_last.to_lowercase();
            let mut score = strsim::normalized_damerau_levenshtein(&last, &c_last);
            if last.len() >= 3 && (c_last.starts_with(&last) || last.starts_with(&c_last)) {
                score = score.max(0.75);
            }
            if score < 0.7 {
                return None;
            }
            if c_parent == parent {
                score += 0.1;
            }
            Some((score, c.to_string()))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    let best = scored.first().map(|s| s.0).unwrap_or(0.0);
    scored
        .into_iter()
        .filter(|(s, _)| *s >= best - 0.1)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &str = "
a:
  batch_size: 4
  named:
    '*':
      x: 1
      y: {z: 2}
  free:
    '*': any
";

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn defaults_drop_wildcards() {
        let s = Schema::parse(DEFAULTS).unwrap();
        assert_eq!(
            s.defaults(),
            &yaml("a: {batch_size: 4, named: {}, free: {}}")
        );
        assert!(
            s.declared_paths()
                .contains(&"a.named.<name>.y.z".to_string())
        );
    }

    #[test]
    fn unknown_key_names_file_path_and_suggestion() {
        let s = Schema::parse(DEFAULTS).unwrap();
        let err = s
            .check_keys(&yaml("a: {batch_sise: 3}"), Path::new("f.yml"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yml: unknown config key `a.batch_sise`; did you mean `a.batch_size`?"
        );
    }

    #[test]
    fn wildcards_accept_names_and_check_below() {
        let s = Schema::parse(DEFAULTS).unwrap();
        s.check_keys(
            &yaml("a: {named: {mine: {x: 5}}, free: {q: {r: 1}}}"),
            Path::new("f"),
        )
        .unwrap();
        let err = s
            .check_keys(&yaml("a: {named: {mine: {w: 5}}}"), Path::new("f"))
            .unwrap_err();
        assert!(err.to_string().contains("`a.named.mine.w`"), "{err}");
    }

    #[test]
    fn templates_fill_defaults_for_named_entries() {
        let s = Schema::parse(DEFAULTS).unwrap();
        let mut tree = yaml("a: {named: {mine: {x: 5}}}");
        s.instantiate_templates(&mut tree);
        assert_eq!(tree, yaml("a: {named: {mine: {x: 5, y: {z: 2}}}}"));
    }
}
