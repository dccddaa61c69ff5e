//! The twin's object store: every object as JSON, keyed by group/resource, namespace and name,
//! with one global `resourceVersion` counter and a bounded history of changes for watches.
//!
//! The store knows nothing about Kubernetes semantics beyond `metadata.resourceVersion`: the API
//! layer decides uids, generations, defaults and validation inside [`Store::write`], which runs
//! its closure under the store's lock so a read-modify-write (update with a precondition, patch,
//! apply) is atomic, as etcd's compare-and-swap makes it in a real apiserver.
//!
//! Watches are served from the history: a watch from resourceVersion `N` replays every retained
//! event after `N` and then follows live ones. Once `N` is older than the history (it is bounded,
//! or [`Store::compact`] dropped it), [`Store::watch`] answers [`Gone`], which the API turns into
//! `410 Gone` so clients relist, exactly like an apiserver after etcd compaction.

pub mod selector;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

/// Events kept for watches to resume from (older resourceVersions get `410 Gone`).
pub const DEFAULT_HISTORY: usize = 20_000;
/// Live events buffered per watcher before it is cut off (it then re-watches or relists).
const LIVE_BUFFER: usize = 8_192;

/// A resource type in storage: API group (empty for core) and plural resource name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    /// API group, `""` for the core group.
    pub group: String,
    /// Plural resource name (`pods`, `streambatchapps`).
    pub resource: String,
}

impl GroupResource {
    /// A group/resource pair.
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Removed (the object is its last state, with the deletion's resourceVersion).
    Deleted,
}

impl EventType {
    /// The watch event's `type` on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Which resource.
    pub gr: GroupResource,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// The object after the change (its last state, for deletions).
    pub object: Arc<Value>,
    /// The object before the change (`None` for additions), so a filtered watch can tell
    /// an object that stopped matching (sent as DELETED) from one that never matched.
    pub old: Option<Arc<Value>>,
}

/// What a [`Store::write`] closure decides.
#[derive(Debug)]
pub enum Write {
    /// Store this object (creates or replaces); the store sets `metadata.resourceVersion`.
    Put(Value),
    /// Remove the object.
    Delete,
    /// Change nothing; the answer is the current object.
    Keep,
}

/// The resourceVersion a watch asked for is older than the retained history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too old resource version: {asked} (oldest retained: {oldest})")]
pub struct Gone {
    /// What the client asked for.
    pub asked: u64,
    /// The oldest resourceVersion a watch can still start from.
    pub oldest: u64,
}

/// Key of one object inside a resource.
type ObjectKey = (String, String);

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<GroupResource, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    /// Watches may start from any resourceVersion `>= floor`.
    floor: u64,
}

/// The object store (cheap to clone; clones share state).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    live: broadcast::Sender<Arc<Change>>,
    history_cap: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.resource_version())
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new(DEFAULT_HISTORY)
    }
}

/// A watch's starting point: the current objects (if asked), the events to replay, then the
/// live feed.
#[derive(Debug)]
pub struct WatchStart {
    /// Objects that existed at [`WatchStart::rv`] (only with a `snapshot` request).
    pub initial: Vec<Arc<Value>>,
    /// Retained changes after the requested resourceVersion, oldest first.
    pub replay: Vec<Arc<Change>>,
    /// Live changes; skip those with `rv <=` the last replayed one.
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The store's resourceVersion when the watch started.
    pub rv: u64,
}

impl Store {
    /// An empty store keeping `history_cap` changes for watches.
    pub fn new(history_cap: usize) -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            live,
            history_cap: history_cap.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves maps in a consistent state (every mutation is a
        // single insert/remove), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(gr)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of a resource (in one namespace, or all), sorted by namespace and name, and
    /// the resourceVersion of that snapshot.
    pub fn list(&self, gr: &GroupResource, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let items = match inner.objects.get(gr) {
            None => Vec::new(),
            Some(map) => map
                .iter()
                .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
                .map(|(_, v)| v.clone())
                .collect(),
        };
        (items, inner.rv)
    }

    /// Every resource that has at least one object.
    pub fn resources(&self) -> Vec<GroupResource> {
        self.lock()
            .objects
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(gr, _)| gr.clone())
            .collect()
    }

    /// Atomically reads the object (if any), lets `decide` choose a [`Write`], applies it and
    /// records the change. `decide` gets the next resourceVersion it will be stored with.
    /// Returns the stored object (the deleted one for [`Write::Delete`], `None` if there was
    /// nothing to delete or keep) and whatever `decide` returned beside.
    ///
    /// # Errors
    /// Whatever `decide` returns; nothing is changed then.
    pub fn write<E>(
        &self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
        decide: impl FnOnce(Option<&Value>, u64) -> Result<Write, E>,
    ) -> Result<Option<Arc<Value>>, E> {
        let mut inner = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let current = inner.objects.get(gr).and_then(|m| m.get(&key)).cloned();
        let next_rv = inner.rv + 1;
        let decision = decide(current.as_deref(), next_rv)?;
        let (kind, object) = match decision {
            Write::Keep => return Ok(current),
            Write::Put(mut obj) => {
                set_rv(&mut obj, next_rv);
                let obj = Arc::new(obj);
                inner
                    .objects
                    .entry(gr.clone())
                    .or_default()
                    .insert(key, obj.clone());
                let kind = if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                (kind, obj)
            }
            Write::Delete => {
                let Some(old) = current.clone() else {
                    return Ok(None);
                };
                if let Some(m) = inner.objects.get_mut(gr) {
                    m.remove(&key);
                }
                let mut last = (*old).clone();
                set_rv(&mut last, next_rv);
                (EventType::Deleted, Arc::new(last))
            }
        };
        inner.rv = next_rv;
        let change = Arc::new(Change {
            rv: next_rv,
            kind,
            gr: gr.clone(),
            namespace: namespace.to_string(),
            object: object.clone(),
            old: current,
        });
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.floor = old.rv;
            }
        }
        // Sent under the lock so every watcher sees changes in resourceVersion order.
        let _ = self.live.send(change);
        Ok(Some(object))
    }

    /// Starts a watch after resourceVersion `since` (`None`: from now), with the current objects
    /// of `snapshot` (a resource and optional namespace) taken atomically with the subscription.
    ///
    /// # Errors
    /// [`Gone`] when changes after `since` are no longer retained.
    pub fn watch(
        &self,
        since: Option<u64>,
        snapshot: Option<(&GroupResource, Option<&str>)>,
    ) -> Result<WatchStart, Gone> {
        let inner = self.lock();
        let live = self.live.subscribe();
        let initial = match snapshot {
            None => Vec::new(),
            Some((gr, namespace)) => match inner.objects.get(gr) {
                None => Vec::new(),
                Some(map) => map
                    .iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        };
        let replay = match since {
            None => Vec::new(),
            Some(asked) if asked < inner.floor => {
                return Err(Gone {
                    asked,
                    oldest: inner.floor,
                });
            }
            Some(asked) => {
                // History is sorted by rv: skip what the client has seen.
                let start = inner.history.partition_point(|c| c.rv <= asked);
                inner.history.range(start..).cloned().collect()
            }
        };
        Ok(WatchStart {
            initial,
            replay,
            live,
            rv: inner.rv,
        })
    }

    /// Subscribes to every future change (for in-process controllers such as garbage
    /// collection).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.live.subscribe()
    }

    /// Drops the watch history, as etcd compaction does: watches from any earlier
    /// resourceVersion now get `410 Gone`.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.floor = inner.rv;
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(map) = obj.as_object_mut() {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> GroupResource {
        GroupResource::new("", "pods")
    }

    fn put(store: &Store, name: &str) -> u64 {
        let obj = store
            .write::<()>(&pods(), "ns", name, |_, _| {
                Ok(Write::Put(json!({"metadata": {"name": name}})))
            })
            .unwrap()
            .unwrap();
        obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn writes_bump_one_global_resource_version() {
        let store = Store::default();
        assert_eq!(put(&store, "a"), 1);
        assert_eq!(put(&store, "b"), 2);
        assert_eq!(put(&store, "a"), 3);
        let (items, rv) = store.list(&pods(), Some("ns"));
        assert_eq!((items.len(), rv), (2, 3));
        assert!(store.list(&pods(), Some("other")).0.is_empty());
    }

    #[test]
    fn watch_replays_after_the_asked_version_and_compaction_makes_it_gone() {
        let store = Store::new(2);
        put(&store, "a");
        put(&store, "b");
        put(&store, "c");
        let start = store.watch(Some(1), None).unwrap();
        assert_eq!(
            start.replay.iter().map(|c| c.rv).collect::<Vec<_>>(),
            [2, 3]
        );
        // History holds two changes: rv 1's successor is gone once another write lands.
        put(&store, "d");
        assert_eq!(
            store.watch(Some(1), None).unwrap_err(),
            Gone {
                asked: 1,
                oldest: 2
            }
        );
        store.compact();
        assert!(store.watch(Some(3), None).is_err());
        assert!(store.watch(Some(4), None).unwrap().replay.is_empty());
    }

    #[test]
    fn a_refused_write_changes_nothing() {
        let store = Store::default();
        put(&store, "a");
        let r = store.write(&pods(), "ns", "a", |_, _| Err("conflict"));
        assert_eq!(r.unwrap_err(), "conflict");
        assert_eq!(store.resource_version(), 1);
        let deleted = store
            .write::<()>(&pods(), "ns", "a", |_, _| Ok(Write::Delete))
            .unwrap()
            .unwrap();
        assert_eq!(deleted["metadata"]["resourceVersion"], "2");
        assert!(store.get(&pods(), "ns", "a").is_none());
    }
}
