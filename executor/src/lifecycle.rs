//! Task-life tracing: one span per task attempt on this executor, from its launch to its end, and
//! an event at each step — launch received, waiting for its preemption victim, suspended, resumed,
//! finished — visible with `RUST_LOG=neptune_executor::lifecycle=debug`, e.g.
//! `session{executor=exec-0 session=1}:task{task=j0.r3.s0.p1 attempt=0 kind="batch"}:
//! neptune_executor::lifecycle: suspended latency_us=27 phase="compute"`. A task's span is a
//! child of the executor's session span (the session's tokio task creates it).
//!
//! The spans are never *entered*. Task code runs on `may` coroutines, which can park on one
//! worker thread and resume on another, while tracing keeps the current span on a thread-local
//! stack (may hazard 3, `runtime` module docs): a span entered in a coroutine would be left on
//! the wrong thread. Every event here names its span as an explicit `parent:` and is emitted
//! from the session's tokio task, which sees every launch and every runtime event anyway.

use crate::runtime::{RuntimeEvent, TaskOutcome};
use neptune_core::ids::{JobKind, TaskId};
use std::collections::HashMap;
use tracing::{Span, debug, debug_span};

/// The spans of the task attempts alive on this executor.
#[derive(Default)]
pub(crate) struct Lifecycle {
    spans: HashMap<(TaskId, u32), Span>,
}

impl Lifecycle {
    /// A launch of `id`'s `attempt` arrived; `victim`: the task it preempts (`kill`: by killing).
    pub fn launched(
        &mut self,
        id: TaskId,
        attempt: u32,
        kind: JobKind,
        victim: Option<(TaskId, bool)>,
    ) {
        let span = debug_span!("task", task = %id, attempt, kind = kind.as_str());
        match victim {
            Some((v, kill)) => {
                let how = if kill { "kill" } else { "suspend" };
                debug!(parent: &span, victim = %v, how, "launch received; preempting");
            }
            None => debug!(parent: &span, "launch received"),
        }
        self.spans.insert((id, attempt), span);
    }

    /// The task's launch waits for its preemption victim to free a core.
    pub fn waiting(&self, id: TaskId, attempt: u32, victim: TaskId) {
        if let Some(span) = self.spans.get(&(id, attempt)) {
            debug!(parent: span, victim = %victim, "waiting for the victim's core");
        }
    }

    /// The task could not start (bad parameters, unknown task): its span ends here.
    pub fn refused(&mut self, id: TaskId, attempt: u32, reason: &str) {
        if let Some(span) = self.spans.remove(&(id, attempt)) {
            debug!(parent: &span, reason, "launch refused");
        }
    }

    /// Record a runtime event in its task's span; a finished task's span ends.
    pub fn event(&mut self, ev: &RuntimeEvent) {
        match ev {
            RuntimeEvent::Suspended {
                id,
                attempt,
                latency,
                phase,
            } => {
                if let Some(span) = self.spans.get(&(*id, *attempt)) {
                    let latency_us = latency.as_micros();
                    debug!(parent: span, latency_us, phase = phase.as_str(), "suspended");
                }
            }
            RuntimeEvent::Resumed {
                id,
                attempt,
                latency,
            } => {
                if let Some(span) = self.spans.get(&(*id, *attempt)) {
                    debug!(parent: span, latency_us = latency.as_micros(), "resumed");
                }
            }
            RuntimeEvent::Finished {
                id,
                attempt,
                outcome,
                records,
                elapsed,
                timing,
                ..
            } => {
                if let Some(span) = self.spans.remove(&(*id, *attempt)) {
                    let outcome = match outcome {
                        TaskOutcome::Succeeded(_) => "succeeded",
                        TaskOutcome::Failed(_) => "failed",
                        TaskOutcome::Killed => "killed",
                    };
                    debug!(
                        parent: &span,
                        outcome,
                        records,
                        elapsed_ms = elapsed.as_millis(),
                        queued_us = timing.queued.as_micros(),
                        "finished"
                    );
                }
            }
        }
    }

    /// Spans alive (tasks launched and not finished here).
    #[cfg(test)]
    pub fn alive(&self) -> usize {
        self.spans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::TaskTiming;
    use std::time::Duration;

    fn task(p: u32) -> TaskId {
        TaskId {
            job: 0,
            run: 0,
            stage: 0,
            partition: p,
        }
    }

    #[test]
    fn a_span_lives_from_launch_to_finish_of_its_attempt() {
        let mut l = Lifecycle::default();
        l.launched(task(1), 0, JobKind::Batch, None);
        l.launched(task(2), 0, JobKind::Stream, Some((task(1), false)));
        l.waiting(task(2), 0, task(1));
        l.event(&RuntimeEvent::Suspended {
            id: task(1),
            attempt: 0,
            latency: Duration::from_micros(20),
            phase: neptune_core::task::TaskPhase::Compute,
        });
        assert_eq!(l.alive(), 2);
        // Another attempt's end does not end this attempt's span.
        l.event(&finished(task(1), 1));
        assert_eq!(l.alive(), 2);
        l.event(&finished(task(2), 0));
        l.refused(task(1), 0, "gone");
        assert_eq!(l.alive(), 0);
    }

    fn finished(id: TaskId, attempt: u32) -> RuntimeEvent {
        RuntimeEvent::Finished {
            id,
            attempt,
            outcome: TaskOutcome::Killed,
            records: 0,
            skipped: 0,
            fetch_failed: None,
            event_times: None,
            elapsed: Duration::ZERO,
            timing: TaskTiming::default(),
        }
    }
}
