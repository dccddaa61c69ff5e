//! The Neptune wire protocol: generated gRPC types (package `neptune.v2`), conversions to core
//! ids and phases, and the bounds every peer checks values from the wire against.

/// Generated from `proto/proto/neptune.proto` (checked in; `make proto` regenerates it).
pub mod v2;

pub use v2::*;

use neptune_core::ids::TaskId;
use neptune_core::task::TaskPhase;

/// Most task slots an executor may register with.
pub const MAX_CORES: u32 = 4096;
/// Least memory an executor may register with (1 MiB): below it no budget is meaningful.
pub const MIN_MEMORY: u64 = 1 << 20;
/// Most memory an executor may register (or heartbeat) with: 64 TiB.
pub const MAX_MEMORY: u64 = 64 << 40;
/// Default of `grpc.max_message_bytes`, the largest message the driver sends or accepts: 256 MiB,
/// room for a broadcast model of tens of millions of weights or a large collected result.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 256 << 20;
/// Least value of `grpc.max_message_bytes` (1 MiB: launches of large shuffles need hundreds of
/// KiB).
pub const MIN_MAX_MESSAGE_BYTES: u64 = 1 << 20;
/// Greatest value of `grpc.max_message_bytes` (1 GiB). Executors decode driver messages up to
/// this before they learn the driver's own limit from its welcome.
pub const MAX_MAX_MESSAGE_BYTES: u64 = 1 << 30;
/// Longest free text (failure and rejection reasons) kept from an update; the rest is cut.
pub const MAX_REASON_BYTES: usize = 4096;

impl TaskKey {
    /// The wire key for `id` at `attempt`.
    pub fn new(id: TaskId, attempt: u32) -> Self {
        TaskKey {
            job: id.job,
            run: id.run,
            stage: id.stage,
            partition: id.partition,
            attempt,
        }
    }

    /// The task id this key names.
    pub fn id(&self) -> TaskId {
        TaskId {
            job: self.job,
            run: self.run,
            stage: self.stage,
            partition: self.partition,
        }
    }
}

impl From<neptune_core::EventTimes> for EventTime {
    fn from(t: neptune_core::EventTimes) -> Self {
        Self {
            oldest_ms: t.min_ms(),
            newest_ms: t.max_ms(),
            count: t.count(),
            mean_ms: t.mean_ms(),
        }
    }
}

impl EventTime {
    /// The summary as sent, checked ([`neptune_core::EventTimes::from_parts`]).
    ///
    /// # Errors
    /// When it describes no set of records (no records, the mean outside oldest..newest).
    pub fn checked(&self) -> Result<neptune_core::EventTimes, String> {
        neptune_core::EventTimes::from_parts(
            self.oldest_ms,
            self.newest_ms,
            self.count,
            self.mean_ms,
        )
    }
}

impl From<TaskPhase> for Phase {
    fn from(p: TaskPhase) -> Self {
        match p {
            TaskPhase::Compute => Phase::Compute,
            TaskPhase::ShuffleWrite => Phase::ShuffleWrite,
            TaskPhase::Fetch => Phase::Fetch,
            TaskPhase::Reduce => Phase::Reduce,
        }
    }
}

/// The phase of a `Suspended` update as sent (`phase` is an `i32` on the wire, any value):
/// `None` for `PHASE_UNSPECIFIED` and for values this build does not know.
pub fn core_phase(wire: i32) -> Option<TaskPhase> {
    match Phase::try_from(wire).ok()? {
        Phase::Unspecified => None,
        Phase::Compute => Some(TaskPhase::Compute),
        Phase::ShuffleWrite => Some(TaskPhase::ShuffleWrite),
        Phase::Fetch => Some(TaskPhase::Fetch),
        Phase::Reduce => Some(TaskPhase::Reduce),
    }
}

/// `s` cut to at most [`MAX_REASON_BYTES`] (on a character boundary), marked when cut.
pub fn bounded_reason(mut s: String) -> String {
    if s.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" [...]");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_and_unknown_values_are_none() {
        for p in TaskPhase::ALL {
            assert_eq!(core_phase(Phase::from(p) as i32), Some(p));
        }
        assert_eq!(core_phase(0), None);
        assert_eq!(core_phase(9999), None);
        assert_eq!(core_phase(-1), None);
    }

    #[test]
    fn reasons_are_cut_on_a_char_boundary() {
        assert_eq!(bounded_reason("short".into()), "short");
        let long = "é".repeat(MAX_REASON_BYTES);
        let cut = bounded_reason(long);
        assert!(cut.len() <= MAX_REASON_BYTES + 6 && cut.ends_with("[...]"));
    }

    /// The hex SHA-256 the generated file's header records after `label`.
    fn recorded<'a>(generated: &'a str, label: &str) -> &'a str {
        generated
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("proto/src/v2.rs lacks its `{label}` header line"))
    }

    /// Lower-case hex, as the header writes it.
    fn sha256(bytes: &[u8]) -> String {
        use sha2::Digest as _;
        format!("{:x}", sha2::Sha256::digest(bytes))
    }

    /// The generated code is checked in (so no build compiles protox); its header records the
    /// hashes of the .proto it came from and of the code itself, so neither can change without
    /// `make proto`.
    #[test]
    fn generated_code_is_current() {
        let generated = include_str!("v2.rs");
        let proto = include_str!("../proto/neptune.proto");
        assert_eq!(
            recorded(generated, "//! proto sha256: "),
            sha256(proto.as_bytes()),
            "proto/proto/neptune.proto changed since proto/src/v2.rs was generated: run `make proto`"
        );
        let code = &generated[generated
            .find("\n\n")
            .expect("a blank line ends the header")
            + 2..];
        assert_eq!(
            recorded(generated, "//! code sha256: "),
            sha256(code.as_bytes()),
            "proto/src/v2.rs was edited by hand: change proto/proto/neptune.proto and run \
             `make proto` instead"
        );
    }
}
