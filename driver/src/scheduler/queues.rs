//! Task queues: two FIFO lanes (stream, batch), or one shared lane under `fifo`.
//!
//! The lanes hold ids only; a task's spec and state live in the scheduler's task table.

use super::config::Policy;
use neptune_core::ids::{JobId, JobKind, TaskId};
use std::collections::VecDeque;

/// Lane of stream tasks (and of every task under `fifo`).
pub(super) const STREAM_LANE: usize = 0;
/// Lane of batch tasks (unused under `fifo`).
pub(super) const BATCH_LANE: usize = 1;

/// FIFO lanes plus per-kind counts.
#[derive(Debug)]
pub(super) struct Lanes {
    single: bool,
    pub(super) lanes: [VecDeque<(TaskId, JobKind)>; 2],
    queued: [usize; 2],
}

fn kind_index(kind: JobKind) -> usize {
    match kind {
        JobKind::Stream => 0,
        JobKind::Batch => 1,
    }
}

impl Lanes {
    pub(super) fn new(policy: Policy) -> Self {
        Lanes {
            single: policy == Policy::Fifo,
            lanes: [VecDeque::new(), VecDeque::new()],
            queued: [0, 0],
        }
    }

    fn lane_of(&self, kind: JobKind) -> usize {
        if self.single || kind == JobKind::Stream {
            STREAM_LANE
        } else {
            BATCH_LANE
        }
    }

    /// Appends in submission order.
    pub(super) fn push_back(&mut self, id: TaskId, kind: JobKind) {
        let lane = self.lane_of(kind);
        self.lanes[lane].push_back((id, kind));
        self.queued[kind_index(kind)] += 1;
    }

    /// Puts a re-queued task at the head of its lane.
    pub(super) fn push_front(&mut self, id: TaskId, kind: JobKind) {
        let lane = self.lane_of(kind);
        self.lanes[lane].push_front((id, kind));
        self.queued[kind_index(kind)] += 1;
    }

    /// Head of `lane`.
    pub(super) fn front(&self, lane: usize) -> Option<TaskId> {
        self.lanes[lane].front().map(|(id, _)| *id)
    }

    /// Removes the head of `lane`.
    pub(super) fn pop(&mut self, lane: usize) -> Option<TaskId> {
        let (id, kind) = self.lanes[lane].pop_front()?;
        self.queued[kind_index(kind)] -= 1;
        Some(id)
    }

    /// Removes and returns every queued task of `job` (O(queued); cancellation is rare).
    pub(super) fn remove_job(&mut self, job: JobId) -> Vec<TaskId> {
        let mut removed = Vec::new();
        for lane in &mut self.lanes {
            lane.retain(|(id, kind)| {
                let hit = id.job == job;
                if hit {
                    removed.push(*id);
                    self.queued[kind_index(*kind)] -= 1;
                }
                !hit
            });
        }
        removed
    }

    /// Queued tasks of `kind`.
    pub(super) fn queued(&self, kind: JobKind) -> usize {
        self.queued[kind_index(kind)]
    }
}
