//! Label and annotation edits on running pods: the spec hash leaves metadata out (a pod keeps
//! running when only its labels change), so the lifecycle patches the difference in place.
//!
//! Keys the spec sets are recorded on each pod (`neptune.dev/user-metadata`), so a key removed
//! from the spec is deleted from the pod while keys others added (`kubectl label`, admission
//! webhooks) stay. A JSON merge patch of `metadata` never touches the pod spec, unlike a
//! server-side apply of a partial pod, which would drop the fields it no longer lists.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use neptune_crds::labels as l;
use serde_json::{Map, Value, json};

use crate::build::recorded_user_metadata;

/// Labels and annotations to set (`Some`) or remove (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataPatch {
    /// Label changes.
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotation changes.
    pub annotations: BTreeMap<String, Option<String>>,
}

impl MetadataPatch {
    /// The JSON merge patch (`null` removes a key).
    pub fn to_json(&self) -> Value {
        let map = |m: &BTreeMap<String, Option<String>>| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect::<Map<_, _>>()
        };
        json!({"metadata": {"labels": map(&self.labels), "annotations": map(&self.annotations)}})
    }

    /// Keys changed, for messages.
    pub fn keys(&self) -> Vec<&str> {
        self.labels
            .keys()
            .chain(self.annotations.keys())
            .map(String::as_str)
            .filter(|k| *k != l::USER_METADATA)
            .collect()
    }
}

/// What turns `existing`'s spec-set labels and annotations into `desired`'s, if anything.
pub fn diff(desired: &Pod, existing: &Pod) -> Option<MetadataPatch> {
    let (want_labels, want_annotations) = recorded_user_metadata(desired);
    let (had_labels, had_annotations) = recorded_user_metadata(existing);
    let empty = BTreeMap::new();
    let get = |p: &'_ Pod, labels: bool| -> BTreeMap<String, String> {
        let m = if labels {
            p.metadata.labels.as_ref()
        } else {
            p.metadata.annotations.as_ref()
        };
        m.unwrap_or(&empty).clone()
    };
    let mut patch = MetadataPatch::default();
    for (labels, want, had, out) in [
        (true, &want_labels, &had_labels, &mut patch.labels),
        (
            false,
            &want_annotations,
            &had_annotations,
            &mut patch.annotations,
        ),
    ] {
        let (d, e) = (get(desired, labels), get(existing, labels));
        for k in want {
            if d.get(k) != e.get(k) {
                out.insert(k.clone(), d.get(k).cloned());
            }
        }
        for k in had.difference(want) {
            if e.contains_key(k) {
                out.insert(k.clone(), None);
            }
        }
    }
    if patch.labels.is_empty() && patch.annotations.is_empty() {
        return None;
    }
    let recorded = desired
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(l::USER_METADATA))
        .cloned();
    patch
        .annotations
        .insert(l::USER_METADATA.to_string(), recorded);
    Some(patch)
}
