//! YAML documents with positions: every configuration error names `file:line:col`.
//!
//! serde (through `serde_yaml_ng`) turns YAML into typed raw structs, but its values
//! carry no positions. So each document is also walked once with `yaml-rust2`'s event
//! parser, recording where every key and value starts under a path such as
//! `rules[2].sites[0]`. Typed deserialisation happens section by section, with
//! `serde_path_to_error` naming the path of a failure, so that all errors of a file
//! are collected, each with its position, before loading fails.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_yaml::Value;
use yaml_rust2::parser::{Event, Parser};

/// One error in a configuration file, printed as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every error of one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A line and column, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    /// The earlier of two positions.
    fn min_with(self, other: Pos) -> Pos {
        if (other.line, other.col) < (self.line, self.col) {
            other
        } else {
            self
        }
    }
}

/// A parsed YAML document with the position of every key and value.
pub struct YamlDoc {
    pub file: String,
    pub root: Value,
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

/// Joins a map key onto a path.
pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a sequence index onto a path.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Path → position.
type PositionIndex = HashMap<String, Pos>;

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        start: Option<Pos>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

impl YamlDoc {
    /// Parses `text` (named `file` in errors). An empty document is an empty mapping.
    pub fn parse(file: &str, text: &str) -> Result<YamlDoc, ConfigErrors> {
        let (values, keys) = index_positions(file, text)?;
        let root: Value = if text.trim().is_empty() {
            Value::Mapping(Default::default())
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let (line, col) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                ConfigErrors(vec![ConfigError {
                    file: file.to_string(),
                    line,
                    col,
                    message: e.to_string(),
                }])
            })?
        };
        Ok(YamlDoc {
            file: file.to_string(),
            root,
            values,
            keys,
        })
    }

    /// Where the value at `path` starts (or its nearest parent, or the file start).
    pub fn value_pos(&self, path: &str) -> Pos {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.values.get(&p) {
                return *pos;
            }
            match parent(&p) {
                Some(up) => p = up,
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// Where the key that names `path` starts (falls back to the value's position).
    pub fn key_pos(&self, path: &str) -> Pos {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.value_pos(path))
    }

    /// An error at the value of `path`.
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> ConfigError {
        self.error_pos(self.value_pos(path), message)
    }

    /// An error at the key naming `path`.
    pub fn error_at_key(&self, path: &str, message: impl Into<String>) -> ConfigError {
        self.error_pos(self.key_pos(path), message)
    }

    fn error_pos(&self, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    /// Deserialises `value` (found at `path`) into `T`; on failure pushes an error
    /// that names the key and its position, and returns `None`.
    pub fn typed<T: DeserializeOwned>(
        &self,
        value: &Value,
        path: &str,
        what: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                let inner = path_string(e.path());
                let at = join_paths(path, &inner);
                let message = e.inner().to_string();
                errors.push(self.describe(&at, what, &message));
                None
            }
        }
    }

    fn describe(&self, at: &str, what: &str, message: &str) -> ConfigError {
        if let Some(field) = backticked(message, "unknown field `") {
            let expected = expected_names(message);
            // serde_path_to_error may already have entered the unknown key.
            let key_path = if last_key(at) == field {
                at.to_string()
            } else {
                child(at, &field)
            };
            let hint = suggest(&field, expected.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let known = if expected.is_empty() {
                String::new()
            } else {
                format!(" (known keys: {})", expected.join(", "))
            };
            return self.error_at_key(
                &key_path,
                format!("unknown key `{field}` in {what}{hint}{known}"),
            );
        }
        if let Some(field) = backticked(message, "missing field `") {
            return self.error_at(at, format!("{what}: missing key `{field}`"));
        }
        if let Some(variant) = backticked(message, "unknown variant `") {
            let expected = expected_names(message);
            let hint = suggest(&variant, expected.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return self.error_at(
                at,
                format!(
                    "`{}`: unknown value `{variant}`, expected one of {}{hint}",
                    last_key(at),
                    expected.join(", ")
                ),
            );
        }
        let message = message.split(" at line ").next().unwrap_or(message);
        self.error_at(at, format!("`{}` in {what}: {message}", last_key(at)))
    }
}

fn index_positions(file: &str, text: &str) -> Result<(PositionIndex, PositionIndex), ConfigErrors> {
    let mut values = HashMap::new();
    let mut keys = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.to_string(),
                line: e.marker().line(),
                col: e.marker().col() + 1,
                message: format!("YAML syntax: {}", e.info()),
            }])
        })?;
        let pos = Pos {
            line: mark.line(),
            col: mark.col() + 1,
        };
        match event {
            Event::StreamEnd => break,
            Event::Scalar(text, ..) => {
                if let Some(Frame::Map { path, key, start }) = stack.last_mut() {
                    if let Some(start) = start.take() {
                        // A block mapping starts where its first key does.
                        values.entry(path.clone()).or_insert(pos.min_with(start));
                    }
                    if key.is_none() {
                        let full = child(path, &text);
                        keys.insert(full, pos);
                        *key = Some(text);
                        continue;
                    }
                }
                let path = next_value_path(&mut stack);
                values.entry(path).or_insert(pos);
            }
            Event::Alias(_) => {
                let path = next_value_path(&mut stack);
                values.entry(path).or_insert(pos);
            }
            Event::MappingStart(..) => {
                let path = next_value_path(&mut stack);
                stack.push(Frame::Map {
                    path,
                    key: None,
                    start: Some(pos),
                });
            }
            Event::SequenceStart(..) => {
                let path = next_value_path(&mut stack);
                values.entry(path.clone()).or_insert(pos);
                stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::Map {
                    path,
                    start: Some(start),
                    ..
                }) = stack.pop()
                {
                    values.entry(path).or_insert(start);
                }
            }
            _ => {}
        }
    }
    Ok((values, keys))
}

/// The path of the value that the next event starts, advancing the parent frame.
fn next_value_path(stack: &mut [Frame]) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Map { path, key, .. }) => {
            let k = key.take().unwrap_or_default();
            child(path, &k)
        }
        Some(Frame::Seq { path, next, .. }) => {
            let p = index(path, *next);
            *next += 1;
            p
        }
    }
}

fn parent(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        if let Some(i) = path.rfind('[') {
            return Some(path[..i].to_string());
        }
    }
    match path.rfind('.') {
        Some(i) => Some(path[..i].to_string()),
        None => Some(String::new()),
    }
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index: i } => out = index(&out, *i),
            Segment::Map { key } => out = child(&out, key),
            Segment::Enum { variant } => out = child(&out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

fn join_paths(base: &str, inner: &str) -> String {
    if inner.is_empty() {
        base.to_string()
    } else if base.is_empty() || inner.starts_with('[') {
        format!("{base}{inner}")
    } else {
        format!("{base}.{inner}")
    }
}

/// The last key of a path, for messages (`rules[2].when.days` → `days`).
pub fn last_key(path: &str) -> &str {
    let p = path.trim_end_matches(|c: char| c == ']' || c.is_ascii_digit());
    let p = p.trim_end_matches('[');
    p.rsplit('.').next().unwrap_or(p)
}

fn backticked(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let rest = &message[start..];
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

fn expected_names(message: &str) -> Vec<String> {
    let Some(i) = message.find("expected ") else {
        return Vec::new();
    };
    message[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The closest known name to `name`, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for k in known {
        let score = strsim::jaro_winkler(&name.to_lowercase(), &k.to_lowercase());
        if score > best.map(|b| b.0).unwrap_or(0.0) {
            best = Some((score, k));
        }
    }
    best.filter(|(s, _)| *s >= 0.8).map(|(_, k)| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let doc =
            YamlDoc::parse("p.yaml", "a: 1\nrules:\n  - name: x\n    sites: [b, c]\n").unwrap();
        assert_eq!(doc.key_pos("rules"), Pos { line: 2, col: 1 });
        assert_eq!(doc.value_pos("rules[0].name"), Pos { line: 3, col: 11 });
        assert_eq!(doc.key_pos("rules[0].sites"), Pos { line: 4, col: 5 });
        assert_eq!(doc.value_pos("rules[0].sites[1]"), Pos { line: 4, col: 16 });
        assert_eq!(doc.value_pos("rules[0].nope"), Pos { line: 3, col: 5 });
    }

    #[test]
    fn syntax_error_has_position() {
        let err = match YamlDoc::parse("p.yaml", "a: [1, 2\nb: 3\n") {
            Err(e) => e,
            Ok(_) => panic!("should fail"),
        };
        assert!(err.to_string().starts_with("p.yaml:"), "{err}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("sitez", ["sites", "roles"]).as_deref(),
            Some("sites")
        );
        assert_eq!(suggest("zzz", ["sites", "roles"]), None);
        assert_eq!(last_key("rules[2].when.days"), "days");
        assert_eq!(last_key("rules[2]"), "rules");
    }
}
