//! Read-only views of the runtime table: the snapshot for heartbeats and metrics.

use super::Table;
use crate::runtime::types::{RuntimeSnapshot, TaskState, TaskSummary};

impl<H: Clone> Table<H> {
    pub(crate) fn cores(&self) -> usize {
        self.workers.len()
    }

    pub(crate) fn snapshot(&self) -> RuntimeSnapshot {
        let mut snap = RuntimeSnapshot {
            cores: self.cores(),
            ..RuntimeSnapshot::default()
        };
        for (id, e) in &self.entries {
            let holds_core = e.phase.worker().is_some();
            let state = e.phase.public();
            let retained_bytes = e.control.retained_bytes();
            if holds_core {
                snap.running.add(e.kind);
            } else if state == TaskState::Queued {
                snap.queued.add(e.kind);
            } else {
                snap.suspended.add(e.kind);
                snap.suspended_retained_bytes += retained_bytes;
            }
            snap.tasks.push(TaskSummary {
                id: *id,
                attempt: e.attempt,
                kind: e.kind,
                state,
                holds_core,
                records: e.control.progress(),
                retained_bytes,
            });
        }
        snap.tasks.sort_by_key(|t| t.id);
        snap
    }

    #[cfg(test)]
    pub(crate) fn idle_workers(&self) -> usize {
        self.workers.iter().filter(|w| w.is_none()).count()
    }
}
