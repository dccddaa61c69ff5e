//! The event loop's side of a stream job's latency target: after each committed micro-batch,
//! bring the job's SLO counters on `/metrics` up to its statistics and, under the SLO-aware
//! mode (`scheduler.slo_aware`), tell the scheduler the job's recent p99 so it can hold cores
//! back from batch work (see `crate::scheduler`, "SLO-aware mode").

use super::EventLoop;
use crate::scheduler::Event;

impl EventLoop {
    /// Stream job `job` committed a micro-batch.
    pub(super) fn stream_committed(&mut self, job: u32) {
        let j = job as usize;
        let name = self.app.jobs()[j].name.clone();
        let lat = &self.jobs.stats(j).latency;
        let (Some(target), Some(within)) = (lat.target(), lat.slo_within()) else {
            return;
        };
        self.metrics.set_slo_counts(&name, lat.steady_len(), within);
        if !self.scheduler.config().slo_aware {
            return;
        }
        let at = self
            .now()
            .saturating_sub(self.jobs.started_at().unwrap_or_default());
        let window = self.scheduler.config().slo_window;
        let Some(recent_p99) = lat.recent_p99(at, window) else {
            return;
        };
        self.schedule(Event::StreamLatency {
            job,
            recent_p99,
            target,
        });
        let guarded = self.scheduler.slo_guarded(job);
        self.metrics
            .stream_slo_guard
            .with_label_values(&[&name])
            .set(i64::from(guarded));
    }
}
