//! Stream receivers running on this executor: each reads text lines from its TCP socket into a
//! buffer, and hands them out in per-run *cuts* (see `neptune_core::source_socket` for the
//! model and the delivery guarantees).
//!
//! A receiver is a tokio task (network I/O never runs on the `may` workers). It connects to its
//! `host:port` as a client and reconnects with back-off when the peer is not there yet or closes
//! the connection. It stops reading while the bytes it holds (lines not yet cut, plus cuts not
//! yet released by the driver) reach its share of [`RECEIVERS_SHARE`] of `--memory`: the sender
//! then blocks on TCP flow control instead of the executor filling its memory or dropping data.
//!
//! Cuts are served through the block store ([`crate::blocks::BlockStore::get`]), so a task on
//! this executor reads its share locally and a task elsewhere fetches it from the block server,
//! exactly like a shuffle block.
//!
//! A cut is made only for a run the driver announced (`OpenRun`, sent to every executor when a
//! run that reads receivers begins) and not yet released: a block request naming any other run
//! (invented, or already over) gets "not open" and takes nothing, so no request can move lines
//! out of the run they belong to or pin memory the driver will never release.

use crate::blocks::Lookup;
use crate::metrics::ExecutorMetrics;
use neptune_core::shuffle::BlockId;
use neptune_core::source_socket::{MAX_LINE, RECEIVER_STAGE, ReceiverDef, encode_cut};
use prometheus::{IntCounter, IntGauge};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::Notify;

/// Share of `--memory` that all receivers of an executor may hold together.
pub const RECEIVERS_SHARE: f64 = 0.1;

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Most runs open at once: far more than a driver keeps in flight (a few per stream job), so
/// reaching it means announcements without releases; further ones are refused and logged.
pub const MAX_OPEN_RUNS: usize = 65_536;

/// The receivers the driver pinned to this executor.
pub struct Receivers {
    defs: Vec<ReceiverDef>,
    running: Mutex<HashMap<u32, Arc<Receiver>>>,
    /// Runs the driver announced and has not released: (job, run).
    open: Mutex<BTreeSet<(u32, u64)>>,
    /// Bytes one receiver may hold.
    limit: u64,
    metrics: Option<ExecutorMetrics>,
}

impl std::fmt::Debug for Receivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receivers")
            .field("defs", &self.defs)
            .field("limit", &self.limit)
            .finish()
    }
}

struct Receiver {
    def: ReceiverDef,
    /// Runs before this one get empty cuts (they began while the receiver ran elsewhere).
    first_run: u64,
    buf: Mutex<Buf>,
    space: Notify,
    limit: u64,
    meters: Option<Meters>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// One receiver's metric series, looked up once: a label lookup per line would sit on the
/// receiving hot path.
struct Meters {
    lines: IntCounter,
    too_long: IntCounter,
    not_utf8: IntCounter,
    buffered: IntGauge,
    connected: IntGauge,
}

impl Meters {
    fn new(m: &ExecutorMetrics, source: &str) -> Self {
        Self {
            lines: m.receiver_lines.with_label_values(&[source]),
            too_long: m.receiver_dropped.with_label_values(&[source, "too_long"]),
            not_utf8: m.receiver_dropped.with_label_values(&[source, "not_utf8"]),
            buffered: m.receiver_buffered.with_label_values(&[source]),
            connected: m.receiver_connected.with_label_values(&[source]),
        }
    }
}

/// Lines waiting for the next cut, and the cuts of runs not yet released.
#[derive(Default)]
struct Buf {
    pending: Vec<String>,
    pending_bytes: u64,
    /// (job, run) → the run's data per partition.
    cuts: HashMap<(u32, u64), Arc<Vec<Vec<u8>>>>,
    cut_bytes: u64,
}

impl Buf {
    fn held(&self) -> u64 {
        self.pending_bytes + self.cut_bytes
    }
}

impl Receivers {
    /// Receivers of an app declaring `defs`, sharing `memory` × [`RECEIVERS_SHARE`] bytes.
    pub fn new(defs: Vec<ReceiverDef>, memory: u64, metrics: Option<ExecutorMetrics>) -> Self {
        let share = (memory as f64 * RECEIVERS_SHARE) as u64 / (defs.len().max(1) as u64);
        Self {
            defs,
            running: Mutex::default(),
            open: Mutex::default(),
            limit: share.max(64 << 10),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Arc<Receiver>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start receiver `index` here (a no-op if it already runs), giving runs before
    /// `first_run` empty cuts. Call inside a tokio runtime.
    ///
    /// # Errors
    /// When the app declares no receiver `index`.
    pub fn start(&self, index: u32, first_run: u64) -> Result<(), String> {
        let def = self
            .defs
            .get(index as usize)
            .ok_or_else(|| {
                format!(
                    "the driver asked for receiver {index}, but the app declares {}",
                    self.defs.len()
                )
            })?
            .clone();
        let mut running = self.lock();
        if running.contains_key(&index) {
            return Ok(());
        }
        tracing::info!(source = %def.name, addr = %def.addr, "starting stream receiver");
        let r = Arc::new(Receiver {
            meters: self.metrics.as_ref().map(|m| Meters::new(m, &def.name)),
            def,
            first_run,
            buf: Mutex::default(),
            space: Notify::new(),
            limit: self.limit,
            task: Mutex::new(None),
        });
        let handle = tokio::spawn(r.clone().run());
        *r.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        running.insert(index, r);
        Ok(())
    }

    /// Whether receiver `index` runs here.
    pub fn is_running(&self, index: u32) -> bool {
        self.lock().contains_key(&index)
    }

    /// The driver announced run `run` of job `job`: its cuts may be made.
    pub fn open_run(&self, job: u32, run: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= MAX_OPEN_RUNS && !open.contains(&(job, run)) {
            tracing::warn!(
                job,
                run,
                limit = MAX_OPEN_RUNS,
                "too many open runs: announcement refused"
            );
            return;
        }
        open.insert((job, run));
    }

    fn is_open(&self, job: u32, run: u64) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(job, run))
    }

    /// Receiver block `id` (stage [`RECEIVER_STAGE`]` | index`, reduce = partition): run
    /// `id.run` of job `id.job`'s share for that partition, cutting the receiver's buffer if
    /// this is the run's first request. [`Lookup::NotOpen`] if the driver has not announced the
    /// run (or released it already); [`Lookup::Missing`] if the receiver does not run here or
    /// the partition does not exist.
    pub fn cut_block(&self, id: BlockId) -> Lookup {
        let Some(index) = id.stage.checked_sub(RECEIVER_STAGE) else {
            return Lookup::Missing;
        };
        let Some(r) = self.lock().get(&index).cloned() else {
            return Lookup::Missing;
        };
        if id.reduce >= r.def.partitions.max(1) {
            return Lookup::Missing;
        }
        if !self.is_open(id.job, id.run) {
            return Lookup::NotOpen;
        }
        match r.cut(id.job, id.run).get(id.reduce as usize) {
            Some(part) => Lookup::Found(part.clone()),
            None => Lookup::Missing,
        }
    }

    /// Drop every cut of run `run` of job `job` (the run committed or failed); no cut is made
    /// for it any more.
    pub fn release(&self, job: u32, run: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(job, run));
        let receivers: Vec<Arc<Receiver>> = self.lock().values().cloned().collect();
        for r in receivers {
            r.release(job, run);
        }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        for r in self.lock().values() {
            if let Some(t) = r.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
                t.abort();
            }
        }
    }
}

impl Receiver {
    fn buf(&self) -> MutexGuard<'_, Buf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn meter(&self, f: impl FnOnce(&Meters)) {
        if let Some(m) = &self.meters {
            f(m);
        }
    }

    fn export(&self, b: &Buf) {
        self.meter(|m| m.buffered.set(b.held() as i64));
    }

    /// Run (job, run)'s cut: made now from every pending line if it does not exist yet.
    fn cut(&self, job: u32, run: u64) -> Arc<Vec<Vec<u8>>> {
        let mut b = self.buf();
        if let Some(c) = b.cuts.get(&(job, run)) {
            return c.clone();
        }
        let lines = if run < self.first_run {
            Vec::new()
        } else {
            b.pending_bytes = 0;
            std::mem::take(&mut b.pending)
        };
        // Encoded under the lock so that a concurrent first request of another partition of
        // the same run waits for this cut instead of making a second one.
        let parts = Arc::new(encode_cut(&lines, self.def.partitions));
        let bytes: u64 = parts.iter().map(|p| p.len() as u64).sum();
        b.cut_bytes += bytes;
        b.cuts.insert((job, run), parts.clone());
        self.export(&b);
        drop(b);
        self.space.notify_waiters();
        parts
    }

    fn release(&self, job: u32, run: u64) {
        let mut b = self.buf();
        if let Some(c) = b.cuts.remove(&(job, run)) {
            let bytes = c.iter().map(|p| p.len() as u64).sum::<u64>();
            b.cut_bytes = b.cut_bytes.saturating_sub(bytes);
            self.export(&b);
            drop(b);
            self.space.notify_waiters();
        }
    }

    /// Buffer `line`; whether the receiver still holds less than its limit.
    fn push(&self, line: String) -> bool {
        let mut b = self.buf();
        b.pending_bytes += line.len() as u64 + 1;
        b.pending.push(line);
        self.export(&b);
        b.held() < self.limit
    }

    fn set_connected(&self, up: bool) {
        self.meter(|m| m.connected.set(i64::from(up)));
    }

    /// Wait until the receiver holds less than its limit.
    async fn wait_for_space(&self) {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.buf().held() < self.limit {
                return;
            }
            notified.await;
        }
    }

    /// Connect, read, reconnect: until aborted.
    async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        let mut failures = 0u64;
        loop {
            match tokio::net::TcpStream::connect(&self.def.addr).await {
                Ok(conn) => {
                    tracing::info!(source = %self.def.name, addr = %self.def.addr, "receiver connected");
                    self.set_connected(true);
                    backoff = Duration::from_millis(50);
                    failures = 0;
                    let why = match self.read_lines(conn).await {
                        Ok(()) => "the peer closed the connection".to_string(),
                        Err(e) => e.to_string(),
                    };
                    self.set_connected(false);
                    tracing::info!(source = %self.def.name, reason = %why, "receiver disconnected; reconnecting");
                }
                Err(e) => {
                    failures += 1;
                    // Loud on the first failure and then now and then, quiet in between.
                    if failures == 1 || failures.is_multiple_of(50) {
                        tracing::warn!(source = %self.def.name, addr = %self.def.addr, error = %e, failures, "receiver cannot connect; retrying");
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Read lines from `conn` until it ends.
    async fn read_lines(&self, conn: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut r = BufReader::new(conn);
        let mut line = Vec::new();
        // Whether the receiver held less than its limit after its last line: only then does it
        // read the next one (a cut or a release makes room again).
        let mut room = false;
        loop {
            if !room {
                self.wait_for_space().await;
                room = true;
            }
            line.clear();
            let n = (&mut r)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Ok(());
            }
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            } else if line.len() > MAX_LINE {
                self.meter(|m| m.too_long.inc());
                skip_rest_of_line(&mut r).await?;
                continue;
            }
            match String::from_utf8(std::mem::take(&mut line)) {
                Ok(s) => {
                    room = self.push(s);
                    self.meter(|m| m.lines.inc());
                }
                Err(_) => self.meter(|m| m.not_utf8.inc()),
            }
        }
    }
}

/// Discard input up to and including the next newline (or the end of the stream).
async fn skip_rest_of_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<()> {
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

#[cfg(test)]
#[path = "receivers_tests.rs"]
mod tests;
