//! The app model: an [`App`] holds named jobs, each marked stream or batch by one call, built from
//! a dataset pipeline ending in an action, plus shared versioned [`State`].
//!
//! The same function builds the same `App` on the driver and on every executor (same-binary
//! model), so tasks are addressed by ids and only data and small parameters travel.

use crate::action::Action;
use crate::config::{Config, ConfigError};
use crate::dataset::Dataset;
use crate::error::{BoxError, Error, Result};
use crate::ids::JobKind;
use crate::kafka::KafkaSource;
use crate::kafka::source::SourceConfig;
use crate::source_socket::{ReceiverDef, check_addr, receiver_lines};
use crate::state::Broadcasts;
use crate::task::TaskContext;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Reserved config key carrying the app's own arguments (after `--` on the CLI) as a JSON array,
/// so they reach executors with the rest of the config.
pub const ARGS_KEY: &str = "app.args";

/// Default micro-batch interval of a stream job.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// Largest run result (as JSON) kept for the report and `/status`; bigger ones are summarised.
const MAX_RESULT_JSON: usize = 4096;

/// Driver-side handling of a run's task results: merge, user callback, JSON value for the report.
pub type CommitFn =
    Arc<dyn Fn(&mut CommitCtx<'_>, Vec<Vec<u8>>) -> Result<serde_json::Value> + Send + Sync>;

pub use crate::plan::StageDef;

/// A job: its kind, its cadence and its plan (stages → tasks).
#[derive(Clone)]
pub struct JobDef {
    /// Unique name in the app.
    pub name: String,
    /// Stream or batch (config `jobs.<name>.kind` overrides the app's choice).
    pub kind: JobKind,
    /// Micro-batch interval (stream jobs).
    pub interval: Duration,
    /// How many runs to do; `None` repeats until the app stops (batch: epoch after epoch).
    pub runs: Option<u64>,
    /// Target end-to-end latency of a micro-batch (reported, not enforced).
    pub latency_target: Option<Duration>,
    /// Micro-batches (stream jobs) begun and not committed at most; due ones wait beyond
    /// (config `jobs.<name>.max_in_flight`).
    pub max_in_flight: u64,
    /// Stages in execution order (the last one produces the task results the commit merges).
    pub stages: Vec<StageDef>,
    /// Merge and commit on the driver.
    pub commit: CommitFn,
}

impl std::fmt::Debug for JobDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobDef")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("interval", &self.interval)
            .field("runs", &self.runs)
            .field("max_in_flight", &self.max_in_flight)
            .field("stages", &self.stages)
            .finish()
    }
}

/// What a job's commit callback can do on the driver: read and publish shared state.
pub struct CommitCtx<'a> {
    /// The run being committed.
    pub run: u64,
    /// Records the run's tasks read.
    pub records: u64,
    broadcasts: &'a Broadcasts,
    published: Vec<(String, u64)>,
}

impl std::fmt::Debug for CommitCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitCtx").field("run", &self.run).finish()
    }
}

impl<'a> CommitCtx<'a> {
    /// A commit context over the driver's broadcast store.
    pub fn new(run: u64, records: u64, broadcasts: &'a Broadcasts) -> Self {
        Self {
            run,
            records,
            broadcasts,
            published: Vec::new(),
        }
    }

    /// State versions published during this commit (the driver sends them to executors).
    pub fn published(&self) -> &[(String, u64)] {
        &self.published
    }
}

/// Shared, versioned state: written on the driver when a job's run commits, read by tasks.
#[derive(Debug)]
pub struct State<T> {
    name: String,
    initial: Arc<T>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            initial: self.initial.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> State<T> {
    /// Name of the broadcast variable.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The latest version this executor holds (version 0 is the initial value every process builds
    /// itself). A value that does not decode fails the task and yields the initial value.
    pub fn get(&self, ctx: &TaskContext) -> (u64, Arc<T>) {
        match ctx.broadcasts().get::<T>(&self.name) {
            Ok(Some(v)) => v,
            Ok(None) => (0, self.initial.clone()),
            Err(e) => {
                ctx.fail(Error::codec(
                    format!("shared state `{}` does not decode", self.name),
                    e,
                ));
                (0, self.initial.clone())
            }
        }
    }

    /// The latest version on the driver.
    pub fn latest(&self, ctx: &CommitCtx<'_>) -> (u64, Arc<T>) {
        match ctx.broadcasts.get::<T>(&self.name) {
            Ok(Some(v)) => v,
            _ => (0, self.initial.clone()),
        }
    }

    /// Publish a new version; executors receive it once, before any task launched after it.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be encoded.
    pub fn publish(&self, ctx: &mut CommitCtx<'_>, value: &T) -> Result<u64> {
        let bytes = postcard::to_stdvec(value)
            .map_err(|e| Error::codec(format!("cannot encode shared state `{}`", self.name), e))?;
        let version = ctx.broadcasts.version(&self.name).unwrap_or(0) + 1;
        ctx.broadcasts.put(&self.name, version, bytes);
        ctx.published.push((self.name.clone(), version));
        Ok(version)
    }
}

/// Builder returned by [`App::stream`] and [`App::batch`].
pub struct JobBuilder<'a, R> {
    job: &'a mut JobDef,
    merge: crate::action::MergeFn<R>,
}

impl<R> std::fmt::Debug for JobBuilder<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobBuilder")
            .field("job", &self.job.name)
            .finish()
    }
}

impl<R: Serialize + 'static> JobBuilder<'_, R> {
    /// Micro-batch interval (stream jobs; config `jobs.<name>.interval_ms` overrides).
    pub fn interval(self, interval: Duration) -> Self {
        self.job.interval = interval;
        self
    }

    /// Number of runs (`None`: until the app stops; config `jobs.<name>.runs` overrides).
    pub fn runs(self, runs: Option<u64>) -> Self {
        self.job.runs = runs;
        self
    }

    /// Called on the driver with each run's merged result, in run order per job. `f` may fail
    /// with any error — the app's own error type through `?`, a `String` through `.into()`, a
    /// [`crate::Error`] — and the job fails with that error's message.
    pub fn on_result(
        self,
        f: impl Fn(&mut CommitCtx<'_>, R) -> Result<(), BoxError> + Send + Sync + 'static,
    ) -> Self {
        let merge = self.merge.clone();
        self.job.commit = Arc::new(move |ctx, parts| {
            let r = merge(parts)?;
            let v = report_value(&r);
            f(ctx, r).map_err(Error::user)?;
            Ok(v)
        });
        self
    }
}

fn report_value<R: Serialize>(r: &R) -> serde_json::Value {
    match serde_json::to_string(r) {
        Ok(s) if s.len() <= MAX_RESULT_JSON => serde_json::from_str(&s).unwrap_or_default(),
        Ok(s) => serde_json::json!({ "truncated": true, "json_bytes": s.len() }),
        Err(e) => serde_json::json!({ "unserializable": e.to_string() }),
    }
}

/// An application: named jobs over shared code and state.
pub struct App {
    name: String,
    config: Arc<Config>,
    jobs: Vec<JobDef>,
    receivers: Vec<ReceiverDef>,
    kafka: Vec<KafkaSource>,
    /// The largest memory one task declared it holds, and the config key that sets it.
    task_memory: Option<(String, u64)>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("jobs", &self.jobs)
            .field("receivers", &self.receivers)
            .finish()
    }
}

impl App {
    /// An empty app reading its settings from `config`.
    pub fn new(name: impl Into<String>, config: Arc<Config>) -> Self {
        Self {
            name: name.into(),
            config,
            jobs: Vec::new(),
            receivers: Vec::new(),
            kafka: Vec::new(),
            task_memory: None,
        }
    }

    /// Declares that one task of this app holds `bytes` of memory of its own because of config key
    /// `key` (e.g. a buffer sized by a setting). An executor whose `--memory` cannot hold that
    /// much refuses to start with an error naming the key ([`App::check_memory`]), instead of
    /// aborting on allocation mid-run.
    pub fn require_task_memory(&mut self, key: &str, bytes: u64) {
        if self.task_memory.as_ref().is_none_or(|(_, b)| bytes > *b) {
            self.task_memory = Some((key.to_string(), bytes));
        }
    }

    /// Whether one task's declared memory fits an executor's memory budget.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key that asks for more than `budget`.
    pub fn check_memory(&self, budget: u64) -> Result<(), ConfigError> {
        match &self.task_memory {
            Some((key, bytes)) if *bytes > budget => Err(ConfigError::Invalid {
                key: key.clone(),
                value: self.config.raw(key).unwrap_or_default().to_string(),
                reason: format!(
                    "a task would hold {} but an executor's --memory is {}",
                    neptune_config::quantity::format_bytes(*bytes),
                    neptune_config::quantity::format_bytes(budget)
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `--set` values (app-specific keys are read from here).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The app's own arguments (given after `--` on the command line).
    ///
    /// # Errors
    /// [`Error::Config`] when the reserved key `app.args` was set by hand to something that is
    /// not a JSON array of strings.
    pub fn args(&self) -> Result<Vec<String>> {
        match self.config.raw(ARGS_KEY) {
            None => Ok(Vec::new()),
            Some(s) => serde_json::from_str(s).map_err(|e| {
                Error::Config(ConfigError::Invalid {
                    key: ARGS_KEY.to_string(),
                    value: s.to_string(),
                    reason: e.to_string(),
                })
            }),
        }
    }

    /// The jobs, in definition order (a job's index is its [`JobId`](crate::ids::JobId)).
    pub fn jobs(&self) -> &[JobDef] {
        &self.jobs
    }

    /// Stream receivers declared with [`socket_lines`](Self::socket_lines), by index.
    pub fn receivers(&self) -> &[ReceiverDef] {
        &self.receivers
    }

    /// A stream source of the text lines arriving on TCP `addr` (`host:port`; the receiver
    /// connects to it as a client, like `nc -lk PORT` on the other end), split into
    /// `partitions` partitions per micro-batch. The driver pins the receiver to one executor
    /// and prefers it for the tasks reading it; see [`crate::source_socket`] for the delivery
    /// guarantees. Read it from one job only.
    ///
    /// # Errors
    /// [`Error::Definition`] naming the receiver when `name` is taken or `addr` is not
    /// `host:port`.
    pub fn socket_lines(
        &mut self,
        name: &str,
        addr: &str,
        partitions: u32,
    ) -> Result<Dataset<String>> {
        if self.receivers.iter().any(|r| r.name == name) {
            return Err(Error::Definition(format!(
                "socket source `{name}` is declared twice"
            )));
        }
        check_addr(addr).map_err(|e| Error::Definition(format!("socket source `{name}`: {e}")))?;
        let index = self.receivers.len() as u32;
        let partitions = partitions.max(1);
        self.receivers.push(ReceiverDef {
            name: name.to_string(),
            addr: addr.to_string(),
            partitions,
        });
        Ok(receiver_lines(index, partitions))
    }

    /// A Kafka source read by one job: the driver plans each micro-batch as offset ranges and
    /// tasks read exactly theirs (see [`crate::kafka`]). Read its records with
    /// [`KafkaSource::records`].
    ///
    /// # Errors
    /// [`Error::Definition`] when a source called `config.name` exists already.
    pub fn kafka_source(&mut self, config: SourceConfig) -> Result<KafkaSource> {
        if self.kafka.iter().any(|k| k.config().name == config.name) {
            return Err(Error::Definition(format!(
                "Kafka source `{}` is declared twice",
                config.name
            )));
        }
        let s = KafkaSource::new(self.kafka.len() as u32, config);
        self.kafka.push(s.clone());
        Ok(s)
    }

    /// The Kafka sources, by index.
    pub fn kafka_sources(&self) -> &[KafkaSource] {
        &self.kafka
    }

    /// Declare shared state named `name` with an initial value (version 0).
    pub fn state<T>(&mut self, name: &str, initial: T) -> State<T> {
        State {
            name: name.to_string(),
            initial: Arc::new(initial),
            _t: PhantomData,
        }
    }

    /// Add a latency-sensitive job run as micro-batches.
    pub fn stream<R: Serialize + 'static>(
        &mut self,
        name: &str,
        action: Action<R>,
    ) -> JobBuilder<'_, R> {
        self.add(name, JobKind::Stream, action)
    }

    /// Add a latency-tolerant job (run after run, until its run count or the app's end).
    pub fn batch<R: Serialize + 'static>(
        &mut self,
        name: &str,
        action: Action<R>,
    ) -> JobBuilder<'_, R> {
        self.add(name, JobKind::Batch, action)
    }

    fn add<R: Serialize + 'static>(
        &mut self,
        name: &str,
        kind: JobKind,
        action: Action<R>,
    ) -> JobBuilder<'_, R> {
        assert!(
            !self.jobs.iter().any(|j| j.name == name),
            "job `{name}` is defined twice in app `{}`",
            self.name
        );
        let merge = action.merge_fn();
        let m = merge.clone();
        let commit: CommitFn = Arc::new(move |_, parts| Ok(report_value(&m(parts)?)));
        self.jobs.push(JobDef {
            name: name.to_string(),
            kind,
            interval: DEFAULT_INTERVAL,
            runs: None,
            latency_target: None,
            max_in_flight: neptune_config::keys::DEFAULT_MAX_IN_FLIGHT,
            stages: action.stages(),
            commit,
        });
        let job = self.jobs.last_mut().expect("just pushed");
        JobBuilder { job, merge }
    }

    /// Apply per-job config overrides
    /// (`jobs.<name>.kind|interval_ms|runs|max_in_flight|latency_target_ms`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key with a bad value.
    pub fn apply_overrides(&mut self) -> Result<(), ConfigError> {
        use neptune_config::keys::{
            JOB_INTERVAL_MS, JOB_KIND, JOB_LATENCY_TARGET_MS, JOB_MAX_IN_FLIGHT, JOB_RUNS,
        };
        let cfg = self.config.clone();
        for job in &mut self.jobs {
            let name = job.name.as_str();
            job.kind = JOB_KIND.get_for(&cfg, name, job.kind)?;
            if let Some(ms) = JOB_INTERVAL_MS.get_opt_for(&cfg, name)? {
                job.interval = Duration::from_millis(ms);
            }
            if let Some(runs) = JOB_RUNS.get_opt_for(&cfg, name)? {
                job.runs = (runs > 0).then_some(runs);
            }
            if let Some(n) = JOB_MAX_IN_FLIGHT.get_opt_for(&cfg, name)? {
                job.max_in_flight = n;
            }
            if let Some(ms) = JOB_LATENCY_TARGET_MS.get_opt_for(&cfg, name)? {
                job.latency_target = Some(Duration::from_millis(ms));
            }
        }
        Ok(())
    }

    /// Indices of the jobs whose stages read receiver `index` (at most one in a built app).
    pub fn receiver_readers(&self, index: u32) -> impl Iterator<Item = usize> + '_ {
        self.jobs
            .iter()
            .enumerate()
            .filter(move |(_, j)| j.stages.iter().any(|s| s.receivers.contains(&index)))
            .map(|(i, _)| i)
    }

    /// Every receiver is read by at most one job: a cut belongs to one job's run (two jobs would
    /// split the lines between them, arbitrarily).
    fn check_receivers(&self) -> Result<()> {
        for (i, r) in self.receivers.iter().enumerate() {
            let readers: Vec<&str> = self
                .receiver_readers(i as u32)
                .map(|j| self.jobs[j].name.as_str())
                .collect();
            if readers.len() > 1 {
                return Err(Error::Definition(format!(
                    "socket source `{}` is read by jobs {}: declare one source per job",
                    r.name,
                    readers.join(" and ")
                )));
            }
        }
        Ok(())
    }

    /// Index of the job called `name`.
    pub fn job_index(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.name == name)
    }
}

/// Builds an app's jobs from its config. Its own errors go in [`Error::User`]
/// ([`Error::user`]); config and source errors convert with `?`.
pub type AppFn = fn(&mut App) -> Result<()>;

/// An app registered by name in a binary.
#[derive(Debug, Clone, Copy)]
pub struct AppEntry {
    /// Name used with `--app`.
    pub name: &'static str,
    /// One line for `neptune apps` and `--help`.
    pub description: &'static str,
    /// The builder.
    pub build: AppFn,
}

/// Why an app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No app of that name is registered in this binary.
    #[error("unknown app `{name}` (known: {known})")]
    UnknownApp {
        /// The name asked for.
        name: String,
        /// Registered names.
        known: String,
    },
    /// The app's builder (or the check of what it built) failed.
    #[error("app `{app}`: {source}")]
    App {
        /// The app.
        app: String,
        /// Why (boxed: it is the rare path, and keeps `Result<App, BuildError>` small).
        #[source]
        source: Box<Error>,
    },
    /// A per-job override has a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Build app `name` from `entries` with `config` (per-job overrides applied).
///
/// # Errors
/// [`BuildError`] naming the unknown app, or the config key at fault.
pub fn build_app(entries: &[AppEntry], name: &str, config: Arc<Config>) -> Result<App, BuildError> {
    let entry = entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| BuildError::UnknownApp {
            name: name.to_string(),
            known: entries
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let mut app = App::new(name, config);
    // Passing arguments to an app that reads none is not a typo worth failing on.
    app.config.raw(ARGS_KEY);
    (entry.build)(&mut app).map_err(|e| BuildError::App {
        app: name.to_string(),
        source: Box::new(e),
    })?;
    app.apply_overrides()?;
    app.check_receivers().map_err(|e| BuildError::App {
        app: name.to_string(),
        source: Box::new(e),
    })?;
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;

    fn demo(app: &mut App) -> Result<()> {
        static N: neptune_config::UInt =
            neptune_config::UInt::new(neptune_config::Meta::new("n", "records"), 0, 1000)
                .default(10);
        let n = N.get(app.config())?;
        let model = app.state("model", 0u64);
        let ds = Dataset::from_fn(2, move |_| Box::new(0..n));
        let m = model.clone();
        app.batch("train", ds.count()).on_result(move |ctx, count| {
            m.publish(ctx, &count)?;
            Ok(())
        });
        app.stream("score", Dataset::from_fn(1, |_| Box::new(0..1u64)).count());
        Ok(())
    }

    const APPS: &[AppEntry] = &[AppEntry {
        name: "demo",
        description: "test",
        build: demo,
    }];

    #[test]
    fn config_overrides_job_kind_and_interval() {
        let cfg =
            Config::from_args(&["jobs.score.kind=batch", "jobs.train.interval_ms=50"]).unwrap();
        let app = build_app(APPS, "demo", Arc::new(cfg)).unwrap();
        assert_eq!(app.jobs()[1].kind, JobKind::Batch);
        assert_eq!(app.jobs()[0].interval, Duration::from_millis(50));
    }

    #[test]
    fn a_task_memory_demand_larger_than_the_budget_names_its_key() {
        let mut app = App::new("m", Arc::new(Config::from_args(&["buf_mb=2048"]).unwrap()));
        app.require_task_memory("buf_mb", 2 << 30);
        app.require_task_memory("other", 1 << 20);
        assert!(app.check_memory(4 << 30).is_ok());
        let e = app.check_memory(1 << 30).unwrap_err().to_string();
        assert!(
            e.contains("`buf_mb`") && e.contains("2Gi") && e.contains("1Gi"),
            "{e}"
        );
    }

    #[test]
    fn bad_override_names_the_key() {
        let cfg = Config::from_args(&["jobs.score.kind=sometimes"]).unwrap();
        let e = build_app(APPS, "demo", Arc::new(cfg))
            .unwrap_err()
            .to_string();
        assert!(e.contains("jobs.score.kind"), "{e}");
    }

    #[test]
    fn app_args_round_trip_through_the_config() {
        let mut cfg = Config::default();
        cfg.set(ARGS_KEY, r#"["--model-dir","/tmp/m"]"#);
        let app = build_app(APPS, "demo", Arc::new(cfg)).unwrap();
        assert_eq!(app.args().unwrap(), vec!["--model-dir", "/tmp/m"]);
        assert!(app.config().check_all_used().is_ok());
    }

    fn two_readers(app: &mut App) -> Result<()> {
        let lines = app.socket_lines("events", "localhost:9999", 2)?;
        app.stream("a", lines.count());
        app.stream("b", lines.map(|l| l.len()).count());
        Ok(())
    }

    #[test]
    fn a_socket_source_read_by_two_jobs_is_refused_naming_both() {
        let apps = [AppEntry {
            name: "two",
            description: "test",
            build: two_readers,
        }];
        let e = build_app(&apps, "two", Arc::new(Config::default()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`events`") && e.contains("a and b"), "{e}");
    }

    #[test]
    fn socket_sources_are_recorded_on_the_stages_that_read_them() {
        let mut app = App::new("t", Arc::new(Config::default()));
        let lines = app.socket_lines("events", "localhost:9999", 3).unwrap();
        assert!(app.socket_lines("events", "localhost:1", 1).is_err());
        assert!(app.socket_lines("other", "nohost", 1).is_err());
        let words = lines.flat_map(|l| vec![(l, 1u64)]);
        app.stream("count", words.reduce_by_key(2, |a, b| a + b).count());
        let stages = &app.jobs()[0].stages;
        assert_eq!(stages.len(), 2);
        assert_eq!(
            stages[0].receivers,
            vec![0],
            "the map stage reads the socket"
        );
        assert!(stages[1].receivers.is_empty());
        assert_eq!(app.receivers()[0].partitions, 3);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("model store is read-only")]
    struct ReadOnly;

    #[test]
    fn an_on_result_error_fails_the_commit_with_the_apps_own_error() {
        let mut app = App::new("t", Arc::new(Config::default()));
        app.batch("train", Dataset::from_fn(1, |_| Box::new(0..3u64)).count())
            .on_result(|_, n| if n > 2 { Err(ReadOnly.into()) } else { Ok(()) });
        let b = Broadcasts::default();
        let mut ctx = CommitCtx::new(0, 3, &b);
        let parts = vec![postcard::to_stdvec(&3u64).unwrap()];
        let e = (app.jobs()[0].commit)(&mut ctx, parts).unwrap_err();
        assert_eq!(e.to_string(), "model store is read-only");
        assert!(matches!(&e, Error::User(u) if u.is::<ReadOnly>()));
    }

    fn missing_input(app: &mut App) -> Result<()> {
        let lines = crate::source::text_files("/nonexistent/neptune-input/*.txt")?;
        app.batch("count", lines.count());
        Ok(())
    }

    #[test]
    fn a_builder_error_keeps_its_variant_under_the_app_name() {
        let apps = [AppEntry {
            name: "wc",
            description: "test",
            build: missing_input,
        }];
        let e = build_app(&apps, "wc", Arc::new(Config::default())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "app `wc`: input `/nonexistent/neptune-input/*.txt` matches no files"
        );
        assert!(
            matches!(&e, BuildError::App { source, .. } if matches!(**source, Error::NoInput { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_app_lists_known_ones() {
        let e = build_app(APPS, "nope", Arc::new(Config::default()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("demo"), "{e}");
    }

    #[test]
    fn commit_publishes_state_versions() {
        let app = build_app(APPS, "demo", Arc::new(Config::default())).unwrap();
        let job = &app.jobs()[0];
        let b = Broadcasts::default();
        let parts = vec![
            postcard::to_stdvec(&10u64).unwrap(),
            postcard::to_stdvec(&10u64).unwrap(),
        ];
        let mut ctx = CommitCtx::new(0, 20, &b);
        let v = (job.commit)(&mut ctx, parts).unwrap();
        assert_eq!(v, serde_json::json!(20));
        assert_eq!(ctx.published(), &[("model".to_string(), 1)]);
        assert_eq!(*b.get::<u64>("model").unwrap().unwrap().1, 20);
    }
}
