//! The micro-batch clock: wakes the event loop when the next micro-batch is due, to within tens
//! of microseconds instead of tokio's millisecond timer wheel.
//!
//! Why not `tokio::time::sleep_until`: tokio's timer has a resolution of one millisecond and
//! rounds every deadline *up* to the next tick of its wheel, so each micro-batch was planned
//! 1.0–1.6 ms after it was due (the `trigger` hop's median, measured by the latency
//! attribution; docs/evaluation.md) — the largest share of a stream micro-batch's steady-state
//! latency on an idle machine. A dedicated thread blocks on `recv_timeout` (a futex wait with
//! the kernel's high-resolution timer and its 50 µs default slack) and posts the deadline to
//! the loop through a tokio channel; the loop re-arms it whenever its next deadline changes.
//! The thread is idle between deadlines and ends when the loop drops its [`Clock`].

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;
use tokio::sync::mpsc as tokio_mpsc;

/// The loop's handle on the clock thread.
pub(super) struct Clock {
    arm: mpsc::Sender<Option<Instant>>,
    armed: Option<Instant>,
}

/// Start the clock thread. The receiver yields each armed deadline once it has passed.
pub(super) fn start() -> std::io::Result<(Clock, tokio_mpsc::Receiver<Instant>)> {
    let (arm, armed_rx) = mpsc::channel::<Option<Instant>>();
    // Capacity 1: a deadline the loop has not read yet already makes it look at its jobs, which
    // then plans every micro-batch due by then; a second one would add nothing.
    let (fired_tx, fired_rx) = tokio_mpsc::channel(1);
    std::thread::Builder::new()
        .name("neptune-clock".into())
        .spawn(move || run(&armed_rx, &fired_tx))?;
    Ok((Clock { arm, armed: None }, fired_rx))
}

impl Clock {
    /// Wake the loop at `at` (`None`: not at all). A no-op when the deadline is unchanged, so
    /// the loop can call it after every input at the cost of a comparison.
    pub fn arm(&mut self, at: Option<Instant>) {
        if at != self.armed {
            self.armed = at;
            // The thread ends only when this sender is dropped; a send cannot fail before.
            let _ = self.arm.send(at);
        }
    }

    /// The loop consumed a firing: the next `arm` with the same deadline must re-arm it.
    pub fn fired(&mut self) {
        self.armed = None;
    }
}

fn run(armed: &mpsc::Receiver<Option<Instant>>, fired: &tokio_mpsc::Sender<Instant>) {
    let mut next: Option<Instant> = None;
    loop {
        let msg = match next {
            Some(at) => {
                let now = Instant::now();
                if at <= now {
                    // Full: the loop has a firing to read already (see `start`).
                    if fired.try_send(at).is_err() && fired.is_closed() {
                        return;
                    }
                    next = None;
                    continue;
                }
                armed.recv_timeout(at - now)
            }
            None => armed.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(at) => next = at,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn fires_once_per_armed_deadline_and_follows_re_arming() {
        let (mut clock, mut fired) = start().unwrap();
        let t0 = Instant::now();
        // Re-armed later before it fires: only the later deadline fires.
        clock.arm(Some(t0 + Duration::from_secs(3600)));
        let at = t0 + Duration::from_millis(20);
        clock.arm(Some(at));
        let got = tokio::time::timeout(Duration::from_secs(30), fired.recv())
            .await
            .expect("the clock fired")
            .expect("the clock is running");
        assert_eq!(got, at);
        assert!(Instant::now() >= at, "never fires early");
        // Arming the same deadline again without `fired()` is a no-op: no second firing.
        clock.arm(Some(at));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), fired.recv())
                .await
                .is_err()
        );
        // After `fired()`, a deadline already past fires at once.
        clock.fired();
        clock.arm(Some(at));
        assert_eq!(fired.recv().await, Some(at));
        // Disarmed: nothing fires.
        clock.fired();
        clock.arm(Some(Instant::now() + Duration::from_millis(10)));
        clock.arm(None);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), fired.recv())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_thread_ends_with_the_loop() {
        let (clock, mut fired) = start().unwrap();
        drop(clock);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(30), fired.recv())
                .await
                .expect("the channel closes"),
            None
        );
    }
}
