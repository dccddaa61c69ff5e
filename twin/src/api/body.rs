//! Request bodies and query strings: percent-decoding, the accepted media types (JSON, YAML,
//! and protobuf for the kinds [`super::protobuf`] decodes) and decoding into JSON.

use bytes::Bytes;
use serde_json::Value;

use super::error::ApiError;

/// Percent-decoding of a query component (`+` is a space).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (c, None) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Refuses bodies that are neither JSON, YAML nor protobuf (CBOR) with `415`.
pub fn check_content_type(content_type: &str, body: &Bytes) -> Result<(), ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let known =
        media.is_empty() || media.contains("json") || media.contains("yaml") || media == PROTOBUF;
    if body.is_empty() || known {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "application/json, application/yaml, application/vnd.kubernetes.protobuf, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json, application/apply-patch+yaml".into(),
        ))
    }
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// A create or update body in any accepted encoding.
pub fn decode_body(body: &Bytes, content_type: &str) -> Result<Value, ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == PROTOBUF {
        return super::protobuf::decode(body);
    }
    parse_body(body, media.contains("yaml"))
}

/// A JSON (or YAML) body.
pub fn parse_body(body: &Bytes, yaml: bool) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    if yaml {
        serde_yaml::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("error decoding JSON: {e}")))
    }
}
