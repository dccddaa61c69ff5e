//! Executor sessions in the event loop: registration (the welcome, or a refusal), loss,
//! heartbeats, and where the stream receivers run.
//!
//! Rules. An id with a live session is refused (ALREADY_EXISTS), never taken over: it becomes
//! free when that session ends — its stream closes, it misses heartbeats for
//! `heartbeat.timeout_ms`, or it stops reading its session — and executors retry a taken id
//! until their connect timeout, so a restarted executor gets its id back. At most
//! [`MAX_EXECUTORS`] sessions live at once. Messages are accepted only from an id's current
//! session; a late message of an ended one is ignored. Heartbeat values are clamped to the
//! registration bounds before they reach the scheduler.

use super::commands::broadcast_msg;
use super::{Conn, EventLoop, Work};
use crate::registration::Registration;
use crate::scheduler::{Event, ExecutorMetrics};
use crate::server::{Outbox, Welcomed};
use neptune_proto::{DriverMessage, Heartbeat, MAX_MEMORY, MIN_MEMORY, driver_message};
use std::collections::HashMap;
use tokio::sync::oneshot;
use tonic::Status as GrpcStatus;

/// Most executor sessions alive at once (the CLI's `--executors` bound).
pub const MAX_EXECUTORS: usize = 10_000;

impl EventLoop {
    /// Accept or refuse a registration; on acceptance the welcome is the first message queued.
    pub(super) fn register(
        &mut self,
        r: Registration,
        outbox: Outbox,
        reply: oneshot::Sender<Result<Welcomed, GrpcStatus>>,
    ) {
        if self.conns.len() >= MAX_EXECUTORS {
            let why = format!("register: {MAX_EXECUTORS} executors are registered already");
            return self.refuse(reply, "too_many", GrpcStatus::resource_exhausted(why));
        }
        let id = match r.id {
            Some(id) if self.conns.contains_key(&id) => {
                let why = format!(
                    "register: executor id `{id}` has a live session; it is free again once \
                     that session ends (its stream closes, or it misses heartbeats for {:?})",
                    self.cfg.scheduler.heartbeat_timeout
                );
                return self.refuse(reply, "id_in_use", GrpcStatus::already_exists(why));
            }
            Some(id) => id,
            None => self.fresh_id(),
        };
        let session = self.next_session;
        self.next_session += 1;
        let welcome = neptune_proto::Welcome {
            executor_id: id.clone(),
            session,
            app: self.cfg.app.clone(),
            config: self
                .cfg
                .config
                .pairs()
                .map(|(k, v)| neptune_proto::ConfigEntry {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            heartbeat_interval_ms: u64::try_from(self.cfg.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
            max_message_bytes: self.cfg.max_message_bytes,
            driver_timeout_ms: u64::try_from(self.cfg.driver_timeout.as_millis())
                .unwrap_or(u64::MAX),
        };
        let welcome = DriverMessage {
            msg: Some(driver_message::Msg::Welcome(welcome)),
        };
        // The outbox is new: the welcome is its first message and cannot find it full.
        if outbox.try_send(Ok(welcome)).is_err() {
            return;
        }
        let welcomed = Welcomed {
            id: id.clone(),
            session,
        };
        if reply.send(Ok(welcomed)).is_err() {
            return; // the executor hung up meanwhile
        }
        tracing::info!(executor = %id, session, cores = r.cores, memory = r.memory_limit, http = %r.http_addr, "executor registered");
        let mut conn = Conn {
            session,
            http_addr: r.http_addr,
            block_addr: r.block_addr,
            memory_limit: r.memory_limit,
            memory_used: 0,
            outbox,
            stalled: false,
        };
        // What every other executor got while this one was away: shared state, open runs.
        let mut catch_up: Vec<driver_message::Msg> = Vec::new();
        for (name, _) in self.broadcasts.versions() {
            if let Some((version, bytes)) = self.broadcasts.bytes(&name) {
                catch_up.push(broadcast_msg(&name, version, &bytes));
            }
        }
        for (job, run) in self.jobs.open_runs() {
            catch_up.push(driver_message::Msg::OpenRun(neptune_proto::OpenRun {
                job,
                run,
            }));
        }
        for msg in catch_up {
            if let Some(lose) =
                super::commands::push(&id, &mut conn, DriverMessage { msg: Some(msg) })
            {
                self.work.push_back(lose);
            }
        }
        self.conns.insert(id.clone(), conn);
        self.metrics.executors.set(self.conns.len() as i64);
        if self.started {
            self.place_receivers();
        }
        self.work
            .push_back(Work::Schedule(Event::ExecutorRegistered {
                id,
                cores: r.cores,
                memory_limit: r.memory_limit,
            }));
        self.maybe_start();
    }

    fn refuse(
        &self,
        reply: oneshot::Sender<Result<Welcomed, GrpcStatus>>,
        label: &str,
        status: GrpcStatus,
    ) {
        tracing::warn!(reason = status.message(), "registration refused");
        self.metrics
            .refused_registrations
            .with_label_values(&[label])
            .inc();
        let _ = reply.send(Err(status));
    }

    /// `exec-N` for the smallest N not in use.
    fn fresh_id(&mut self) -> String {
        loop {
            let id = format!("exec-{}", self.next_id);
            self.next_id += 1;
            if !self.conns.contains_key(&id) {
                return id;
            }
        }
    }

    /// Executor `id` is gone (or must go): forget its session, re-place its receivers, and let
    /// the scheduler and the job manager recover its tasks and outputs.
    pub(super) fn lose(&mut self, id: &str, reason: &str, notify: bool) {
        let Some(c) = self.conns.remove(id) else {
            return;
        };
        tracing::warn!(executor = %id, %reason, "executor lost");
        if notify {
            // Told only when it is dropped for silence while the app goes on: it may be alive
            // (paused, or cut off for a while) and should register again.
            let msg = driver_message::Msg::Shutdown(neptune_proto::Shutdown {
                reason: reason.to_string(),
                rejoin: true,
            });
            let _ = c.outbox.try_send(Ok(DriverMessage { msg: Some(msg) }));
        }
        self.processed.ended(id);
        self.metrics.executors.set(self.conns.len() as i64);
        self.metrics.executors_lost.inc();
        self.totals.executors_lost = self.totals.executors_lost.saturating_add(1);
        // Before the scheduler relaunches anything: tasks reading a receiver that ran there
        // must be told its new place.
        self.place_receivers();
        self.work
            .push_back(Work::Schedule(Event::ExecutorLost { id: id.to_string() }));
        let step = self.jobs.executor_lost(id);
        self.work.push_back(Work::Step(step));
    }

    /// A heartbeat of `id`'s current session, its values clamped to the registration bounds.
    pub(super) fn on_heartbeat(&mut self, id: String, session: u64, hb: Heartbeat) {
        let Some(c) = self.conns.get_mut(&id).filter(|c| c.session == session) else {
            return;
        };
        let metrics = ExecutorMetrics {
            memory_used: hb.memory_used.min(MAX_MEMORY),
            // 0 (or a value out of bounds): the limit given at registration.
            memory_limit: if (MIN_MEMORY..=MAX_MEMORY).contains(&hb.memory_limit) {
                hb.memory_limit
            } else {
                0
            },
            spilled_bytes_total: hb.spilled_bytes_total,
            suspended_retained_bytes: hb.suspended_retained_bytes.min(MAX_MEMORY),
        };
        c.memory_used = metrics.memory_used;
        if metrics.memory_limit > 0 {
            c.memory_limit = metrics.memory_limit;
        }
        self.spilled.insert(id.clone(), metrics.spilled_bytes_total);
        let now = self.now();
        self.processed.heartbeat(&id, session, now, &hb.job_records);
        // The executor's proof that this driver (its event loop, not just its kernel) is alive.
        self.send_to(
            &id,
            driver_message::Msg::KeepAlive(neptune_proto::KeepAlive {}),
        );
        self.work
            .push_back(Work::Schedule(Event::Heartbeat { id, metrics }));
    }

    /// Pin every receiver that has no live executor to the live executor running the fewest
    /// receivers (ties: smallest id), and tell that executor to start it. A receiver stays
    /// where it is while its executor lives.
    pub(super) fn place_receivers(&mut self) {
        let placed: Vec<Option<String>> = self.jobs.receiver_placement().to_vec();
        let mut load: HashMap<&str, usize> = self.conns.keys().map(|k| (k.as_str(), 0)).collect();
        for e in placed.iter().flatten() {
            if let Some(n) = load.get_mut(e.as_str()) {
                *n += 1;
            }
        }
        let mut moves = Vec::new();
        for (index, at) in placed.iter().enumerate() {
            if at.as_ref().is_some_and(|e| self.conns.contains_key(e)) {
                continue;
            }
            let target = load
                .iter()
                .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
                .map(|(e, _)| e.to_string());
            if let Some(e) = &target {
                *load.get_mut(e.as_str()).expect("listed") += 1;
            }
            moves.push((index, target));
        }
        for (index, target) in moves {
            let name = &self.app.receivers()[index].name;
            match &target {
                Some(e) => {
                    tracing::info!(source = %name, executor = %e, "receiver placed");
                    let msg = driver_message::Msg::StartReceiver(neptune_proto::StartReceiver {
                        index: index as u32,
                        first_run: self.jobs.receiver_first_run(index),
                    });
                    self.send_to(e, msg);
                }
                None => tracing::warn!(source = %name, "no executor left to run the receiver"),
            }
            self.jobs.place_receiver(index, target);
        }
    }
}
