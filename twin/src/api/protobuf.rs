//! Protobuf request bodies for the few kinds clients send that way: kubectl 1.35's typed
//! `create namespace|configmap|secret|serviceaccount` and Helm (release Secrets, DeleteOptions) use
//! client-go's protobuf encoding (`application/vnd.kubernetes.protobuf`), which the apiserver
//! accepts for built-in kinds. Responses stay JSON (every client accepts it).
//!
//! Hand-written rather than generated bindings (`k8s-pb`): four messages and `ObjectMeta` are
//! all that is needed, and the whole generated API would dominate the crate's build time. Field
//! numbers are those of Kubernetes' `generated.proto` files. Every length read from the wire is
//! checked against the bytes left before it is used.

use serde_json::{Map, Value, json};

use super::error::ApiError;

/// `k8s\0`: the prefix of Kubernetes' protobuf envelope (`runtime.Unknown`).
const MAGIC: &[u8] = b"k8s\0";

/// One decoded field value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

fn bad(what: &str) -> ApiError {
    ApiError::BadRequest(format!("invalid protobuf body: {what}"))
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ApiError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.buf.len())
            .ok_or_else(|| bad("length beyond the body"))?;
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, ApiError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let n = self.varint()?;
                Wire::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            other => return Err(bad(&format!("unsupported wire type {other}"))),
        };
        Ok(Some((key >> 3, wire)))
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ApiError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("a string field is not UTF-8"))
}

/// A `map<string, string>` entry (or `map<string, bytes>` as base64, as JSON carries bytes).
fn map_entry(b: &[u8], bytes: bool) -> Result<(String, Value), ApiError> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => k = text(x)?,
            (2, Wire::Bytes(x)) if bytes => {
                use base64::Engine;
                v = json!(base64::engine::general_purpose::STANDARD.encode(x));
            }
            (2, Wire::Bytes(x)) => v = json!(text(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn insert_map(obj: &mut Map<String, Value>, key: &str, entry: (String, Value)) {
    let m = obj.entry(key).or_insert_with(|| json!({}));
    if let Some(m) = m.as_object_mut() {
        m.insert(entry.0, entry.1);
    }
}

fn push(obj: &mut Map<String, Value>, key: &str, v: Value) {
    let a = obj.entry(key).or_insert_with(|| json!([]));
    if let Some(a) = a.as_array_mut() {
        a.push(v);
    }
}

fn owner_reference(b: &[u8]) -> Result<Value, ApiError> {
    let mut o = Map::new();
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => drop(o.insert("kind".into(), json!(text(x)?))),
            (3, Wire::Bytes(x)) => drop(o.insert("name".into(), json!(text(x)?))),
            (4, Wire::Bytes(x)) => drop(o.insert("uid".into(), json!(text(x)?))),
            (5, Wire::Bytes(x)) => drop(o.insert("apiVersion".into(), json!(text(x)?))),
            (6, Wire::Varint(x)) => drop(o.insert("controller".into(), json!(x != 0))),
            (7, Wire::Varint(x)) => drop(o.insert("blockOwnerDeletion".into(), json!(x != 0))),
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => drop(m.insert("name".into(), json!(text(x)?))),
            (2, Wire::Bytes(x)) => drop(m.insert("generateName".into(), json!(text(x)?))),
            (3, Wire::Bytes(x)) => drop(m.insert("namespace".into(), json!(text(x)?))),
            (6, Wire::Bytes(x)) => drop(m.insert("resourceVersion".into(), json!(text(x)?))),
            (11, Wire::Bytes(x)) => insert_map(&mut m, "labels", map_entry(x, false)?),
            (12, Wire::Bytes(x)) => insert_map(&mut m, "annotations", map_entry(x, false)?),
            (13, Wire::Bytes(x)) => push(&mut m, "ownerReferences", owner_reference(x)?),
            (14, Wire::Bytes(x)) => push(&mut m, "finalizers", json!(text(x)?)),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

/// The message's fields by kind: (field number, JSON name, how to read it).
enum Shape {
    Str,
    Bool,
    Meta,
    StrMap,
    BytesMap,
    /// `NamespaceSpec`: repeated `finalizers` (1).
    Finalizers,
    /// A repeated `LocalObjectReference`/`ObjectReference`: `name` (1 in the former, 3 in the
    /// latter are both read).
    Refs,
}

fn shape(api_version: &str, kind: &str) -> Option<&'static [(u64, &'static str, Shape)]> {
    use Shape::*;
    Some(match (api_version, kind) {
        ("v1", "Secret") => &[
            (1, "metadata", Meta),
            (2, "data", BytesMap),
            (3, "type", Str),
            (4, "stringData", StrMap),
            (5, "immutable", Bool),
        ],
        ("v1", "ConfigMap") => &[
            (1, "metadata", Meta),
            (2, "data", StrMap),
            (3, "binaryData", BytesMap),
            (4, "immutable", Bool),
        ],
        ("v1", "Namespace") => &[(1, "metadata", Meta), (2, "spec", Finalizers)],
        ("v1", "ServiceAccount") => &[
            (1, "metadata", Meta),
            (2, "secrets", Refs),
            (3, "imagePullSecrets", Refs),
            (4, "automountServiceAccountToken", Bool),
        ],
        _ => return None,
    })
}

/// `DeleteOptions` (Helm's uninstall sends them as protobuf).
fn delete_options(raw: &[u8]) -> Result<Value, ApiError> {
    let mut o = Map::new();
    for (n, w) in fields(raw)? {
        match (n, w) {
            // int64 on the wire: two's complement in the varint.
            (1, Wire::Varint(x)) => drop(o.insert("gracePeriodSeconds".into(), json!(x as i64))),
            (2, Wire::Bytes(x)) => {
                let mut p = Map::new();
                for (pn, pw) in fields(x)? {
                    match (pn, pw) {
                        (1, Wire::Bytes(v)) => drop(p.insert("uid".into(), json!(text(v)?))),
                        (2, Wire::Bytes(v)) => {
                            drop(p.insert("resourceVersion".into(), json!(text(v)?)))
                        }
                        _ => {}
                    }
                }
                o.insert("preconditions".into(), Value::Object(p));
            }
            (3, Wire::Varint(x)) => drop(o.insert("orphanDependents".into(), json!(x != 0))),
            (4, Wire::Bytes(x)) => drop(o.insert("propagationPolicy".into(), json!(text(x)?))),
            (5, Wire::Bytes(x)) => push(&mut o, "dryRun", json!(text(x)?)),
            _ => {}
        }
    }
    o.insert("kind".into(), json!("DeleteOptions"));
    Ok(Value::Object(o))
}

/// Decodes a protobuf body (with its `k8s\0` envelope) into the JSON object.
///
/// # Errors
/// `400` for a malformed body; `415` for kinds the twin does not decode (send JSON instead).
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s envelope prefix"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, w) in fields(envelope)? {
        match (n, w) {
            (1, Wire::Bytes(tm)) => {
                for (tn, tw) in fields(tm)? {
                    match (tn, tw) {
                        (1, Wire::Bytes(x)) => api_version = text(x)?,
                        (2, Wire::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    if kind == "DeleteOptions" {
        return delete_options(raw);
    }
    let Some(shape) = shape(&api_version, &kind) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "application/json, application/yaml (protobuf is decoded for v1 Secret, ConfigMap, Namespace and ServiceAccount only, not {api_version} {kind})"
        )));
    };
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    for (n, w) in fields(raw)? {
        let Some((_, name, how)) = shape.iter().find(|(f, _, _)| *f == n) else {
            continue;
        };
        match (how, w) {
            (Shape::Str, Wire::Bytes(x)) => drop(obj.insert((*name).into(), json!(text(x)?))),
            (Shape::Bool, Wire::Varint(x)) => drop(obj.insert((*name).into(), json!(x != 0))),
            (Shape::Meta, Wire::Bytes(x)) => drop(obj.insert((*name).into(), object_meta(x)?)),
            (Shape::StrMap, Wire::Bytes(x)) => insert_map(&mut obj, name, map_entry(x, false)?),
            (Shape::BytesMap, Wire::Bytes(x)) => insert_map(&mut obj, name, map_entry(x, true)?),
            (Shape::Finalizers, Wire::Bytes(x)) => {
                let mut spec = Map::new();
                for (sn, sw) in fields(x)? {
                    if let (1, Wire::Bytes(f)) = (sn, sw) {
                        push(&mut spec, "finalizers", json!(text(f)?));
                    }
                }
                obj.insert((*name).into(), Value::Object(spec));
            }
            (Shape::Refs, Wire::Bytes(x)) => {
                let mut r = Map::new();
                for (rn, rw) in fields(x)? {
                    if let (1 | 3, Wire::Bytes(f)) = (rn, rw) {
                        r.insert("name".into(), json!(text(f)?));
                    }
                }
                push(&mut obj, name, Value::Object(r));
            }
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_secret_and_refuses_truncation_and_unknown_kinds() {
        let meta = [
            field(1, b"sh.helm.release.v1.x.v1"),
            field(11, &[field(1, b"owner"), field(2, b"helm")].concat()),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            field(2, &[field(1, b"release"), field(2, b"\x01\x02")].concat()),
            field(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let tm = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &tm), field(2, &secret)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.x.v1");
        assert_eq!(v["metadata"]["labels"]["owner"], "helm");
        assert_eq!(v["data"]["release"], "AQI=");
        assert_eq!(v["type"], "helm.sh/release.v1");
        assert!(matches!(
            decode(&body[..body.len() - 3]),
            Err(ApiError::BadRequest(_))
        ));
        let pod = [
            MAGIC.to_vec(),
            field(1, &[field(1, b"v1"), field(2, b"Pod")].concat()),
        ]
        .concat();
        assert!(matches!(
            decode(&pod),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
