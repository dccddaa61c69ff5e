//! Dispatch: after every event, each policy fills the free slots from its queues (and, under
//! `neptune` and `kill`, preempts batch tasks for stream tasks when the cluster is full).

use super::config::Policy;
use super::executors::{BATCH_POOL, BATCH_SLOTS, STREAM_POOL, Seq};
use super::protocol::{Command, Preempt, PreemptHow};
use super::queues::{BATCH_LANE, STREAM_LANE};
use super::{Scheduler, TaskState};
use neptune_core::ids::TaskId;
use std::cmp::Reverse;
use std::time::Duration;

impl Scheduler {
    pub(super) fn dispatch(&mut self, now: Duration, out: &mut Vec<Command>) {
        match self.cfg.policy {
            Policy::Neptune | Policy::Kill => {
                self.place_stream_preempting(now, out);
                self.resume_suspended(now, out);
                // Batch work takes the slots the SLO guard (if on) does not hold back.
                self.place_lane(now, BATCH_LANE, BATCH_SLOTS, out);
            }
            Policy::Fifo => self.place_lane(now, STREAM_LANE, STREAM_POOL, out),
            Policy::Static => {
                self.place_lane(now, STREAM_LANE, STREAM_POOL, out);
                self.place_lane(now, BATCH_LANE, BATCH_POOL, out);
            }
            Policy::Fair => self.place_fair(now, out),
        }
    }

    /// Places the head of `lane` on free slots of `pool` until the lane is empty or the pool full.
    fn place_lane(&mut self, now: Duration, lane: usize, pool: usize, out: &mut Vec<Command>) {
        while let Some(id) = self.lanes.front(lane) {
            let spec = &self.tasks[&id].spec;
            let Some(seq) = self.execs.pick_free(self.cfg.placement, spec, pool) else {
                break;
            };
            self.lanes.pop(lane);
            self.launch(now, id, seq, None, out);
        }
    }

    /// Stream lane under a preempting policy: a free slot if any, else a victim.
    fn place_stream_preempting(&mut self, now: Duration, out: &mut Vec<Command>) {
        let Some(how) = super::config::preemption(self.cfg.policy) else {
            return;
        };
        while let Some(id) = self.lanes.front(STREAM_LANE) {
            // Acting ahead: the job's reserved slots first; one still held by a task being
            // suspended for it is taken over (no other batch task is preempted for it).
            match self.reserved_for(id) {
                Some(Ok(seq)) => {
                    self.lanes.pop(STREAM_LANE);
                    self.launch(now, id, seq, None, out);
                    continue;
                }
                Some(Err((seq, victim))) if how == PreemptHow::Suspend => {
                    self.lanes.pop(STREAM_LANE);
                    self.launch(now, id, seq, Some((victim, how)), out);
                    continue;
                }
                _ => {}
            }
            let spec = &self.tasks[&id].spec;
            if let Some(seq) = self.execs.pick_free(self.cfg.placement, spec, STREAM_POOL) {
                self.lanes.pop(STREAM_LANE);
                self.launch(now, id, seq, None, out);
                continue;
            }
            let tasks = &self.tasks;
            let victim_key = |t: TaskId| {
                let e = &tasks[&t];
                (e.preemptions, Reverse(e.started_at))
            };
            let Some((seq, victim)) = self.execs.pick_victim(self.cfg.placement, spec, victim_key)
            else {
                break;
            };
            self.lanes.pop(STREAM_LANE);
            self.launch(now, id, seq, Some((victim, how)), out);
        }
        self.end_launched_reservations();
    }

    /// Resumes suspended tasks on their own executors while those have free slots.
    fn resume_suspended(&mut self, now: Duration, out: &mut Vec<Command>) {
        while let Some(&seq) = self.execs.resumable.first() {
            let e = self.execs.get(seq);
            let Some((_, &id)) = e.suspended.first_key_value() else {
                break;
            };
            let executor = e.name.clone();
            let entry = self.tasks.get_mut(&id).expect("suspended task is known");
            entry.resume_pending = true;
            entry.started_at = now;
            self.relocate(id, TaskState::Running { exec: seq });
            out.push(Command::Resume { task: id, executor });
        }
    }

    /// `fair`: next from the pool with the smallest running/weight (ties: stream).
    fn place_fair(&mut self, now: Duration, out: &mut Vec<Command>) {
        let w = self.cfg.fair_weights;
        loop {
            let lane = match (self.lanes.front(STREAM_LANE), self.lanes.front(BATCH_LANE)) {
                (None, None) => break,
                (Some(_), None) => STREAM_LANE,
                (None, Some(_)) => BATCH_LANE,
                (Some(_), Some(_)) => {
                    let [stream, batch] = self.running_by_kind;
                    if stream * u64::from(w.batch) <= batch * u64::from(w.stream) {
                        STREAM_LANE
                    } else {
                        BATCH_LANE
                    }
                }
            };
            let id = self.lanes.front(lane).expect("lane chosen non-empty");
            let spec = &self.tasks[&id].spec;
            let Some(seq) = self.execs.pick_free(self.cfg.placement, spec, STREAM_POOL) else {
                break;
            };
            self.lanes.pop(lane);
            self.launch(now, id, seq, None, out);
        }
    }

    /// Launches queued task `id` on `seq`, into a free slot or, with `preempt`, into the slot of
    /// the victim (which becomes `Preempting` while the task is `Reserved`).
    fn launch(
        &mut self,
        now: Duration,
        id: TaskId,
        seq: Seq,
        preempt: Option<(TaskId, PreemptHow)>,
        out: &mut Vec<Command>,
    ) {
        let (max, quantum) = (self.cfg.max_suspensions, self.cfg.quantum);
        let executor = self.execs.get(seq).name.clone();
        let entry = self.tasks.get_mut(&id).expect("launching a known task");
        entry.started_at = now;
        let due = now.saturating_add(self.cfg.launch_ack_timeout);
        entry.ack_due = Some(due);
        self.acks.insert((due, id));
        entry.resume_pending = false;
        if entry.preemptions > max {
            let until = now + quantum;
            entry.protected_until = until;
            entry.protected = true;
            self.protections.insert((until, id));
        }
        if !entry.spec.preferred.is_empty() {
            if entry.spec.preferred.contains(&executor) {
                self.totals.local_launches += 1;
            } else {
                self.totals.non_local_launches += 1;
            }
        }
        let task = entry.spec.clone();
        if task.kind == neptune_core::ids::JobKind::Stream {
            self.slo_note_launch(now, task.id, seq);
            self.consume_reservation(task.id, seq);
        }
        match preempt {
            Some((victim, how)) => {
                self.relocate(
                    victim,
                    TaskState::Preempting {
                        exec: seq,
                        by: id,
                        how,
                    },
                );
                self.relocate(id, TaskState::Reserved { exec: seq, victim });
            }
            None => self.relocate(id, TaskState::Running { exec: seq }),
        }
        out.push(Command::Launch {
            task,
            executor,
            preempt: preempt.map(|(task, how)| Preempt { task, how }),
        });
    }
}
