//! Reading one YAML config file (`$VAR` expansion, YAML merge keys, AntMMF's `None`) and resolving
//! its `includes:` recursively (AntMMF's `load_from_file`).

use super::schema::Schema;
use super::{ConfigError, display_value, merge};
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};

/// Replaces `$VAR` and `${VAR}` with the environment's value; unset variables are left as written
/// (Python's `os.path.expandvars`, which AntMMF uses).
pub fn expand_env(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let (name, end) = if bytes.get(i + 1) == Some(&b'{') {
                match text[i + 2..].find('}') {
                    Some(close) => (&text[i + 2..i + 2 + close], i + 3 + close),
                    None => ("", i + 1),
                }
            } else {
                let len = text[i + 1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                (&text[i + 1..i + 1 + len], i + 1 + len)
            };
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if valid && let Ok(value) = std::env::var(name) {
                out.push_str(&value);
                i = end;
                continue;
            }
            out.push('$');
            i += 1;
            continue;
        }
        let ch_len = utf8_len(bytes[i]);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Reads and parses one YAML file (no includes resolved). An empty file is an empty mapping.
pub fn load_yaml_file(path: &Path) -> Result<Value, ConfigError> {
    load_file(path, &[])
}

fn load_file(path: &Path, chain: &[PathBuf]) -> Result<Value, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound && !chain.is_empty() {
            ConfigError::MissingInclude {
                path: path.to_path_buf(),
                chain: chain.to_vec(),
            }
        } else {
            ConfigError::Read {
                path: path.to_path_buf(),
                chain: chain.to_vec(),
                source,
            }
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        ConfigError::Yaml {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: format!("not valid UTF-8 (at byte {offset})"),
        }
    })?;
    parse_yaml(&expand_env(&text), path)
}

/// Parses YAML text that came from `path` (used in messages).
pub(crate) fn parse_yaml(text: &str, path: &Path) -> Result<Value, ConfigError> {
    let mut value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let loc = e.location();
        ConfigError::Yaml {
            path: path.to_path_buf(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: strip_location(&e.to_string()),
        }
    })?;
    value.apply_merge().map_err(|e| ConfigError::Yaml {
        path: path.to_path_buf(),
        line: None,
        column: None,
        message: e.to_string(),
    })?;
    match value {
        Value::Null => Ok(super::empty_mapping()),
        Value::Mapping(_) => {
            none_to_null(&mut value);
            Ok(value)
        }
        other => Err(ConfigError::NotAMapping {
            path: path.to_path_buf(),
            found: display_value(&other),
        }),
    }
}

/// serde_yaml_ng appends " at line L column C"; the error already carries the location.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// AntMMF decodes the plain string `None` as null (`_decode_value`); so do we.
fn none_to_null(value: &mut Value) {
    match value {
        Value::String(s) if s == "None" => *value = Value::Null,
        Value::Mapping(m) => m.values_mut().for_each(none_to_null),
        Value::Sequence(s) => s.iter_mut().for_each(none_to_null),
        _ => {}
    }
}

/// Loads `path` with its includes merged underneath (includes in order, then the file itself),
/// checking every file's own keys against the schema.
pub(crate) fn load_with_includes(path: &Path, schema: &Schema) -> Result<Value, ConfigError> {
    load_recursive(path, schema, &mut Vec::new())
}

fn load_recursive(
    path: &Path,
    schema: &Schema,
    chain: &mut Vec<PathBuf>,
) -> Result<Value, ConfigError> {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(pos) = chain
        .iter()
        .position(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()) == canonical)
    {
        let mut cycle: Vec<PathBuf> = chain[pos..].to_vec();
        cycle.push(path.to_path_buf());
        return Err(ConfigError::IncludeCycle { chain: cycle });
    }
    let mut value = load_file(path, chain)?;
    let includes = match &mut value {
        Value::Mapping(m) => m.remove("includes"),
        _ => None,
    };
    schema.check_keys(&value, path)?;

    let include_paths: Vec<String> = match includes {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(ConfigError::BadIncludes {
                    path: path.to_path_buf(),
                    found: display_value(&other),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => vec![s],
        Some(other) => {
            return Err(ConfigError::BadIncludes {
                path: path.to_path_buf(),
                found: display_value(&other),
            });
        }
    };

    let base_dir = path.parent().unwrap_or(Path::new("."));
    let mut merged = super::empty_mapping();
    chain.push(path.to_path_buf());
    for include in include_paths {
        let include_path = if Path::new(&include).is_absolute() {
            PathBuf::from(&include)
        } else {
            base_dir.join(&include)
        };
        let included = load_recursive(&include_path, schema, chain)?;
        merge(&mut merged, included);
    }
    chain.pop();
    merge(&mut merged, value);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion_both_forms_and_unset_left_alone() {
        // SAFETY: tests in this module are the only users of these variable names.
        unsafe {
            std::env::set_var("ANTMMF_T_ROOT", "/data");
        }
        assert_eq!(
            expand_env(
                "a: $ANTMMF_T_ROOT/x ${ANTMMF_T_ROOT}y $ANTMMF_T_UNSET_Q ${ANTMMF_T_UNSET_Q} $ 5$"
            ),
            "a: /data/x /datay $ANTMMF_T_UNSET_Q ${ANTMMF_T_UNSET_Q} $ 5$"
        );
        assert_eq!(expand_env("中文 $ANTMMF_T_ROOT"), "中文 /data");
    }

    #[test]
    fn none_becomes_null_and_merge_keys_apply() {
        let v = parse_yaml(
            "base: &b {x: 1, y: None}\nother:\n  <<: *b\n  x: 2\n",
            Path::new("t.yml"),
        )
        .unwrap();
        assert_eq!(v["base"]["y"], Value::Null);
        assert_eq!(v["other"]["x"], Value::from(2));
        assert_eq!(v["other"]["y"], Value::Null);
    }

    #[test]
    fn tabs_are_an_error_with_location() {
        let err = parse_yaml("a:\n\tb: 1\n", Path::new("tabs.yml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("invalid YAML in tabs.yml:2:"), "{msg}");
    }

    #[test]
    fn non_mapping_top_level_is_an_error() {
        let err = parse_yaml("- 1\n- 2\n", Path::new("l.yml")).unwrap_err();
        assert!(err.to_string().contains("must be a mapping"), "{err}");
    }
}
