//! Container output capture, where the API server's `pods/log` (`crate::api::logs`) reads it
//! for `kubectl logs`: a container's current run at `log_path(root, ns, pod, container,
//! false)`, the previous run (`kubectl logs --previous`) moved to the `previous = true` path
//! when the container restarts.
//!
//! stdout and stderr are interleaved line by line into one file, as a runtime's log is (a line
//! is never split between the two streams); a line longer than [`MAX_LINE`] is written in
//! pieces. A file over [`MAX_FILE`] is rotated once to `<file>.1` (older output is dropped, as
//! with the kubelet's `containerLogMaxSize`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

pub use crate::api::logs::log_path;

/// Longest piece written at once; longer lines are split.
pub const MAX_LINE: usize = 16 * 1024;
/// Size at which a log file is rotated (the kubelet's `containerLogMaxSize` default).
pub const MAX_FILE: u64 = 10 * 1024 * 1024;

/// A container run's log; stdout and stderr copiers share it.
#[derive(Clone, Debug)]
pub struct LogSink {
    path: PathBuf,
    file: Arc<Mutex<Option<tokio::fs::File>>>,
}

impl LogSink {
    /// Starts the log of a new run at `current`; an existing log there (the run before) moves
    /// to `previous`.
    ///
    /// # Errors
    /// When the directory or file cannot be created.
    pub fn create(current: PathBuf, previous: &Path) -> std::io::Result<Self> {
        if let Some(dir) = current.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if current.exists() {
            std::fs::rename(&current, previous)?;
        }
        let file = tokio::fs::File::from_std(std::fs::File::create(&current)?);
        Ok(Self {
            path: current,
            file: Arc::new(Mutex::new(Some(file))),
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies `reader` (a container's stdout or stderr) into the log until it closes.
    pub async fn copy(self, mut reader: impl AsyncRead + Unpin) {
        let mut buf = vec![0u8; 8192];
        let mut line: Vec<u8> = Vec::new();
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut chunk = &buf[..n];
            while let Some(pos) = chunk.iter().position(|b| *b == b'\n') {
                line.extend_from_slice(&chunk[..=pos]);
                self.write(&line).await;
                line.clear();
                chunk = &chunk[pos + 1..];
            }
            line.extend_from_slice(chunk);
            while line.len() >= MAX_LINE {
                let rest = line.split_off(MAX_LINE);
                self.write(&line).await;
                line = rest;
            }
        }
        if !line.is_empty() {
            line.push(b'\n');
            self.write(&line).await;
        }
    }

    async fn write(&self, bytes: &[u8]) {
        let mut guard = self.file.lock().await;
        let Some(file) = guard.as_mut() else {
            return;
        };
        // A log that cannot be written is dropped rather than stopping the container, as a
        // runtime does when its disk is full.
        let _ = file.write_all(bytes).await;
        if let Ok(meta) = file.metadata().await
            && meta.len() > MAX_FILE
        {
            let _ = file.flush().await;
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            if tokio::fs::rename(&self.path, &rotated).await.is_ok() {
                *guard = tokio::fs::File::create(&self.path).await.ok();
            }
        }
    }
}

/// The last `max_lines` lines, at most `max_bytes` bytes, of a log (for
/// `terminationMessagePolicy: FallbackToLogsOnError`: 80 lines, 2 KiB).
pub fn tail_of(path: &Path, max_lines: usize, max_bytes: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text
        .len()
        .saturating_sub(max_bytes.saturating_mul(4).max(max_bytes));
    let text = String::from_utf8_lossy(&text[start..]).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(max_lines)..].join("\n");
    if text.ends_with('\n') && !out.is_empty() {
        out.push('\n');
    }
    if out.len() > max_bytes {
        let mut cut = out.len() - max_bytes;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = out[cut..].to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_stay_whole_and_a_restart_keeps_the_previous_run() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("ns/p/c.log");
        let previous = dir.path().join("ns/p/c.previous.log");
        let sink = LogSink::create(current.clone(), &previous).unwrap();
        let long = "x".repeat(MAX_LINE + 10);
        let out = format!("hello\n{long}\nno newline");
        sink.clone().copy(out.as_bytes()).await;
        sink.copy(&b"oops\n"[..]).await;
        let text = std::fs::read_to_string(&current).unwrap();
        assert_eq!(text, format!("hello\n{long}\nno newline\noops\n"));
        assert_eq!(tail_of(&current, 1, 100), "oops\n");
        assert_eq!(tail_of(&current, 80, 3), "ps\n");

        let second = LogSink::create(current.clone(), &previous).unwrap();
        second.copy(&b"second run\n"[..]).await;
        assert_eq!(std::fs::read_to_string(&current).unwrap(), "second run\n");
        assert!(
            std::fs::read_to_string(&previous)
                .unwrap()
                .starts_with("hello\n")
        );
    }
}
