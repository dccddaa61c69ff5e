//! Polling with a deadline: scenarios wait for conditions, never for fixed times.

use std::future::Future;
use std::time::Duration;

use crate::error::E2eError;

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(500);

/// Marks a poll result that will never turn into success (e.g. an app that ended `Failed`
/// while the scenario waits for `Succeeded`): the wait stops at once.
pub const FATAL: &str = "FATAL: ";

/// Polls `f` until it returns `Ok`; `Err(s)` means "not yet, last seen `s`", or "never" when
/// `s` starts with [`FATAL`].
///
/// # Errors
/// [`E2eError::Timeout`] with the last thing seen, after `timeout`; [`E2eError::Failed`] for a
/// fatal result.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T, E2eError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = tokio::time::Instant::now();
    loop {
        let last = match f().await {
            Ok(v) => return Ok(v),
            Err(s) => match s.strip_prefix(FATAL) {
                Some(fatal) => return Err(E2eError::Failed(format!("{what}: {fatal}"))),
                None => s,
            },
        };
        if start.elapsed() >= timeout {
            return Err(E2eError::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
