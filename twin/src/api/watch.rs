//! Watches: a stream of `{"type": ..., "object": ...}` lines.
//!
//! - `resourceVersion` unset or `0`: synthetic ADDED events for the current objects, then live
//!   changes; `N`: every retained change after `N`, then live ones; `N` older than the history:
//!   one ERROR event carrying `410 Expired`, as the apiserver answers after compaction.
//! - `sendInitialEvents=true` (streaming lists): the current objects, then a BOOKMARK annotated
//!   `k8s.io/initial-events-end`.
//! - `allowWatchBookmarks=true`: a BOOKMARK with the latest resourceVersion every few seconds.
//! - label and field selectors filter; an object that stops matching is sent as DELETED and one
//!   that starts matching as ADDED, as the apiserver's watch cache does.
//! - `timeoutSeconds` ends the stream; a client too slow for the live buffer is cut off and
//!   re-watches from its last resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::convert;
use super::error::ApiError;
use super::resources::ResourceInfo;
use crate::store::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType, Store};

/// How often a bookmark is sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// A watch request.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// `resourceVersion` (empty = unset).
    pub resource_version: String,
    /// Namespace, or all.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
}

/// Turns an object (in the request's version) into what the client asked for (plain, Table,
/// metadata only).
pub type Render = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Starts a watch; its lines arrive on the returned channel until it ends.
///
/// # Errors
/// `400` for a resourceVersion that is not a number.
pub fn start(
    store: &Store,
    info: Arc<ResourceInfo>,
    params: WatchParams,
    render: Render,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let rv = params.resource_version.as_str();
    let since = match rv {
        "" | "0" => None,
        n => Some(n.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!("invalid resourceVersion {n:?}: not a number"))
        })?),
    };
    let initial_events = since.is_none() || params.send_initial;
    let snapshot = initial_events.then_some((&info.storage, params.namespace.as_deref()));
    let (tx, rx) = mpsc::channel(256);
    let start = match store.watch(since, snapshot) {
        Ok(s) => s,
        Err(gone) => {
            let status = ApiError::Gone(format!("{} ({})", gone.asked, gone.oldest)).status();
            let _ = tx.try_send(line("ERROR", status));
            return Ok(rx);
        }
    };
    let matches = {
        let p = params.clone();
        let storage = info.storage.clone();
        move |c: &Change, obj: &Value| {
            c.gr == storage
                && p.namespace.as_deref().is_none_or(|ns| ns == c.namespace)
                && p.labels.matches(obj)
                && p.fields.matches(obj)
        }
    };
    tokio::spawn(async move {
        let send = |kind: &str, obj: &Value| line(kind, render(&convert::from_storage(&info, obj)));
        let bookmark = |rv: u64, initial_end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                "BOOKMARK",
                json!({"apiVersion": info.api_version(), "kind": info.kind, "metadata": meta}),
            )
        };
        for obj in &start.initial {
            let probe = Change {
                rv: start.rv,
                kind: EventType::Added,
                gr: info.storage.clone(),
                namespace: obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                object: obj.clone(),
                old: None,
            };
            if matches(&probe, obj) && tx.send(send("ADDED", obj)).await.is_err() {
                return;
            }
        }
        if params.send_initial
            && params.bookmarks
            && tx.send(bookmark(start.rv, true)).await.is_err()
        {
            return;
        }
        let mut progress = since.unwrap_or(start.rv);
        let emit = |c: &Change| -> Option<Bytes> {
            let now = matches(c, &c.object);
            let before = c.old.as_ref().is_some_and(|o| matches(c, o));
            let kind = match (c.kind, before, now) {
                (EventType::Deleted, _, true) => "DELETED",
                (EventType::Added, _, true) => "ADDED",
                (EventType::Modified, true, true) => "MODIFIED",
                (EventType::Modified, false, true) => "ADDED",
                (EventType::Modified, true, false) => "DELETED",
                _ => return None,
            };
            Some(send(kind, &c.object))
        };
        for c in &start.replay {
            progress = c.rv;
            if let Some(l) = emit(c)
                && tx.send(l).await.is_err()
            {
                return;
            }
        }
        progress = progress.max(start.rv);
        let mut live = start.live;
        let deadline = tokio::time::sleep(params.timeout);
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval(BOOKMARK_EVERY);
        ticks.tick().await;
        loop {
            tokio::select! {
                r = live.recv() => match r {
                    Ok(c) => {
                        if c.rv <= progress {
                            continue;
                        }
                        progress = c.rv;
                        if let Some(l) = emit(&c)
                            && tx.send(l).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticks.tick(), if params.bookmarks => {
                    if tx.send(bookmark(progress, false)).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(rx)
}
