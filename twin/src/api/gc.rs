//! The garbage collector and namespace finalizer, as controllers inside the twin: after every
//! change it sweeps the store once and
//! - deletes objects whose every owner (by `ownerReferences[].uid`) is gone (background
//!   cascade), and drops references to gone owners from objects that keep another owner;
//! - deletes the dependents of an owner deleted in the foreground, and removes the owner's
//!   `foregroundDeletion` finalizer once none is left (so `kubectl delete --cascade=foreground`
//!   returns when the tree is gone);
//! - empties a namespace being deleted, then removes it.
//!
//! A sweep only writes what needs changing, so the writes it makes converge. Deletions go through
//! [`ops::delete`], so pods bound to a node still wait for their kubelet.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::ops::{self, DeleteOpts, WriteOpts};
use super::{State, meta};
use crate::store::{GroupResource, Write};

const MANAGER: &str = "generic-garbage-collector";

/// Runs the collector (and the workload controller) until the store is dropped.
pub fn spawn(state: Arc<State>) -> tokio::task::JoinHandle<()> {
    let mut rx = state.store.subscribe();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    // Coalesce a burst of changes into one sweep.
                    while rx.try_recv().is_ok() {}
                    sweep(&state);
                    super::workloads::reconcile(&state);
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(String::from))
        .collect()
}

fn delete(state: &State, gr: &GroupResource, obj: &Value, propagation: &str) {
    let ns = meta::meta_str(obj, "namespace").unwrap_or_default();
    let name = meta::meta_str(obj, "name").unwrap_or_default();
    match state.resources.serving(gr).into_iter().next() {
        Some(info) => {
            let opts = DeleteOpts {
                propagation: Some(propagation.into()),
                uid: meta::uid_of(obj).map(String::from),
                ..Default::default()
            };
            if let Err(e) = ops::delete(state, &info, ns, name, &opts) {
                tracing::debug!("gc: deleting {gr} {ns}/{name}: {e}");
            }
        }
        None => {
            let _ = state
                .store
                .write::<()>(gr, ns, name, |_, _| Ok(Write::Delete));
        }
    }
}

fn rewrite(state: &State, gr: &GroupResource, obj: Value) {
    let ns = meta::meta_str(&obj, "namespace")
        .unwrap_or_default()
        .to_string();
    let name = meta::meta_str(&obj, "name").unwrap_or_default().to_string();
    if let Some(info) = state.resources.serving(gr).into_iter().next() {
        let opts = WriteOpts {
            manager: MANAGER.into(),
            ..Default::default()
        };
        if let Err(e) = ops::update(state, &info, &ns, &name, "", obj, &opts) {
            tracing::debug!("gc: updating {gr} {ns}/{name}: {e}");
        }
    }
}

/// One pass over the store.
pub fn sweep(state: &State) {
    let mut all: Vec<(GroupResource, Arc<Value>)> = Vec::new();
    for gr in state.store.resources() {
        let (objs, _) = state.store.list(&gr, None);
        all.extend(objs.into_iter().map(|o| (gr.clone(), o)));
    }
    let by_uid: HashMap<&str, &Value> = all
        .iter()
        .filter_map(|(_, o)| meta::uid_of(o).map(|u| (u, o.as_ref())))
        .collect();
    let foreground = |o: &Value| {
        meta::meta_str(o, "deletionTimestamp").is_some()
            && meta::finalizers(o)
                .iter()
                .any(|f| f == "foregroundDeletion")
    };
    let mut referenced: HashSet<String> = HashSet::new();
    for (gr, obj) in &all {
        let owners = owner_uids(obj);
        if owners.is_empty() {
            continue;
        }
        let live: Vec<&String> = owners
            .iter()
            .filter(|u| by_uid.contains_key(u.as_str()))
            .collect();
        // An owner being orphaned keeps its dependents.
        if live.iter().any(|u| {
            meta::finalizers(by_uid[u.as_str()])
                .iter()
                .any(|f| f == "orphan")
        }) {
            continue;
        }
        referenced.extend(live.iter().map(|u| u.to_string()));
        if live.is_empty() {
            delete(state, gr, obj, "Background");
        } else if live.len() < owners.len() {
            let mut o = (**obj).clone();
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str().is_some_and(|u| by_uid.contains_key(u)));
            }
            rewrite(state, gr, o);
        } else if live.iter().any(|u| foreground(by_uid[u.as_str()]))
            && meta::meta_str(obj, "deletionTimestamp").is_none()
        {
            delete(state, gr, obj, "Foreground");
        }
    }
    for (gr, obj) in &all {
        let orphaning = meta::meta_str(obj, "deletionTimestamp").is_some()
            && meta::finalizers(obj).iter().any(|f| f == "orphan");
        if orphaning && let Some(uid) = meta::uid_of(obj) {
            orphan(state, uid);
            let mut o = (**obj).clone();
            let rest: Vec<String> = meta::finalizers(obj)
                .into_iter()
                .filter(|f| f != "orphan")
                .collect();
            meta::meta_mut(&mut o).insert("finalizers".into(), json!(rest));
            rewrite(state, gr, o);
            continue;
        }
        if foreground(obj) && !meta::uid_of(obj).is_some_and(|u| referenced.contains(u)) {
            let mut o = (**obj).clone();
            let rest: Vec<String> = meta::finalizers(obj)
                .into_iter()
                .filter(|f| f != "foregroundDeletion")
                .collect();
            meta::meta_mut(&mut o).insert("finalizers".into(), json!(rest));
            rewrite(state, gr, o);
        }
    }
    let namespaces = GroupResource::new("", "namespaces");
    for (gr, ns_obj) in all.iter().filter(|(gr, _)| *gr == namespaces) {
        if meta::meta_str(ns_obj, "deletionTimestamp").is_none() {
            continue;
        }
        let ns = meta::meta_str(ns_obj, "name").unwrap_or_default();
        let contents: Vec<&(GroupResource, Arc<Value>)> = all
            .iter()
            .filter(|(_, o)| meta::meta_str(o, "namespace") == Some(ns))
            .collect();
        if contents.is_empty() && meta::finalizers(ns_obj).is_empty() {
            let _ = state
                .store
                .write::<()>(gr, "", ns, |_, _| Ok(Write::Delete));
        }
        for (cgr, o) in contents {
            if meta::meta_str(o, "deletionTimestamp").is_none() {
                delete(state, cgr, o, "Background");
            }
        }
    }
}

/// Removes references to `uid` from its dependents (`propagationPolicy=Orphan`).
fn orphan(state: &State, uid: &str) {
    for gr in state.store.resources() {
        let (objs, _) = state.store.list(&gr, None);
        for obj in objs {
            if owner_uids(&obj).iter().any(|u| u == uid) {
                let mut o = (*obj).clone();
                if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"].as_str() != Some(uid));
                }
                rewrite(state, &gr, o);
            }
        }
    }
}
