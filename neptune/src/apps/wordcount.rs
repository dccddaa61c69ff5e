//! `wordcount`: a batch job counting words over text files, and a stream job counting words in a
//! watched directory, in the same app.
//!
//! Keys: `input` (directory or glob of text files; enables the batch job `count`), `output`
//! (directory; `count` writes `run-RRRRRR/part-PPPPP` files of `word<TAB>count` lines, else the
//! counts are only summarised in the report), `partitions` (reduce partitions, default 4),
//! `stream.dir` (directory watched by the stream job `watch`: each micro-batch counts the words
//! of the files there, so files dropped in are picked up by the next micro-batch),
//! `stream.partitions` (default 2). Words are maximal runs of non-whitespace, case kept.

use super::cfg;
use neptune_core::source::{list_files, text_files};
use neptune_core::{App, Dataset};
use std::sync::Arc;

fn words(lines: &Dataset<String>) -> Dataset<(String, u64)> {
    lines.flat_map(|l| {
        l.split_whitespace()
            .map(|w| (w.to_string(), 1u64))
            .collect::<Vec<_>>()
    })
}

/// Build the wordcount app.
///
/// # Errors
/// A message naming the key at fault (no input at all, or an input matching no files).
pub fn build(app: &mut App) -> Result<(), String> {
    let c = app.config();
    let input: String = cfg(c.get("input", String::new()))?;
    let output: String = cfg(c.get("output", String::new()))?;
    let partitions: u32 = cfg(c.get_in("partitions", 4, 1, 100_000))?;
    let dir: String = cfg(c.get("stream.dir", String::new()))?;
    let stream_parts: u32 = cfg(c.get_in("stream.partitions", 2, 1, 10_000))?;
    if input.is_empty() && dir.is_empty() {
        return Err(
            "set `input` (text files to count) and/or `stream.dir` (a watched directory)".into(),
        );
    }
    if !input.is_empty() {
        let lines = text_files(&input).map_err(|e| format!("input: {e}"))?;
        let counts = words(&lines).reduce_by_key(partitions, |a, b| a + b);
        if output.is_empty() {
            app.batch("count", counts.count()).runs(Some(1));
        } else {
            app.batch(
                "count",
                counts.write_lines(output, |(w, n)| format!("{w}\t{n}")),
            )
            .runs(Some(1));
        }
    }
    if !dir.is_empty() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("stream.dir `{dir}`: {e}"))?;
        let dir = Arc::new(dir);
        let lines = Dataset::from_fn(stream_parts, move |ctx| {
            // Every file of the directory, each read by one partition (by name hash).
            let files = list_files(&dir).unwrap_or_default();
            let mine: Vec<_> = files
                .into_iter()
                .filter(|f| {
                    neptune_core::shuffle::partition_of(&f.to_string_lossy(), stream_parts)
                        == ctx.partition()
                })
                .collect();
            Box::new(mine.into_iter().flat_map(move |f| {
                std::fs::read_to_string(&f)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            }))
        });
        let counts = words(&lines).reduce_by_key(stream_parts, |a, b| a + b);
        app.stream("watch", counts.count());
    }
    Ok(())
}
