//! The pod `log` subresource, reading what the kubelet captured.
//!
//! The contract with the twin's kubelet: a container's output goes to
//! [`log_path`]`(root, namespace, pod, container, false)`, and a restarted container's previous
//! output is moved to the `previous = true` path. `container`, `tailLines`, `limitBytes`,
//! `previous` and `follow` are honoured; a follow ends when the pod is deleted or finished.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::resources::ResourceInfo;
use super::{State, ops};

/// Largest log a request reads back at once (older output is skipped, like a rotated log).
const MAX_READ: u64 = 16 << 20;
/// How often a follow checks the file for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Where the kubelet writes a container's log.
pub fn log_path(root: &Path, ns: &str, pod: &str, container: &str, previous: bool) -> PathBuf {
    let file = if previous {
        format!("{container}.previous.log")
    } else {
        format!("{container}.log")
    };
    root.join(ns).join(pod).join(file)
}

/// Log request parameters.
#[derive(Debug, Clone, Default)]
pub struct LogParams {
    /// `container`.
    pub container: Option<String>,
    /// `follow`.
    pub follow: bool,
    /// `previous`.
    pub previous: bool,
    /// `tailLines`.
    pub tail_lines: Option<usize>,
    /// `limitBytes`.
    pub limit_bytes: Option<u64>,
}

fn finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// Streams a container's log.
///
/// # Errors
/// `404` for a missing pod; `400` for an ambiguous or unknown container, or one that has not
/// started.
pub async fn stream(
    state: Arc<State>,
    info: Arc<ResourceInfo>,
    ns: String,
    pod_name: String,
    params: LogParams,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let pod = ops::get(&state, &info, &ns, &pod_name)?;
    let names: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let container = match (&params.container, names.as_slice()) {
        (Some(c), _) if names.contains(c) => c.clone(),
        (Some(c), _) => {
            return Err(ApiError::BadRequest(format!(
                "container {c} is not valid for pod {pod_name}"
            )));
        }
        (None, [one]) => one.clone(),
        (None, _) => {
            return Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let path = log_path(&state.log_dir, &ns, &pod_name, &container, params.previous);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) if params.previous => {
            return Err(ApiError::BadRequest(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            )));
        }
        Err(_) => {
            return Err(ApiError::BadRequest(format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
            )));
        }
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX_READ);
    let mut head = Vec::new();
    let io = |e: std::io::Error| ApiError::Internal(format!("reading {}: {e}", path.display()));
    file.seek(SeekFrom::Start(start)).await.map_err(io)?;
    (&mut file)
        .take(MAX_READ)
        .read_to_end(&mut head)
        .await
        .map_err(io)?;
    let mut offset = start + head.len() as u64;
    if let Some(n) = params.tail_lines {
        let text = String::from_utf8_lossy(&head);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        head = lines[lines.len().saturating_sub(n)..].concat().into_bytes();
    }
    let mut budget = params.limit_bytes.unwrap_or(u64::MAX);
    head.truncate(budget.min(head.len() as u64) as usize);
    budget -= head.len() as u64;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        if !head.is_empty() && tx.send(Bytes::from(head)).await.is_err() {
            return;
        }
        if !params.follow {
            return;
        }
        loop {
            let pod = state.store.get(&info.storage, &ns, &pod_name);
            let done = pod.as_deref().is_none_or(finished);
            let mut more = Vec::new();
            if file.seek(SeekFrom::Start(offset)).await.is_ok() {
                let _ = (&mut file)
                    .take(budget.min(MAX_READ))
                    .read_to_end(&mut more)
                    .await;
            }
            offset += more.len() as u64;
            budget -= more.len() as u64;
            if !more.is_empty() && tx.send(Bytes::from(more)).await.is_err() {
                return;
            }
            if done || budget == 0 {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(rx)
}
