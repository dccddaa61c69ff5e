//! Plain HTTP GETs to pods and the operator (their `/metrics`, `/readyz`), with a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::E2eError;

/// Largest body read (a driver's `/metrics` is a few tens of KiB).
const MAX_BODY: usize = 8 << 20;

/// `GET url`; the body of a 2xx answer.
///
/// # Errors
/// [`E2eError::Http`] for connection errors, timeouts, non-2xx answers and oversized bodies.
pub async fn get(url: &str) -> Result<String, E2eError> {
    let fail = |message: String| E2eError::Http {
        url: url.to_string(),
        message,
    };
    let uri: http::Uri = url.parse().map_err(|e| fail(format!("bad URL: {e}")))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY);
    let bytes = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .map_err(|_| fail("timed out reading the body".into()))?
        .map_err(|e| fail(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if !status.is_success() {
        return Err(fail(format!("{status}: {}", text.trim())));
    }
    Ok(text)
}
