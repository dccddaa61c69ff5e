//! The error of Neptune's app and data-plane API: what building an app, a source, a task, a
//! shuffle or a commit can fail with, as one typed value apps can match on and wrap.
//!
//! # Design
//! - One enum for the public API (sources, datasets, actions, shuffles, app building, commits)
//!   rather than one per module: an app's builder and its closures touch all of them and want one
//!   `?`. Modules with failures of their own keep their own types and are carried inside
//!   ([`ConfigError`], [`FetchError`]).
//! - Every variant's message is the text the engine printed before it had a typed error, so logs,
//!   reports and tests read the same words; the structured fields (a path, a line, the executor
//!   to blame) are there for code that matches.
//! - A user's own failure is [`Error::User`], boxed. Fallible closures
//!   ([`Dataset::try_map`](crate::Dataset::try_map),
//!   [`Dataset::try_for_each`](crate::Dataset::try_for_each), `on_result`) return
//!   `Result<_, BoxError>`, as a Flink function may throw any exception: `?` converts any error
//!   type into it, and a `Result` without an annotated error type still infers. The message
//!   reaches the task failure or the job failure unchanged. App builders return
//!   [`Result`] (this error), wrapping their own errors with [`Error::user`].
//! - Where an error leaves the process (a task failure sent to the driver, a job failure in the
//!   report) it travels as its `Display` text: the protocol carries strings.

use crate::config::ConfigError;
use crate::ids::TaskId;
use crate::shuffle::FetchError;
use std::path::PathBuf;

/// A user's own error, as apps return it from their closures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What the app and data-plane API fails with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operation on a named file or directory failed: an input that cannot be opened or read,
    /// an output, spill or block file that cannot be written.
    #[error("cannot {op} {}{note}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `read`, `create output directory`, ...).
        op: String,
        /// The file or directory.
        path: PathBuf,
        /// Said after the path (e.g. ` to <destination>` of a rename); often empty.
        note: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the run's input snapshot is shorter than when the run's input was listed.
    #[error(
        "{} has {actual} bytes, fewer than the {listed} it had when the run's input was listed \
         (truncated or replaced since)",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its size in the snapshot.
        listed: u64,
        /// Its size now.
        actual: u64,
    },
    /// A record of a file source that does not parse (policy `fail`), or a line that is too long
    /// or not UTF-8.
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Line number, from 1 (0 when the parser did not say).
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A file source's pattern matches no file.
    #[error("input `{pattern}` matches no files")]
    NoInput {
        /// The pattern (a glob or a directory).
        pattern: String,
    },
    /// A file source's pattern is not a valid glob.
    #[error("invalid input pattern `{pattern}`: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A shuffle block or a receiver's data could not be fetched (the driver recomputes the
    /// blamed executor's outputs: [`FetchError::executor`]).
    #[error("{context}: {source}")]
    Fetch {
        /// What was being read (`fetch failed`, `cannot read receiver data`).
        context: &'static str,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// Bytes that do not encode or decode: a task result, a shuffle block, shared state.
    #[error("{context}: {source}")]
    Codec {
        /// What was being encoded or decoded.
        context: String,
        /// The codec's error.
        #[source]
        source: postcard::Error,
    },
    /// A sort or aggregation spill that cannot be written or read back whole.
    #[error("{0}")]
    Spill(String),
    /// A task's launch does not give it what its stage reads (a block store, a shuffle input, a
    /// receiver's location, range boundaries).
    #[error("task {task} {problem}")]
    Launch {
        /// The task.
        task: TaskId,
        /// What is missing.
        problem: String,
    },
    /// The app's definition is inconsistent (a source declared twice or read by two jobs, a bad
    /// address).
    #[error("{0}")]
    Definition(String),
    /// An executor id that is not acceptable (see [`crate::ids::check_executor_id`]).
    #[error("{0}")]
    ExecutorId(String),
    /// A config key with a bad value (or missing, or unknown).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The app's own error, returned from one of its closures or builders.
    #[error(transparent)]
    User(BoxError),
}

impl Error {
    /// An I/O error on `path` while doing `op` (`"open"`, `"create spill directory"`, ...).
    pub fn io(op: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op: op.into(),
            path: path.into(),
            note: String::new(),
            source,
        }
    }

    /// The same error with `note` said after the path (an [`Error::Io`]; others are unchanged).
    #[must_use]
    pub fn with_note(mut self, text: impl Into<String>) -> Self {
        if let Error::Io { note, .. } = &mut self {
            *note = text.into();
        }
        self
    }

    /// A (de)serialization failure while doing `context`.
    pub fn codec(context: impl Into<String>, source: postcard::Error) -> Self {
        Error::Codec {
            context: context.into(),
            source,
        }
    }

    /// Wrap an app's own error (anything that converts into a boxed error: an error type, a
    /// `String`, a `&str`). A [`neptune_core::Error`](Error) passed here is returned as it is,
    /// not nested.
    pub fn user(e: impl Into<BoxError>) -> Self {
        match e.into().downcast::<Error>() {
            Ok(ours) => *ours,
            Err(theirs) => Error::User(theirs),
        }
    }

    /// The executor whose shuffle outputs could not be fetched, when that is why this failed.
    pub fn fetch_failed_executor(&self) -> Option<&str> {
        match self {
            Error::Fetch { source, .. } => source.executor(),
            _ => None,
        }
    }
}

impl From<BoxError> for Error {
    fn from(e: BoxError) -> Self {
        Error::user(e)
    }
}

/// An app's own message (`Err("...".into())` or `Err(format!(...).into())` in a builder).
impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::User(message.into())
    }
}

/// An app's own message.
impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::User(message.into())
    }
}

/// `Result` with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("model file is empty")]
    struct ModelError;

    #[test]
    fn a_user_error_keeps_its_message_and_can_be_downcast() {
        let e = Error::user(ModelError);
        assert_eq!(e.to_string(), "model file is empty");
        let Error::User(inner) = &e else {
            panic!("{e:?}")
        };
        assert!(inner.downcast_ref::<ModelError>().is_some());
        assert_eq!(Error::user("plain words").to_string(), "plain words");
    }

    #[test]
    fn wrapping_our_own_error_does_not_nest_it() {
        let e = Error::user(Error::NoInput {
            pattern: "/in/*".into(),
        });
        assert!(matches!(e, Error::NoInput { ref pattern } if pattern == "/in/*"));
    }

    #[test]
    fn io_messages_name_the_operation_and_the_path() {
        let gone = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = Error::io("open", "/data/a.txt", gone());
        assert!(
            e.to_string().starts_with("cannot open /data/a.txt: "),
            "{e}"
        );
        let e = Error::io("rename", "/o/.tmp", gone()).with_note(" to /o/part-0");
        assert!(
            e.to_string()
                .starts_with("cannot rename /o/.tmp to /o/part-0: ")
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
