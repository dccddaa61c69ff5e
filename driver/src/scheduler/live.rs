//! Live scheduling changes: a running driver applies new values of the settings marked live
//! (`scheduler.policy`, `scheduler.placement`, `scheduler.max_suspensions`,
//! `scheduler.quantum_ms`) without restarting anything.
//!
//! What a change does to work in flight: queued tasks keep their order (a switch to `fifo` merges
//! the two lanes, stream tasks first; a switch away splits them); running and suspended tasks stay
//! where they are (a switch to `fifo` or `fair` leaves suspended tasks to resume when a core frees,
//! as under those policies); executors are re-ranked for the new placement. `static` is not a live
//! target or source: its executor pools are fixed as executors register, so switching to or from it
//! needs a restart.

use super::Scheduler;
use super::config::{Policy, SchedulerConfig};
use super::queues::Lanes;
use neptune_config::{ConfigError, keys};

impl Scheduler {
    /// Applies `changes` (`key`, `value`) atomically: all of them, or none when one is refused.
    /// The caller then lets the scheduler dispatch (e.g. with [`Event::Tick`](super::Event)),
    /// since a new policy may start or preempt tasks at once.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key: a value out of range, a setting that is not live,
    /// or a switch to or from `static`; [`ConfigError::Unknown`] for an unknown key.
    pub fn reconfigure(&mut self, changes: &[(String, String)]) -> Result<(), ConfigError> {
        let mut next = self.cfg.clone();
        for (key, value) in changes {
            match keys::engine_setting(key) {
                Some(s) if s.meta().live => {}
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        key: key.clone(),
                        value: value.clone(),
                        reason: "is not applied to a running app; restart it to change this".into(),
                    });
                }
                None => {
                    return Err(ConfigError::Unknown(vec![neptune_config::UnknownKey {
                        key: key.clone(),
                        suggestion: None,
                    }]));
                }
            }
            next.set(key, value)?;
        }
        if next.policy != self.cfg.policy
            && (next.policy == Policy::Static || self.cfg.policy == Policy::Static)
        {
            return Err(ConfigError::Invalid {
                key: keys::POLICY.meta.key.into(),
                value: next.policy.as_str().into(),
                reason: format!(
                    "cannot switch between {} and {} while running: static fixes executor pools at registration; restart the app",
                    self.cfg.policy.as_str(),
                    next.policy.as_str()
                ),
            });
        }
        next.validate()?;
        self.apply(next);
        Ok(())
    }

    fn apply(&mut self, next: SchedulerConfig) {
        if next.policy != self.cfg.policy {
            let mut lanes = Lanes::new(next.policy);
            for lane in &self.lanes.lanes {
                for (id, kind) in lane {
                    lanes.push_back(*id, *kind);
                }
            }
            self.lanes = lanes;
        }
        if next.placement != self.cfg.placement {
            self.execs.set_placement(next.placement);
        }
        tracing::info!(
            policy = next.policy.as_str(),
            placement = next.placement.as_str(),
            max_suspensions = next.max_suspensions,
            quantum_ms = next.quantum.as_millis() as u64,
            "scheduling changed live"
        );
        self.cfg = next;
        // A policy without preemption has no SLO guard: release any held core.
        self.apply_guards(self.now);
    }
}
