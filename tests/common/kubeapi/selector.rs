//! Label and field selectors for LIST and WATCH, as the API server parses them:
//! `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)` for labels;
//! `metadata.name` and `metadata.namespace` with `=`, `==`, `!=` for fields.

use serde_json::Value;

#[derive(Debug, Clone)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Selector {
    pub fn parse(label: Option<&str>, field: Option<&str>) -> Result<Self, String> {
        let mut selector = Selector::default();
        if let Some(text) = label {
            for part in split_top_level(text) {
                selector.labels.push(parse_requirement(part)?);
            }
        }
        if let Some(text) = field {
            for part in split_top_level(text) {
                let requirement = parse_requirement(part)?;
                match &requirement {
                    Requirement::Equals(key, _) | Requirement::NotEquals(key, _)
                        if key == "metadata.name" || key == "metadata.namespace" => {}
                    Requirement::Equals(key, _) | Requirement::NotEquals(key, _) => {
                        return Err(format!("field label not supported: {key}"))
                    }
                    _ => {
                        return Err(format!(
                            "invalid selector: '{text}'; can't understand '{part}'"
                        ))
                    }
                }
                selector.fields.push(requirement);
            }
        }
        Ok(selector)
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        let field = |key: &str| match key {
            "metadata.name" => object["metadata"]["name"].as_str(),
            "metadata.namespace" => object["metadata"]["namespace"].as_str(),
            _ => None,
        };
        self.labels.iter().all(|r| holds(r, &label)) && self.fields.iter().all(|r| holds(r, &field))
    }
}

fn holds<'a>(requirement: &Requirement, value_of: &dyn Fn(&str) -> Option<&'a str>) -> bool {
    match requirement {
        Requirement::Equals(k, v) => value_of(k) == Some(v.as_str()),
        // As in Kubernetes: `a!=b` also matches objects without `a`.
        Requirement::NotEquals(k, v) => value_of(k) != Some(v.as_str()),
        Requirement::Exists(k) => value_of(k).is_some(),
        Requirement::NotExists(k) => value_of(k).is_none(),
        Requirement::In(k, vs) => value_of(k).is_some_and(|v| vs.iter().any(|x| x == v)),
        Requirement::NotIn(k, vs) => !value_of(k).is_some_and(|v| vs.iter().any(|x| x == v)),
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let bad = || format!("unable to parse requirement: {part:?}");
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(key.trim().to_string()));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            key.trim().into(),
            value.trim().into(),
        ));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(key.trim().into(), value.trim().into()));
    }
    for (word, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, rest)) = part.split_once(word) {
            let values = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?
                .split(',')
                .map(|v| v.trim().to_string())
                .collect();
            let key = key.trim().to_string();
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    if part.contains(char::is_whitespace) || part.contains(['(', ')']) {
        return Err(bad());
    }
    Ok(Requirement::Exists(part.to_string()))
}
