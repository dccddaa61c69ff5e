//! The `may` side of the runtime: process-wide scheduler configuration, the task coroutine, the
//! yield hook that parks it, and the two helper coroutines (wake and confirm) through which every
//! placement decision of the [`Table`] reaches a chosen worker.

use super::table::{Action, Commit, StartTask, Table};
use super::types::{Tally, TaskOutcome};
use may::coroutine::{Builder, Coroutine};
use neptune_core::ids::TaskId;
use neptune_core::state::Broadcasts;
use neptune_core::task::{KILL, RUN, TaskContext, TaskControl, YieldHook};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tracing::warn;

/// Stack of every coroutine (task and helper), in bytes. may's own default is 4096 *words*
/// (32 KiB), too small for real operator closures: deserializing records, sort buffers and
/// iterator chains several frames deep, and debug builds that use several times the stack of
/// release builds. 512 KiB leaves room for all of that; untouched pages cost no memory (stacks
/// are mapped lazily), and helpers use the same size because may pools and reuses only stacks of
/// the configured default size, which keeps a helper spawn at about a microsecond.
pub const STACK_BYTES: usize = 512 * 1024;

/// may's `set_stack_size` counts machine words, not bytes.
const STACK_WORDS: usize = STACK_BYTES / std::mem::size_of::<usize>();

/// The worker count may was configured with by the first runtime of this process.
static MAY_WORKERS: OnceLock<usize> = OnceLock::new();

/// Configure may once per process and return the worker count actually in use.
///
/// may's scheduler is a process-wide singleton started by the first spawn, so only the first
/// runtime's `cores` takes effect; a later runtime asking for a different count gets the existing
/// count (and a warning), and must size its accounting by it, not by what it asked for.
pub(crate) fn configure(cores: usize) -> usize {
    let asked = cores.max(1);
    let workers = *MAY_WORKERS.get_or_init(|| {
        may::config().set_workers(asked).set_stack_size(STACK_WORDS);
        // Pinning worker i to CPU i ignores the container's cpuset and quota and competes with
        // the tokio threads serving RPC; let the OS place the threads.
        may::config().set_worker_pin(false);
        asked
    });
    if workers != asked {
        warn!(
            asked,
            workers, "may workers are process-wide and already configured; using them"
        );
    }
    workers
}

/// The nice value the may workers were given by the first session of this process.
static WORKER_NICE: OnceLock<i32> = OnceLock::new();

/// Give each of the `workers` may worker threads the OS nice value `nice` (0: leave them be),
/// once per process like the worker pool itself.
///
/// Why: task code runs on the workers, the executor's control plane (the driver session, the
/// block server, receivers) on tokio threads of the same process. With every worker busy with
/// batch work, a control thread that wakes (a launch arriving, a task's update leaving) gets a
/// CPU only at the kernel's next fair-share decision — milliseconds on a loaded machine, which
/// the latency attribution measured as `network`, `core_wait` and `core_start` tails. A higher
/// nice on the workers only lets those short wake-ups preempt task code at once; it takes no
/// throughput from tasks while the control threads sleep. Raising one's own nice needs no
/// privilege (lowering it again would), so it is set once and never undone.
pub(crate) fn set_worker_nice(workers: usize, nice: i32) {
    let applied = *WORKER_NICE.get_or_init(|| {
        if nice != 0 {
            for worker in 0..workers {
                // On the worker itself: setpriority(2) with a thread id changes that thread only.
                if let Err(e) = may::go!(on_worker(worker), move || renice_current(worker, nice)) {
                    warn!(worker, error = %e, "could not spawn a coroutine to set the worker's nice value");
                }
            }
        }
        nice
    });
    if applied != nice {
        warn!(
            asked = nice,
            applied, "may workers are process-wide and already have a nice value; keeping it"
        );
    }
}

fn renice_current(worker: usize, nice: i32) {
    let tid = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(tid), nice) {
        Ok(()) => tracing::debug!(worker, nice, "task worker reniced"),
        Err(e) => warn!(worker, nice, error = %e, "could not set the task worker's nice value"),
    }
}

pub(crate) type Handle = Coroutine;

/// State shared by the runtime handle, task coroutines and helpers.
pub(crate) struct Shared {
    table: Mutex<Table<Handle>>,
    pub broadcasts: Arc<Broadcasts>,
}

impl Shared {
    pub fn new(table: Table<Handle>, broadcasts: Arc<Broadcasts>) -> Self {
        Self {
            table: Mutex::new(table),
            broadcasts,
        }
    }

    /// The table lock. Held for microseconds and never across a park or spawn, so blocking a
    /// worker thread on it is harmless; a panic while holding it cannot leave the table
    /// half-updated in a way that matters more than stopping would, so poison is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Table<Handle>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Carry out the table's decisions. Called with the lock released.
pub(crate) fn perform(shared: &Arc<Shared>, actions: Vec<Action<Handle>>) {
    for action in actions {
        match action {
            Action::Start { worker, task } => start_task(shared, worker, task),
            Action::Wake { worker, handle } => wake_on(worker, handle),
        }
    }
}

/// A builder that puts the new coroutine in `worker`'s own injection queue. Without may's
/// `work_steal` feature nothing moves it to another worker afterwards.
fn on_worker(worker: usize) -> Builder {
    Builder::new().id(worker)
}

/// Unpark `handle` *from a coroutine running on `worker`*: may queues a coroutine unparked by a
/// worker on that worker's local queue, so the task runs on the core the table gave it instead of
/// on whichever worker may's round-robin would pick for an unpark from a tokio thread.
fn wake_on(worker: usize, handle: Handle) {
    let waker = handle.clone();
    if let Err(e) = may::go!(on_worker(worker), move || waker.unpark()) {
        // Cannot happen short of running out of memory for a stack; waking it from here still
        // runs the task, only perhaps on a busy worker.
        warn!(worker, error = %e, "could not spawn a wake-up coroutine; unparking directly");
        handle.unpark();
    }
}

fn start_task(shared: &Arc<Shared>, worker: usize, task: StartTask) {
    let (id, serial) = (task.id, task.serial);
    let runner = shared.clone();
    let builder = on_worker(worker).name(format!("task-{id}"));
    // The join handle is dropped (detached): the task reports through the table and the channel,
    // and keeps its own handle in the table until it has finished (hazard 1, see module docs).
    if let Err(e) = may::go!(builder, move || run_task(runner, task)) {
        let failed = TaskOutcome::Failed(format!("could not start a coroutine for the task: {e}"));
        let actions = shared.lock().finish(id, serial, failed, Tally::default());
        perform(shared, actions);
    }
}

/// The task coroutine.
fn run_task(shared: Arc<Shared>, task: StartTask) {
    let StartTask {
        id,
        attempt,
        kind,
        serial,
        control,
        body,
    } = task;
    // The core the table granted is really this task's from now (may ran the coroutine).
    let started_at = std::time::Instant::now();
    // Before the first yield point, so every later wake-up finds the handle.
    shared
        .lock()
        .set_handle(id, serial, may::coroutine::current());
    let hook = Arc::new(Parker {
        shared: shared.clone(),
        id,
        serial,
    });
    let ctx = TaskContext::new(id, attempt, kind, control, hook, shared.broadcasts.clone());
    let outcome = match catch_unwind(AssertUnwindSafe(|| body(&ctx))) {
        Ok(Ok(bytes)) => TaskOutcome::Succeeded(bytes),
        Ok(Err(message)) => TaskOutcome::Failed(message),
        Err(payload) => TaskOutcome::Failed(format!("task panicked: {}", panic_message(&*payload))),
    };
    let tally = Tally {
        started_at: Some(started_at),
        ..Tally::of(&ctx)
    };
    drop(ctx);
    let actions = shared.lock().finish(id, serial, outcome, tally);
    perform(&shared, actions);
    // Hazard 1: if this coroutine was resumed inline by may's `Park::subscribe` (an unpark that
    // raced its park), exiting now would drop its `Park` inside that call and spin forever in
    // `Park::drop`. Yielding once returns from that call first; the exit then runs from the
    // worker's queue. One yield per task, not a churn (hazard 2).
    may::coroutine::yield_now();
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The yield hook of one task: parks its coroutine while it is asked to suspend.
struct Parker {
    shared: Arc<Shared>,
    id: TaskId,
    serial: u64,
}

impl YieldHook for Parker {
    fn on_yield(&self, control: &TaskControl) -> bool {
        // A loop, because a wake-up is only a hint: may's park/unpark keeps a permit, so a stale
        // unpark can end a later park early. Only the control state (written under the table
        // lock together with the phase) says what to do.
        loop {
            match control.state() {
                KILL => return false,
                RUN => {
                    self.shared.lock().note_running(self.id, self.serial);
                    return true;
                }
                _ => {}
            }
            let commit = self.shared.lock().commit_park(self.id, self.serial);
            match commit {
                Commit::Recheck => continue,
                Commit::Wait => may::coroutine::park(),
                Commit::Park { worker, epoch } => {
                    self.spawn_confirm(worker, epoch);
                    may::coroutine::park();
                }
            }
        }
    }
}

impl Parker {
    /// Queue the confirm coroutine behind this task on its own worker: may runs it only once
    /// this coroutine has left the worker, i.e. really parked, and only then is the core counted
    /// free and `Suspended` sent (closing the reference code's gap of counting a core free before
    /// the task yielded).
    fn spawn_confirm(&self, worker: usize, epoch: u64) {
        let shared = self.shared.clone();
        let (id, serial) = (self.id, self.serial);
        if let Err(e) = may::go!(on_worker(worker), move || confirm(
            &shared, id, serial, epoch
        )) {
            warn!(worker, error = %e, "could not spawn a confirm coroutine; confirming early");
            confirm(&self.shared, id, serial, epoch);
        }
    }
}

fn confirm(shared: &Arc<Shared>, id: TaskId, serial: u64, epoch: u64) {
    let actions = shared.lock().confirm_parked(id, serial, epoch);
    perform(shared, actions);
}
