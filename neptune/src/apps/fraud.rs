//! `fraud-detection`: the seed paper's example. A batch job (`train`) retrains a logistic-regression
//! model over a generated history of transactions, epoch after epoch (one full-batch gradient step
//! per epoch); a stream job (`score`) scores each micro-batch of generated transactions with the
//! latest model version and emits alerts. The model is shared state: `train` publishes a new
//! version after every epoch, executors receive each version once, `score` tasks read it.
//!
//! Keys: see the settings below (`neptune config --app fraud-detection`, `docs/config.md`).

use neptune_core::config::keys::JOB_INTERVAL_MS;
use neptune_core::config::{Float, Meta, Text, UInt};
use neptune_core::source::{Rng, generate, records_per_micro_batch};
use neptune_core::{App, Dataset};
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
            |(v, model), t| Alert {
                id: t.id,
                score: model.score(&t.features),
                model_version: *v,
                fraud: t.fraud,
            },
        )
        .filter(move |a| a.score >= threshold);
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

    /// Run one run of job `j` in-process (no executor) against `b`.
    fn run_job(app: &App, j: usize, run: u64, b: &Arc<Broadcasts>) -> serde_json::Value {
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
                let ctx = TaskContext::new(
                    id,
                    0,
                    JobKind::Batch,
                    Arc::new(Default::default()),
                    Arc::new(neptune_core::task::NoSuspend),
                    b.clone(),
                );
                (stage.run_task)(&ctx).unwrap()
            })
            .collect();
        let mut ctx = CommitCtx::new(run, 0, b);
        (job.commit)(&mut ctx, parts).unwrap()
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
