//! Command-line `key value` overrides, as AntMMF's `_merge_from_list` / `parse_field`: dotted key
//! paths with list indices (`a.b[1].c` or `a.b.[1].c`), values decoded like YAML scalars and flow
//! values (`True`, `5e-5`, `[1, 2]`, `None`/`null`, plain strings).

use super::schema::suggest_among;
use super::{ConfigError, key_to_string};
use serde_yaml_ng::Value;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySegment {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Parses `a.b[1].c`, `a.b.[1].c` and `a[0][1]` into segments.
pub fn parse_key_path(key: &str) -> Result<Vec<KeySegment>, ConfigError> {
    let bad = |reason: &str| ConfigError::BadOverrideKey {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    let mut out = Vec::new();
    for part in key.split('.') {
        if part.is_empty() {
            return Err(bad("empty segment between dots"));
        }
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            if name.contains(']') {
                return Err(bad("unbalanced `]`"));
            }
            out.push(KeySegment::Key(name.to_string()));
        }
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(|| bad("unclosed `[`"))?;
            let index = rest[1..close]
                .parse::<usize>()
                .map_err(|_| bad("list index must be a non-negative integer"))?;
            out.push(KeySegment::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(bad("text after `]`"));
            }
        }
    }
    Ok(out)
}

/// Decodes an override value like a YAML scalar or flow value; `None` is null, and text that is
/// not valid YAML on its own stays a plain string.
pub fn parse_override_value(raw: &str) -> Value {
    if raw == "None" {
        return Value::Null;
    }
    match serde_yaml_ng::from_str::<Value>(raw) {
        // A value such as `a: b` would parse as a mapping: AntMMF's literal_eval would keep it a
        // string, and so do we.
        Ok(Value::Mapping(_)) | Ok(Value::Tagged(_)) | Err(_) => Value::String(raw.to_string()),
        Ok(v) => v,
    }
}

/// Applies one `key value` override to an existing key.
pub(crate) fn apply(tree: &mut Value, key: &str, raw: &str) -> Result<(), ConfigError> {
    set(tree, key, parse_override_value(raw))
}

/// Sets an existing key (or list element) to `value`.
pub(crate) fn set(tree: &mut Value, key: &str, value: Value) -> Result<(), ConfigError> {
    let segments = parse_key_path(key)?;
    let suggestions_for = |tree: &Value| {
        let mut paths = Vec::new();
        collect_paths(tree, &mut Vec::new(), &mut paths);
        suggest_among(key, paths.iter().map(String::as_str))
    };
    let unknown = |tree: &Value| ConfigError::UnknownOverrideKey {
        key: key.to_string(),
        suggestions: suggestions_for(tree),
    };

    // Walk to the parent of the leaf, checking existence without holding borrows of `tree`.
    let mut probe = &*tree;
    for (i, segment) in segments.iter().enumerate() {
        let next = match (segment, probe) {
            (KeySegment::Key(k), Value::Mapping(m)) => m.get(k.as_str()),
            (KeySegment::Index(idx), Value::Sequence(s)) => {
                if *idx >= s.len() {
                    return Err(ConfigError::BadOverrideKey {
                        key: key.to_string(),
                        reason: format!("index {idx} is out of range for a list of {}", s.len()),
                    });
                }
                s.get(*idx)
            }
            (KeySegment::Index(_), _) => {
                return Err(ConfigError::BadOverrideKey {
                    key: key.to_string(),
                    reason: format!("`{}` is not a list", render(&segments[..i])),
                });
            }
            (KeySegment::Key(_), Value::Sequence(_)) => {
                return Err(ConfigError::BadOverrideKey {
                    key: key.to_string(),
                    reason: format!(
                        "`{}` is a list: index it as `{}[N]`",
                        render(&segments[..i]),
                        render(&segments[..i])
                    ),
                });
            }
            (KeySegment::Key(_), _) => None,
        };
        match next {
            Some(v) => probe = v,
            None => return Err(unknown(tree)),
        }
    }

    let mut current = tree;
    for segment in &segments {
        current = match (segment, current) {
            (KeySegment::Key(k), Value::Mapping(m)) => {
                m.get_mut(k.as_str())
                    .ok_or_else(|| ConfigError::UnknownOverrideKey {
                        key: key.to_string(),
                        suggestions: Vec::new(),
                    })?
            }
            (KeySegment::Index(i), Value::Sequence(s)) => {
                s.get_mut(*i).ok_or_else(|| ConfigError::BadOverrideKey {
                    key: key.to_string(),
                    reason: "index out of range".into(),
                })?
            }
            _ => {
                return Err(ConfigError::BadOverrideKey {
                    key: key.to_string(),
                    reason: "path does not match the config's shape".into(),
                });
            }
        };
    }
    *current = value;
    Ok(())
}

fn render(segments: &[KeySegment]) -> String {
    let mut s = String::new();
    for seg in segments {
        match seg {
            KeySegment::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            KeySegment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn collect_paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<String>) {
    if let Value::Mapping(m) = v {
        for (k, child) in m {
            prefix.push(key_to_string(k));
            out.push(prefix.join("."));
            collect_paths(child, prefix, out);
            prefix.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn key_paths_both_index_forms() {
        use KeySegment::*;
        let expect = vec![Key("a".into()), Key("b".into()), Index(1), Key("c".into())];
        assert_eq!(parse_key_path("a.b[1].c").unwrap(), expect);
        assert_eq!(parse_key_path("a.b.[1].c").unwrap(), expect);
        assert_eq!(
            parse_key_path("m[0][2]").unwrap(),
            vec![Key("m".into()), Index(0), Index(2)]
        );
        for bad in ["", "a..b", "a[x]", "a[1", "a]b", "a[1]b"] {
            assert!(parse_key_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_decode_like_yaml_scalars() {
        assert_eq!(parse_override_value("True"), Value::Bool(true));
        assert_eq!(parse_override_value("false"), Value::Bool(false));
        assert_eq!(parse_override_value("5e-5"), yaml("5.0e-5"));
        assert_eq!(parse_override_value("3"), Value::from(3));
        assert_eq!(parse_override_value("-5"), Value::from(-5));
        assert_eq!(parse_override_value("[1, 2]"), yaml("[1, 2]"));
        assert_eq!(parse_override_value("None"), Value::Null);
        assert_eq!(parse_override_value("null"), Value::Null);
        assert_eq!(parse_override_value("./save/x"), Value::from("./save/x"));
        assert_eq!(parse_override_value("a: b"), Value::from("a: b"));
        assert_eq!(parse_override_value("[unclosed"), Value::from("[unclosed"));
    }

    #[test]
    fn set_existing_keys_and_list_elements() {
        let mut t = yaml("a: {b: [{c: 1}, {c: 2}], d: x}");
        apply(&mut t, "a.b[1].c", "7").unwrap();
        apply(&mut t, "a.b.[0].c", "None").unwrap();
        apply(&mut t, "a.d", "[1,2]").unwrap();
        assert_eq!(t, yaml("a: {b: [{c: null}, {c: 7}], d: [1, 2]}"));
    }

    #[test]
    fn unknown_keys_suggest_existing_ones() {
        let mut t = yaml("training_parameters: {batch_size: 1, max_iterations: 2}");
        let err = apply(&mut t, "training_parameters.bach_size", "3").unwrap_err();
        assert_eq!(
            err.to_string(),
            "override of unknown config key `training_parameters.bach_size`; did you mean `training_parameters.batch_size`?"
        );
        let err = apply(&mut t, "training_parameters.batch_size.x", "3").unwrap_err();
        assert!(
            matches!(err, ConfigError::UnknownOverrideKey { .. }),
            "{err}"
        );
        let err = apply(&mut t, "training_parameters[0]", "3").unwrap_err();
        assert!(err.to_string().contains("is not a list"), "{err}");
    }

    #[test]
    fn list_index_out_of_range() {
        let mut t = yaml("a: [1]");
        let err = apply(&mut t, "a[3]", "1").unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }
}
