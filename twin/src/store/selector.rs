//! Label selectors (`app=x,tier!=db,env in (a,b),!canary`) and field selectors
//! (`metadata.name=x,spec.nodeName!=n1,involvedObject.name=app`) as list and watch filters.
//!
//! Field selectors are evaluated on any dotted path of the object (the apiserver supports a fixed
//! set per kind; every path that set contains works the same way here). A field that is absent
//! compares as the empty string, as the apiserver's field sets do.

use std::collections::BTreeSet;

use serde_json::Value;

/// A selector the twin cannot parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector {selector:?}: {reason}")]
pub struct SelectorError {
    /// The selector text.
    pub selector: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_of(s: &str, selector: &str) -> Result<BTreeSet<String>, SelectorError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError {
            selector: selector.to_string(),
            reason: format!("expected a parenthesised set, got {s:?}"),
        })?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    ///
    /// # Errors
    /// [`SelectorError`] for an unparsable term.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set_of(v, s)?)
            } else if let Some((k, v)) = term.split_once(" in ") {
                Requirement::In(k.trim().into(), set_of(v, s)?)
            } else if term
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(term.to_string())
            } else {
                return Err(SelectorError {
                    selector: s.to_string(),
                    reason: format!("cannot parse term {term:?}"),
                });
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::In(k, set) => get(k).is_some_and(|x| set.contains(x)),
            Requirement::NotIn(k, set) => get(k).is_none_or(|x| !set.contains(x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// The string value of a dotted field path (`""` when absent).
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut node = obj;
    for part in path.split('.') {
        match node.get(part) {
            Some(v) => node = v,
            None => return String::new(),
        }
    }
    match node {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter.
    ///
    /// # Errors
    /// [`SelectorError`] for a term without `=`, `==` or `!=`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let req = if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else {
                return Err(SelectorError {
                    selector: s.to_string(),
                    reason: format!("{term:?} is not field=value or field!=value"),
                });
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object's fields match.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => field_value(obj, k) == *v,
            Requirement::NotEquals(k, v) => field_value(obj, k) != *v,
            _ => true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_cover_every_operator() {
        let pod = json!({"metadata": {"labels": {"app": "x", "env": "prod"}}});
        for (sel, want) in [
            ("", true),
            ("app=x", true),
            ("app==x,env=prod", true),
            ("app!=x", false),
            ("env in (dev, prod)", true),
            ("env notin (prod)", false),
            ("app,!canary", true),
            ("canary", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&pod),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("a in b").is_err());
    }

    #[test]
    fn field_selectors_walk_dotted_paths() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"name": "app", "uid": "u"}});
        assert!(
            FieldSelector::parse("involvedObject.name=app,metadata.name=e")
                .unwrap()
                .matches(&ev)
        );
        assert!(
            !FieldSelector::parse("spec.nodeName=n1")
                .unwrap()
                .matches(&ev)
        );
        assert!(
            FieldSelector::parse("spec.nodeName!=n1")
                .unwrap()
                .matches(&ev)
        );
        assert!(FieldSelector::parse("spec.nodeName=").unwrap().matches(&ev));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
