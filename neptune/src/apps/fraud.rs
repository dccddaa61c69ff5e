//! `fraud-detection`: the seed paper's example. A batch job (`train`) retrains a logistic-regression
//! model over a generated history of transactions, epoch after epoch (one full-batch gradient step
//! per epoch); a stream job (`score`) scores each micro-batch of generated transactions with the
//! latest model version and emits alerts. The model is shared state: `train` publishes a new
//! version after every epoch, executors receive each version once, `score` tasks read it.
//!
//! With `source=kafka`, `score` reads transactions from `kafka.topic` instead — one JSON object
//! per record value, `{"id": 7, "features": [8 numbers], "fraud": false}` (`fraud`, the ground
//! truth when known, may be left out; other fields are ignored; see [`parse_transaction`]) — and,
//! with `kafka.sink.topic`, writes its alerts there (key: the transaction id, value: the alert as
//! JSON), exactly once per micro-batch (`neptune_core::kafka::sink`). The generator stays the
//! default, so the one-command start needs no broker. `train` still learns from the generated
//! history.
//!
//! **The model is pinned per micro-batch in Kafka mode.** The sink's exactly-once needs a
//! micro-batch's output to be the same in every attempt, so every task of a micro-batch — a
//! retried one, one recomputed after its executor died — must score with the same model. `score`
//! does not read the trained model (`model`, which `train` publishes after every epoch, so a
//! retry could see a newer one) but a copy of it, `score-model` ([`Pinned`]), which only
//! `score`'s own commits publish: when a micro-batch that read records (`CommitCtx::records`,
//! which the Kafka reader counts) commits, the newest trained model becomes the pinned one, for
//! the micro-batches after it. A Kafka source keeps one
//! micro-batch with records in flight and commits in order, and executors receive a version
//! before any task launched after it, so from its first task to its commit a micro-batch with
//! records sees one `score-model` version: nothing else publishes it meanwhile (runs without
//! records may commit then; they do not publish). With `kafka.checkpoint`, the pin is durable:
//! the driver logs the job's shared state with each plan and commit, and a restarted driver
//! restores it before any task runs (`neptune_core::kafka::checkpoint`), so a micro-batch run
//! again after a *driver* restart scores with the model its first attempt used. The pin only
//! moves forward (a newer training epoch): a restarted `train` starts over, and the restored pin
//! stays until training passes it.
//!
//! Keys: see the settings below (`neptune config --app fraud-detection`, `docs/config.md`).

use neptune_core::config::keys::JOB_INTERVAL_MS;
use neptune_core::config::{Choice, Float, Meta, Text, UInt};
use neptune_core::kafka::{self, KafkaRecord};
use neptune_core::source::{Malformed, Rng, generate, records_per_micro_batch};
use neptune_core::{App, Dataset, TaskContext};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Seed of the generated history and transactions.
pub static SEED: UInt = UInt::new(
    Meta::new("seed", "Seed of the generated history and transactions."),
    0,
    u64::MAX,
)
.default(7);
/// History partitions.
pub static HISTORY_PARTITIONS: UInt = UInt::new(
    Meta::new(
        "history.partitions",
        "Partitions (batch tasks) of the training history.",
    ),
    1,
    100_000,
)
.default(8);
/// History records per partition.
pub static HISTORY_RECORDS: UInt = UInt::new(
    Meta::new("history.records", "Transactions per history partition."),
    1,
    u64::MAX,
)
.default(400_000);
/// Learning rate.
pub static LEARNING_RATE: Float = Float::new(
    Meta::new(
        "train.learning_rate",
        "Step size of each epoch's gradient step.",
    ),
    2.0,
    1e-9,
    1e9,
);
/// Stream partitions.
pub static SCORE_PARTITIONS: UInt = UInt::new(
    Meta::new(
        "score.partitions",
        "Tasks per micro-batch of the stream job `score`.",
    ),
    1,
    100_000,
)
.default(2);
/// Stream rate.
pub static SCORE_RATE: UInt = UInt::new(
    Meta::new("score.rate", "Transactions per second scored by `score`."),
    1,
    u64::MAX,
)
.default(5_000);
/// Alert threshold.
pub static SCORE_THRESHOLD: Float = Float::new(
    Meta::new(
        "score.threshold",
        "Fraud probability at or above which a transaction raises an alert.",
    ),
    0.8,
    0.0,
    1.0,
);
/// Alerts directory.
pub static ALERTS: Text = Text::new(Meta::new(
    "alerts",
    "Directory to write alerts to (default: collected to the driver and counted).",
));

pub use super::Source;

/// Transactions' source.
pub static SOURCE: Choice<Source> = Choice::new(
    Meta::new(
        "source",
        "Where `score` reads transactions: `generator` (seeded, `score.rate` per second) or `kafka` (one JSON transaction per record of `kafka.topic`; alerts to `kafka.sink.topic` when set).",
    ),
    Source::Generator,
);
/// Records that are not transactions.
pub static MALFORMED: Choice<Malformed> = Choice::new(
    Meta::new(
        "input.malformed",
        "What a Kafka record that is not a transaction does (`source=kafka`): fail the job naming topic, partition and offset, or be skipped and counted.",
    ),
    Malformed::Fail,
);

/// Default micro-batch interval of `score`.
const SCORE_INTERVAL_MS: u64 = 500;

/// Features per transaction.
pub const FEATURES: usize = 8;

/// The weights fraud is generated from (the model should learn something close to them).
const TRUE_WEIGHTS: [f64; FEATURES + 1] = [-4.0, 2.5, -1.0, 1.5, 0.0, 3.0, -2.0, 0.5, 1.0];

/// A card transaction: features scaled to about [-1, 1], and whether it was fraud.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transaction {
    /// Transaction id (run × records + index).
    pub id: u64,
    /// Scaled features: amount, hour, merchant risk, distance, velocity, ...
    pub features: [f64; FEATURES],
    /// Ground truth (known for history; for live transactions, used to count true alerts).
    pub fraud: bool,
}

/// Logistic-regression weights (bias first) and the epoch they come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Model {
    /// Bias followed by one weight per feature.
    pub weights: Vec<f64>,
    /// Training epochs folded in.
    pub epoch: u64,
}

impl Model {
    /// Probability of fraud.
    pub fn score(&self, f: &[f64; FEATURES]) -> f64 {
        let z = self.weights[0]
            + f.iter()
                .zip(&self.weights[1..])
                .map(|(x, w)| x * w)
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}

fn transaction(rng: &mut Rng, id: u64) -> Transaction {
    let mut features = [0.0; FEATURES];
    for f in &mut features {
        *f = rng.random_range(-1.0..1.0);
    }
    let z = TRUE_WEIGHTS[0]
        + features
            .iter()
            .zip(&TRUE_WEIGHTS[1..])
            .map(|(x, w)| x * w)
            .sum::<f64>();
    let p = 1.0 / (1.0 + (-z).exp());
    Transaction {
        id,
        features,
        fraud: rng.random_bool(p),
    }
}

/// Per-partition gradient of the log loss, plus loss and count.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Gradient {
    /// Sum of per-record gradients (bias first).
    pub sum: Vec<f64>,
    /// Sum of per-record log losses.
    pub loss: f64,
    /// Records.
    pub n: u64,
}

impl Gradient {
    fn add(mut self, o: Gradient) -> Gradient {
        if self.sum.is_empty() {
            return o;
        }
        for (a, b) in self.sum.iter_mut().zip(o.sum) {
            *a += b;
        }
        self.loss += o.loss;
        self.n += o.n;
        self
    }
}

/// An alert raised by the stream job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    /// Transaction id.
    pub id: u64,
    /// Fraud probability.
    pub score: f64,
    /// Model version used.
    pub model_version: u64,
    /// Whether the transaction really was fraud.
    pub fraud: bool,
}

/// The model `score` uses in Kafka mode: a copy of a trained model, pinned when a micro-batch
/// with records commits (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pinned {
    /// The trained model.
    pub model: Model,
    /// Its version of shared state `model` (0: the untrained initial model).
    pub version: u64,
}

/// A transaction as a Kafka record carries it.
#[derive(Deserialize)]
struct Wire {
    id: u64,
    features: Vec<f64>,
    #[serde(default)]
    fraud: bool,
}

/// The transaction in a record value: a JSON object with `id` (an unsigned integer), `features`
/// ([`FEATURES`] numbers) and optionally `fraud` (default `false`); other fields are ignored.
///
/// # Errors
/// Why the value is not a transaction.
pub fn parse_transaction(value: &[u8]) -> Result<Transaction, String> {
    let w: Wire = serde_json::from_slice(value)
        .map_err(|e| format!("not a transaction (JSON with `id` and `features`): {e}"))?;
    let n = w.features.len();
    let features: [f64; FEATURES] = w
        .features
        .try_into()
        .map_err(|_| format!("`features` has {n} values, expected {FEATURES}"))?;
    Ok(Transaction {
        id: w.id,
        features,
        fraud: w.fraud,
    })
}

/// The alert `model` (version `version`) raises for `t`: one when `t` scores at or above
/// `threshold`. Both sources score with it.
pub fn alert(model: &Model, version: u64, threshold: f64, t: Transaction) -> Option<Alert> {
    let score = model.score(&t.features);
    (score >= threshold).then_some(Alert {
        id: t.id,
        score,
        model_version: version,
        fraud: t.fraud,
    })
}

/// The alerts `model` (version `version`) raises for `transactions` ([`alert`]).
pub fn alerts_of(
    model: &Model,
    version: u64,
    threshold: f64,
    transactions: impl IntoIterator<Item = Transaction>,
) -> Vec<Alert> {
    transactions
        .into_iter()
        .filter_map(|t| alert(model, version, threshold, t))
        .collect()
}

/// A Kafka record's transaction; `None` (after applying `policy`, naming topic, partition and
/// offset) when it is not one.
fn record_transaction(
    ctx: &TaskContext,
    topic: &str,
    policy: Malformed,
    r: KafkaRecord,
) -> Option<Transaction> {
    match parse_transaction(&r.value) {
        Ok(t) => Some(t),
        Err(e) => {
            let reason = format!(
                "Kafka record {topic}/{} at offset {}: {e}",
                r.partition, r.offset
            );
            policy.handle(ctx, neptune_core::Error::user(reason));
            None
        }
    }
}

/// Build the fraud-detection app.
///
/// # Errors
/// [`neptune_core::Error::Config`] naming the config key with a bad value.
pub fn build(app: &mut App) -> neptune_core::Result<()> {
    let c = app.config();
    let seed = SEED.get(c)?;
    let parts = HISTORY_PARTITIONS.get(c)? as u32;
    let per_part = HISTORY_RECORDS.get(c)?;
    let lr = LEARNING_RATE.get(c)?;
    let score_parts = SCORE_PARTITIONS.get(c)? as u32;
    let rate = SCORE_RATE.get(c)?;
    let threshold = SCORE_THRESHOLD.get(c)?;
    let interval_ms = JOB_INTERVAL_MS
        .get_opt_for(c, "score")?
        .unwrap_or(SCORE_INTERVAL_MS);
    let alerts_dir = ALERTS.get_opt(c)?;
    let source = SOURCE.get(c)?;
    let policy = MALFORMED.get(c)?;
    // Read in either mode, so the reference lists the Kafka keys; their errors count in Kafka
    // mode only.
    let kafka_cfg = kafka::source::SourceConfig::from_config("transactions", c, score_parts);
    let sink = kafka::sink::SinkConfig::from_config("alerts", c);

    let model = app.state(
        "model",
        Model {
            weights: vec![0.0; FEATURES + 1],
            epoch: 0,
        },
    );

    // Batch: one full-batch gradient step per epoch over the (fixed, seeded) history.
    let history = generate(
        parts,
        seed,
        move |_, _| per_part,
        move |rng, _, i| transaction(rng, i),
    );
    let m = model.clone();
    let grads: Dataset<Gradient> = history.map_partitions(move |ctx, it| {
        let (_, w) = m.get(ctx);
        let mut g = Gradient {
            sum: vec![0.0; FEATURES + 1],
            loss: 0.0,
            n: 0,
        };
        for t in it {
            let p = w.score(&t.features).clamp(1e-9, 1.0 - 1e-9);
            let y = if t.fraud { 1.0 } else { 0.0 };
            let err = p - y;
            g.sum[0] += err;
            for (gi, x) in g.sum[1..].iter_mut().zip(&t.features) {
                *gi += err * x;
            }
            g.loss -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
            g.n += 1;
        }
        vec![g]
    });
    let m = model.clone();
    app.batch("train", grads.reduce(Gradient::add))
        .on_result(move |ctx, g| {
            let Some(g) = g else { return Ok(()) };
            let (_, cur) = m.latest(ctx);
            let n = g.n.max(1) as f64;
            let weights = cur
                .weights
                .iter()
                .zip(&g.sum)
                .map(|(w, d)| w - lr * d / n)
                .collect();
            let next = Model {
                weights,
                epoch: cur.epoch + 1,
            };
            let v = m.publish(ctx, &next)?;
            tracing::debug!(
                epoch = next.epoch,
                version = v,
                loss = g.loss / n,
                "model retrained"
            );
            Ok(())
        });

    if source == Source::Kafka {
        let kafka_cfg = kafka_cfg?;
        let sink = sink?;
        if sink.is_some() && alerts_dir.is_some() {
            return Err(
                "set `alerts` (files) or `kafka.sink.topic` (a Kafka topic), not both".into(),
            );
        }
        let topic = kafka_cfg.topic.clone();
        let transactions = app.kafka_source(kafka_cfg)?.records();
        let pinned = app.state(
            "score-model",
            Pinned {
                model: Model {
                    weights: vec![0.0; FEATURES + 1],
                    epoch: 0,
                },
                version: 0,
            },
        );
        let p = pinned.clone();
        let alerts = transactions.map_partitions(move |ctx, it| {
            let (_, pin) = p.get(ctx);
            let txs = it.filter_map(|r| record_transaction(ctx, &topic, policy, r));
            alerts_of(&pin.model, pin.version, threshold, txs)
        });
        let action = match (sink, alerts_dir) {
            (Some(sink), _) => alerts.write_kafka(sink, |a| {
                (
                    Some(a.id.to_string().into_bytes()),
                    serde_json::to_vec(a).unwrap_or_default(),
                )
            }),
            (None, Some(dir)) => {
                alerts.write_lines(dir, |a| serde_json::to_string(a).unwrap_or_default())
            }
            (None, None) => alerts.count(),
        };
        let m = model.clone();
        app.stream("score", action)
            .on_result(move |ctx, _| {
                // Only a micro-batch that read records moves the pin (see the module docs).
                if ctx.records == 0 {
                    return Ok(());
                }
                // Forward only: a pin restored after a driver restart (trained further than
                // the restarted `train` has got yet) stays until training passes it.
                let (version, trained) = m.latest(ctx);
                if trained.epoch > pinned.latest(ctx).1.model.epoch {
                    let next = Pinned {
                        model: (*trained).clone(),
                        version,
                    };
                    pinned.publish(ctx, &next)?;
                }
                Ok(())
            })
            .interval(Duration::from_millis(interval_ms));
        return Ok(());
    }

    // Stream: score live transactions with the latest model.
    let per_batch = records_per_micro_batch(rate, Duration::from_millis(interval_ms), score_parts);
    let live = generate(
        score_parts,
        seed ^ 0xF00D,
        move |_, _| per_batch,
        move |rng, run, i| transaction(rng, run * 1_000_000_000 + i),
    );
    let m = model.clone();
    let alerts = live
        .map_with(
            move |ctx| m.get(ctx),
            move |(v, model), t| alert(model, *v, threshold, t),
        )
        .flat_map(|a| a);
    let job = match alerts_dir {
        Some(dir) => app.stream(
            "score",
            alerts.write_lines(dir, |a| serde_json::to_string(a).unwrap_or_default()),
        ),
        None => {
            let total = Arc::new(AtomicU64::new(0));
            app.stream("score", alerts.map(|a| u64::from(a.fraud)).count())
                .on_result(move |_, n| {
                    total.fetch_add(n, Ordering::Relaxed);
                    Ok(())
                })
        }
    };
    job.interval(Duration::from_millis(interval_ms));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use neptune_core::app::{CommitCtx, build_app};
    use neptune_core::config::Config;
    use neptune_core::state::Broadcasts;
    use neptune_core::{JobKind, TaskContext, TaskId};

    /// Run one run of job `j` in-process (no executor), each task in the context `ctx` makes
    /// for it, and commit the results against `b` as a run that read `records` records; the
    /// run's result.
    fn run_and_commit(
        app: &App,
        j: usize,
        run: u64,
        records: u64,
        b: &Arc<Broadcasts>,
        ctx: impl Fn(TaskId) -> TaskContext,
    ) -> serde_json::Value {
        let job = &app.jobs()[j];
        let stage = &job.stages[0];
        let parts = (0..stage.partitions)
            .map(|p| {
                let id = TaskId {
                    job: j as u32,
                    run,
                    stage: 0,
                    partition: p,
                };
                (stage.run_task)(&ctx(id)).unwrap()
            })
            .collect();
        let mut commit = CommitCtx::new(run, records, b);
        (job.commit)(&mut commit, parts).unwrap()
    }

    /// Run one run of job `j` in-process against `b`, its tasks reading shared state from `b`.
    fn run_job(app: &App, j: usize, run: u64, b: &Arc<Broadcasts>) -> serde_json::Value {
        run_and_commit(app, j, run, 0, b, |id| {
            TaskContext::new(
                id,
                0,
                JobKind::Batch,
                Arc::new(Default::default()),
                Arc::new(neptune_core::task::NoSuspend),
                b.clone(),
            )
        })
    }

    /// Commit run `run` of job `j` as if its tasks had read `records` records (task results from
    /// running them in-process, detached).
    fn commit_with(app: &App, j: usize, run: u64, records: u64, b: &Arc<Broadcasts>) {
        run_and_commit(app, j, run, records, b, |id| {
            TaskContext::detached(id, JobKind::Stream)
        });
    }

    #[test]
    fn transactions_parse_from_json_records() {
        let t = parse_transaction(
            br#"{"id": 42, "features": [1, 0.5, -1, 0, 0, 0.25, 0, 1], "fraud": true, "x": 1}"#,
        )
        .unwrap();
        assert_eq!(t.id, 42);
        assert_eq!(t.features, [1.0, 0.5, -1.0, 0.0, 0.0, 0.25, 0.0, 1.0]);
        assert!(t.fraud);
        let t = parse_transaction(br#"{"id": 1, "features": [0,0,0,0,0,0,0,0]}"#).unwrap();
        assert!(!t.fraud, "ground truth unknown: not fraud");
        for (bad, says) in [
            (&b"hello"[..], "not a transaction"),
            (br#"{"features": [0,0,0,0,0,0,0,0]}"#, "id"),
            (
                br#"{"id": -3, "features": [0,0,0,0,0,0,0,0]}"#,
                "not a transaction",
            ),
            (
                br#"{"id": 1, "features": [0, 1]}"#,
                "has 2 values, expected 8",
            ),
            (
                br#"{"id": 1, "features": [0,0,0,0,0,0,0,"x"]}"#,
                "not a transaction",
            ),
        ] {
            let e = parse_transaction(bad).unwrap_err();
            assert!(e.contains(says), "{}: {e}", String::from_utf8_lossy(bad));
        }
        // What the generator makes round-trips through the wire format.
        let mut rng = <Rng as rand::SeedableRng>::seed_from_u64(7);
        let t = transaction(&mut rng, 9);
        assert_eq!(
            parse_transaction(&serde_json::to_vec(&t).unwrap()).unwrap(),
            t
        );
    }

    #[test]
    fn alerts_are_the_transactions_scored_at_or_above_the_threshold() {
        // Bias 0, weight 4 on the first feature: p = 1/(1+e^-4x).
        let mut weights = vec![0.0; FEATURES + 1];
        weights[1] = 4.0;
        let model = Model { weights, epoch: 3 };
        let tx = |id, x: f64| {
            let mut features = [0.0; FEATURES];
            features[0] = x;
            Transaction {
                id,
                features,
                fraud: id == 2,
            }
        };
        let txs = vec![tx(1, -1.0), tx(2, 1.0), tx(3, 0.0), tx(4, 0.5)];
        let alerts = alerts_of(&model, 5, 0.5, txs.clone());
        assert_eq!(
            alerts.iter().map(|a| a.id).collect::<Vec<_>>(),
            [2, 3, 4],
            "0.5 itself alerts"
        );
        assert!(alerts.iter().all(|a| a.model_version == 5));
        assert!(alerts[0].fraud && !alerts[1].fraud);
        assert!((alerts[0].score - 1.0 / (1.0 + (-4.0f64).exp())).abs() < 1e-12);
        assert_eq!(
            alerts_of(&model, 5, 0.9, txs)
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>(),
            [2]
        );
    }

    #[test]
    fn kafka_mode_pins_the_model_at_commits_of_micro_batches_with_records() {
        let cfg = Config::from_args(&[
            "history.partitions=2",
            "history.records=500",
            "source=kafka",
            "kafka.bootstrap=127.0.0.1:9",
            "kafka.topic=transactions",
        ])
        .unwrap();
        let app = build_app(crate::apps::BUILTIN, "fraud-detection", Arc::new(cfg)).unwrap();
        assert_eq!(app.kafka_sources().len(), 1);
        let b = Arc::new(Broadcasts::default());
        let pin = || b.get::<Pinned>("score-model").unwrap();
        for run in 0..2 {
            run_job(&app, 0, run, &b);
        }
        assert_eq!(b.version("model"), Some(2));
        // A micro-batch without records moves nothing.
        commit_with(&app, 1, 0, 0, &b);
        assert_eq!(pin(), None, "still the untrained initial model");
        // One with records pins the newest trained model for the micro-batches after it.
        commit_with(&app, 1, 1, 10, &b);
        let (v, p) = pin().unwrap();
        assert_eq!((v, p.version), (1, 2));
        assert_eq!(p.model, *b.get::<Model>("model").unwrap().unwrap().1);
        // Training goes on; the pin stays until the next micro-batch with records commits.
        run_job(&app, 0, 2, &b);
        commit_with(&app, 1, 2, 0, &b);
        assert_eq!(pin().unwrap().1.version, 2);
        commit_with(&app, 1, 3, 7, &b);
        assert_eq!(pin().unwrap().0, 2);
        assert_eq!(pin().unwrap().1.version, 3);
        // Nothing new trained: no new version of the pin.
        commit_with(&app, 1, 4, 7, &b);
        assert_eq!(pin().unwrap().0, 2);

        // A driver restarted on the same checkpoint: the pin (trained to epoch 40) is restored,
        // training starts over; the pin stays until training passes it.
        let b = Arc::new(Broadcasts::default());
        let pin = || b.get::<Pinned>("score-model").unwrap();
        let restored = Pinned {
            model: Model {
                weights: vec![0.5; FEATURES + 1],
                epoch: 40,
            },
            version: 40,
        };
        b.put("score-model", 9, postcard::to_stdvec(&restored).unwrap());
        for run in 0..2 {
            run_job(&app, 0, run, &b);
        }
        commit_with(&app, 1, 0, 10, &b);
        assert_eq!(pin().unwrap(), (9, Arc::new(restored)));
    }

    #[test]
    fn kafka_mode_is_refused_without_its_keys() {
        let build = |args: &[&str]| {
            let cfg = Config::from_args(args).unwrap();
            build_app(crate::apps::BUILTIN, "fraud-detection", Arc::new(cfg))
                .err()
                .map(|e| e.to_string())
        };
        let e = build(&["source=kafka"]).unwrap();
        assert!(e.contains("kafka.bootstrap"), "{e}");
        let e = build(&["source=kafka", "kafka.bootstrap=b:9092"]).unwrap();
        assert!(e.contains("kafka.topic"), "{e}");
        let e = build(&[
            "source=kafka",
            "kafka.bootstrap=b:9092",
            "kafka.topic=t",
            "kafka.sink.topic=alerts",
            "alerts=/tmp/x",
        ])
        .unwrap();
        assert!(e.contains("not both"), "{e}");
        let e = build(&["source=files"]).unwrap();
        assert!(e.contains("generator, kafka"), "{e}");
        assert!(build(&[]).is_none(), "the generator needs no keys");
    }

    #[test]
    fn training_publishes_models_that_reduce_the_loss() {
        let cfg = Config::from_args(&["history.partitions=2", "history.records=2000"]).unwrap();
        let app = build_app(crate::apps::BUILTIN, "fraud-detection", Arc::new(cfg)).unwrap();
        let b = Arc::new(Broadcasts::default());
        let first = run_job(&app, 0, 0, &b);
        for run in 1..30 {
            run_job(&app, 0, run, &b);
        }
        let last = run_job(&app, 0, 30, &b);
        let loss = |v: &serde_json::Value| v["loss"].as_f64().unwrap() / v["n"].as_f64().unwrap();
        assert!(loss(&last) < loss(&first) * 0.8, "{first} -> {last}");
        assert_eq!(b.get::<Model>("model").unwrap().unwrap().1.epoch, 31);
        let alerts = run_job(&app, 1, 0, &b);
        assert!(alerts.as_u64().is_some());
    }
}
