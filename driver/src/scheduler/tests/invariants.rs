//! Invariant checker run after every event in the tests: exact slot accounting, every task in
//! exactly one place, indices in step with the executors.

use super::super::executors::{BATCH_SLOTS, Executor, STREAM_POOL};
use super::super::{Scheduler, TaskState};
use neptune_core::ids::{JobKind, TaskId};
use std::collections::BTreeMap;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// Checks every invariant; the error says which one broke.
pub(in super::super) fn check(s: &Scheduler) -> Result<(), String> {
    let reg = &s.execs;
    let mut placed_slots = 0;
    for (seq, e) in &reg.execs {
        check_executor(s, e)?;
        ensure(reg.names.get(&e.name) == Some(seq), || {
            format!("{} not named", e.name)
        })?;
        placed_slots += e.running.len() + 2 * e.preempting.len() + e.suspended.len();
        placed_slots += e.suspending.len();
        placed_slots += e.killing.len();
    }
    ensure(reg.names.len() == reg.execs.len(), || {
        "stale executor names".into()
    })?;
    let free_total: usize = reg.free[..BATCH_SLOTS].iter().map(|f| f.len()).sum();
    let free_execs = reg.execs.values().filter(|e| e.launchable()).count();
    let batch_free_execs = reg
        .execs
        .values()
        .filter(|e| e.pool == STREAM_POOL && e.batch_free() > 0 && !e.suspect)
        .count();
    ensure(reg.free[BATCH_SLOTS].len() == batch_free_execs, || {
        "batch-slot index has extra entries".into()
    })?;
    ensure(free_total == free_execs, || {
        "free index has extra entries".into()
    })?;
    let victim_execs = reg.execs.values().filter(|e| e.preemptible()).count();
    ensure(reg.victims.len() == victim_execs, || {
        "victim index has extra entries".into()
    })?;
    ensure(reg.by_last_seen.len() == reg.execs.len(), || {
        "liveness index size".into()
    })?;

    let mut in_lanes: BTreeMap<TaskId, usize> = BTreeMap::new();
    for (id, _) in s.lanes.lanes.iter().flatten() {
        *in_lanes.entry(*id).or_default() += 1;
    }
    let queued: usize = s.lanes.lanes.iter().map(|l| l.len()).sum();
    ensure(placed_slots + queued == s.tasks.len(), || {
        format!(
            "{} tasks known but {} in places",
            s.tasks.len(),
            placed_slots + queued
        )
    })?;
    let mut running = [0u64; 2];
    let mut queued_by_kind = [0usize; 2];
    for (id, entry) in &s.tasks {
        let kind = usize::from(entry.spec.kind == JobKind::Batch);
        let exec = |seq| {
            reg.execs
                .get(&seq)
                .ok_or_else(|| format!("{id} on a removed executor"))
        };
        match entry.state {
            TaskState::Queued => {
                queued_by_kind[kind] += 1;
                let n = in_lanes.get(id).copied().unwrap_or(0);
                ensure(n == 1, || format!("{id} queued {n} times"))?;
            }
            TaskState::Running { exec: seq } => {
                running[kind] += 1;
                let e = exec(seq)?;
                ensure(e.running.contains(id), || {
                    format!("{id} running but not on {}", e.name)
                })?;
                ensure(e.candidates.contains(id) == entry.is_candidate(), || {
                    format!("{id} candidate flag out of step")
                })?;
            }
            TaskState::Preempting { exec: seq, by, .. } => {
                let e = exec(seq)?;
                ensure(e.preempting.get(id) == Some(&by), || {
                    format!("{id} preempting lost")
                })?;
                let heir = s.tasks.get(&by).map(|t| t.state);
                let expected = TaskState::Reserved {
                    exec: seq,
                    victim: *id,
                };
                ensure(heir == Some(expected), || {
                    format!("{by} is not reserved for {id}")
                })?;
            }
            TaskState::Reserved { exec: seq, victim } => {
                let e = exec(seq)?;
                ensure(e.preempting.get(&victim) == Some(id), || {
                    format!("{id} reserved lost")
                })?;
                ensure(
                    entry.spec.kind == JobKind::Stream
                        || crate::scheduler::config::preemption(s.cfg.policy).is_some(),
                    || format!("{id} reserved under a non-preempting policy"),
                )?;
            }
            TaskState::Suspended { exec: seq, order } => {
                let e = exec(seq)?;
                ensure(e.suspended.get(&order) == Some(id), || {
                    format!("{id} suspended lost")
                })?;
                ensure(entry.spec.kind == JobKind::Batch, || {
                    format!("stream {id} suspended")
                })?;
            }
            TaskState::Suspending { exec: seq } => {
                let e = exec(seq)?;
                ensure(e.suspending.contains(id), || {
                    format!("{id} suspending lost")
                })?;
                ensure(entry.spec.kind == JobKind::Batch, || {
                    format!("stream {id} suspended ahead")
                })?;
            }
            TaskState::Killing { exec: seq } => {
                let e = exec(seq)?;
                ensure(e.killing.contains(id), || format!("{id} killing lost"))?;
            }
        }
    }
    ensure(running == s.running_by_kind, || {
        "running counts out of step".into()
    })?;
    for kind in [JobKind::Stream, JobKind::Batch] {
        let k = usize::from(kind == JobKind::Batch);
        ensure(s.lanes.queued(kind) == queued_by_kind[k], || {
            format!("{kind} queue count")
        })?;
    }
    Ok(())
}

fn check_executor(s: &Scheduler, e: &Executor) -> Result<(), String> {
    let reg = &s.execs;
    ensure(e.occupied() <= e.cores as usize, || {
        format!("{}: {} slots taken of {}", e.name, e.occupied(), e.cores)
    })?;
    ensure(e.candidates.is_subset(&e.running), || {
        format!("{}: candidate not running", e.name)
    })?;
    ensure(reg.free[e.pool].contains(&e.rank) == e.launchable(), || {
        format!("{}: free index out of step", e.name)
    })?;
    ensure(reg.victims.contains(&e.rank) == e.preemptible(), || {
        format!("{}: victim index out of step", e.name)
    })?;
    ensure(
        reg.free[BATCH_SLOTS].contains(&e.rank)
            == (e.pool == STREAM_POOL && e.batch_free() > 0 && !e.suspect),
        || format!("{}: batch-slot index out of step", e.name),
    )?;
    ensure(e.guarded == s.slo.wanted(e.seq), || {
        format!("{}: held slots out of step with the guards", e.name)
    })?;
    ensure(e.reserved == s.ahead.reserved_on(e.seq), || {
        format!(
            "{}: reserved slots out of step with the reservations",
            e.name
        )
    })?;
    let resumable = e.batch_free() > 0 && !e.suspect && !e.suspended.is_empty();
    ensure(reg.resumable.contains(&e.seq) == resumable, || {
        format!("{}: resumable index out of step", e.name)
    })?;
    ensure(reg.by_last_seen.contains(&(e.last_seen, e.seq)), || {
        format!("{}: liveness index out of step", e.name)
    })?;
    for id in e.all_tasks() {
        ensure(
            s.tasks.get(&id).and_then(|t| t.state.exec()) == Some(e.seq),
            || format!("{id} listed on {} but placed elsewhere", e.name),
        )?;
    }
    Ok(())
}
