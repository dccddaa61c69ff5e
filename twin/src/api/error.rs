//! API errors as the apiserver reports them: a `metav1.Status` body with code, reason, message
//! and, for `422 Invalid`, one cause per bad field (`kubectl` prints those field by field).

use serde_json::{Value, json};

/// One invalid field, as a `Status` cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// Field path (`spec.executor.cores`).
    pub field: String,
    /// What is wrong, without the field (`Invalid value: 0: must be ...`).
    pub message: String,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A failed API request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the resource type or the object does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// `pods`, `streambatchapps.neptune.dev`.
        resource: String,
        /// Object name (empty for an unknown path).
        name: String,
    },
    /// 405.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406.
    #[error("{0}")]
    NotAcceptable(String),
    /// 409 on create.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Resource.
        resource: String,
        /// Name.
        name: String,
    },
    /// 409: a resourceVersion or uid precondition failed, or apply conflicts.
    #[error("{0}")]
    Conflict(String),
    /// 410: the watch's resourceVersion is compacted away.
    #[error("too old resource version: {0}")]
    Gone(String),
    /// 415.
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// 422.
    #[error("{kind} \"{name}\" is invalid: {}", render_causes(.causes))]
    Invalid {
        /// `StreamBatchApp.neptune.dev`.
        kind: String,
        /// Object name.
        name: String,
        /// Each bad field.
        causes: Vec<Cause>,
    },
    /// 413.
    #[error("request entity too large: limit is {0} bytes")]
    TooLarge(usize),
    /// 500.
    #[error("internal error: {0}")]
    Internal(String),
}

fn render_causes(causes: &[Cause]) -> String {
    match causes {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(Cause::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl ApiError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound { .. } => 404,
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable(_) => 406,
            Self::AlreadyExists { .. } | Self::Conflict(_) => 409,
            Self::Gone(_) => 410,
            Self::TooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Invalid { .. } => 422,
            Self::Internal(_) => 500,
        }
    }

    /// `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound { .. } => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotAcceptable(_) => "NotAcceptable",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict(_) => "Conflict",
            Self::Gone(_) => "Expired",
            Self::TooLarge(_) => "RequestEntityTooLarge",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Invalid { .. } => "Invalid",
            Self::Internal(_) => "InternalError",
        }
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        let mut details = serde_json::Map::new();
        match self {
            Self::NotFound { resource, name } | Self::AlreadyExists { resource, name } => {
                let (kind, group) = resource.split_once('.').unwrap_or((resource, ""));
                details.insert("name".into(), json!(name));
                details.insert("group".into(), json!(group));
                details.insert("kind".into(), json!(kind));
            }
            Self::Invalid { kind, name, causes } => {
                let (k, group) = kind.split_once('.').unwrap_or((kind, ""));
                details.insert("name".into(), json!(name));
                details.insert("group".into(), json!(group));
                details.insert("kind".into(), json!(k));
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            _ => {}
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }

    /// `404` for an object.
    pub fn not_found(resource: impl ToString, name: &str) -> Self {
        Self::NotFound {
            resource: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// `422` with one cause.
    pub fn invalid_field(kind: &str, name: &str, field: &str, message: String) -> Self {
        Self::Invalid {
            kind: kind.to_string(),
            name: name.to_string(),
            causes: vec![Cause {
                reason: "FieldValueInvalid",
                field: field.to_string(),
                message,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_status_lists_every_cause_with_its_field() {
        let e = ApiError::Invalid {
            kind: "StreamBatchApp.neptune.dev".into(),
            name: "demo".into(),
            causes: vec![
                Cause {
                    reason: "FieldValueInvalid",
                    field: "spec.image".into(),
                    message: "Invalid value: \"\": too short".into(),
                },
                Cause {
                    reason: "FieldValueRequired",
                    field: "spec.app".into(),
                    message: "Required value".into(),
                },
            ],
        };
        let s = e.status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][1]["field"], "spec.app");
        assert_eq!(
            s["message"],
            "StreamBatchApp.neptune.dev \"demo\" is invalid: [spec.image: Invalid value: \"\": too short, spec.app: Required value]"
        );
        assert_eq!(s["details"]["group"], "neptune.dev");
    }
}
