//! A cap on a server's concurrent connections that prefers working connections over idle ones.
//!
//! Every accepted connection takes a [`Slot`]. A slot is *evictable* while its connection does
//! nothing useful: before its TLS handshake completes (so before its peer is authenticated) or
//! while it waits for a next request. When the server is full, a new connection evicts the
//! oldest evictable one (its task sees [`Slot::evicted`] and closes it); only when every
//! connection is busy is the new one refused. So idle connections, however many, cannot lock a
//! legitimate peer out, and descriptors stay bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
struct SlotState {
    evictable: AtomicBool,
    evicted: AtomicBool,
    notify: Notify,
}

struct Inner {
    next: u64,
    /// Live slots by admission order (oldest first).
    live: BTreeMap<u64, Arc<SlotState>>,
}

/// The cap of one server.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Mutex<Inner>>,
    cap: usize,
    open: prometheus::IntGauge,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("cap", &self.cap)
            .field("open", &self.len())
            .finish()
    }
}

/// What [`Gate::admit`] decided.
#[derive(Debug)]
pub enum Admit {
    /// Room was free.
    Admitted(Slot),
    /// Room was made by evicting an idle connection.
    Evicted(Slot),
    /// Full of busy connections: refuse this one.
    Full,
}

impl Gate {
    /// A gate admitting at most `cap` connections, counted in `open`.
    pub fn new(cap: usize, open: prometheus::IntGauge) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                next: 0,
                live: BTreeMap::new(),
            })),
            cap: cap.max(1),
            open,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections admitted and not yet closed.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admit a new connection, evicting the oldest evictable one if full. New slots start
    /// evictable (nothing authenticated or requested yet).
    pub fn admit(&self) -> Admit {
        let mut inner = self.lock();
        let mut evicted = false;
        if inner.live.len() >= self.cap {
            let victim = inner
                .live
                .iter()
                .find(|(_, s)| s.evictable.load(Ordering::Acquire))
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                return Admit::Full;
            };
            if let Some(s) = inner.live.remove(&victim) {
                s.evicted.store(true, Ordering::Release);
                // `notify_one` keeps a permit, so a task not yet waiting still sees it.
                s.notify.notify_one();
                self.open.dec();
            }
            evicted = true;
        }
        let id = inner.next;
        inner.next += 1;
        let state = Arc::new(SlotState {
            evictable: AtomicBool::new(true),
            ..SlotState::default()
        });
        inner.live.insert(id, state.clone());
        self.open.inc();
        let slot = Slot {
            id,
            state,
            gate: self.clone(),
        };
        if evicted {
            Admit::Evicted(slot)
        } else {
            Admit::Admitted(slot)
        }
    }
}

/// One admitted connection's place; dropping it frees the place.
pub struct Slot {
    id: u64,
    state: Arc<SlotState>,
    gate: Gate,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("id", &self.id).finish()
    }
}

impl Slot {
    /// A handle on this slot's idle flag and eviction signal that borrows nothing (to select on
    /// eviction while the connection itself is borrowed for I/O).
    pub fn handle(&self) -> SlotHandle {
        SlotHandle(self.state.clone())
    }

    /// Mark the connection idle (may be evicted) or busy (may not).
    pub fn set_evictable(&self, idle: bool) {
        self.handle().set_evictable(idle);
    }

    /// Whether the connection was evicted.
    pub fn is_evicted(&self) -> bool {
        self.handle().is_evicted()
    }

    /// Resolves once the connection has been evicted (close it then).
    pub async fn evicted(&self) {
        self.handle().evicted().await;
    }
}

/// See [`Slot::handle`].
#[derive(Clone)]
pub struct SlotHandle(Arc<SlotState>);

impl std::fmt::Debug for SlotHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotHandle")
    }
}

impl SlotHandle {
    /// Mark the connection idle (may be evicted) or busy (may not).
    pub fn set_evictable(&self, idle: bool) {
        self.0.evictable.store(idle, Ordering::Release);
    }

    /// Whether the connection was evicted.
    pub fn is_evicted(&self) -> bool {
        self.0.evicted.load(Ordering::Acquire)
    }

    /// Resolves once the connection has been evicted.
    pub async fn evicted(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_evicted() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.gate.lock().live.remove(&self.id).is_some() {
            self.gate.open.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(cap: usize) -> Gate {
        Gate::new(
            cap,
            prometheus::IntGauge::new("open", "open connections").unwrap(),
        )
    }

    #[tokio::test]
    async fn a_full_gate_evicts_the_oldest_idle_connection_and_refuses_when_all_are_busy() {
        let g = gate(2);
        let Admit::Admitted(a) = g.admit() else {
            panic!("room")
        };
        let Admit::Admitted(b) = g.admit() else {
            panic!("room")
        };
        a.set_evictable(false);
        // b is the only idle one: evicted, although a is older.
        let Admit::Evicted(c) = g.admit() else {
            panic!("evict")
        };
        b.evicted().await;
        assert!(b.is_evicted() && !a.is_evicted());
        assert_eq!(g.len(), 2);
        c.set_evictable(false);
        assert!(matches!(g.admit(), Admit::Full));
        drop(b); // already gone from the gate: frees nothing more
        assert_eq!(g.len(), 2);
        drop(a);
        assert_eq!(g.len(), 1);
        assert!(matches!(g.admit(), Admit::Admitted(_)));
        assert_eq!(g.open.get(), 1, "the dropped admission freed its place");
    }
}
