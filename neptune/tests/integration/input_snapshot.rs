//! Input snapshots on a real local cluster: `wordcount`'s batch job counts a directory that a
//! thread keeps adding files to while the driver and the executors start and the job runs. The
//! result must be exactly the files of the run's snapshot, each counted whole, however many
//! files the executors' own start-up saw.
//!
//! The added files sort before the initial ones, so with per-process listings (the bug this
//! guards against) partition `i` read the `i`-th file of its executor's later, longer listing:
//! the initial files fell off the end and were never counted, and the job still exited 0.

use crate::common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Initial files, present before the job starts (and never modified).
const INITIAL: u64 = 6;
/// Most files the adder writes (bounds the test however slow the machine is).
const MAX_ADDED: u64 = 3000;

/// Content of a file counting word `word` `reps` times, one per line.
fn content(word: &str, reps: u64) -> String {
    (0..reps).map(|_| format!("{word}\n")).collect()
}

/// Drop `content` into `dir` as `name` atomically: written beside it, then renamed in (the
/// source lists every name, dot-files included, so nothing half-written may appear there).
fn drop_in(staging: &Path, dir: &Path, name: &str, content: &str) {
    let tmp = staging.join(name);
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn a_batch_run_counts_exactly_its_input_snapshot_while_files_keep_arriving() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let staging = dir.path().join("staging");
    let out = dir.path().join("out");
    std::fs::create_dir(&input).unwrap();
    std::fs::create_dir(&staging).unwrap();
    // word -> (reps, bytes) of every file ever written.
    let mut written: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for i in 0..INITIAL {
        let (word, reps) = (format!("init{i}"), i + 1);
        let c = content(&word, reps);
        drop_in(&staging, &input, &format!("z{i}.txt"), &c);
        written.insert(word, (reps, c.len() as u64));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let adder = {
        let (stop, input, staging) = (stop.clone(), input.clone(), staging.clone());
        std::thread::spawn(move || {
            let mut added = BTreeMap::new();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) && k < MAX_ADDED {
                // Descending names: every new file sorts before every earlier one.
                let (word, reps) = (format!("add{k}"), k % 4 + 1);
                let c = content(&word, reps);
                drop_in(&staging, &input, &format!("a{:06}.txt", MAX_ADDED - k), &c);
                added.insert(word, (reps, c.len() as u64));
                k += 1;
                // Pacing, so files keep arriving through the cluster's start-up and the run.
                std::thread::sleep(Duration::from_millis(2));
            }
            added
        })
    };
    let report = report_path(&dir, "snap");
    let sets = [
        format!("input={}", input.display()),
        format!("output={}", out.display()),
        "partitions=2".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let result = run_with_timeout(
        local("wordcount", 2, &report, &sets),
        Duration::from_secs(240),
    );
    stop.store(true, Ordering::Relaxed);
    written.extend(adder.join().unwrap());
    assert!(
        result.status.success(),
        "neptune local failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );

    let (counts, runs) = word_totals(&out);
    assert_eq!(runs, 1, "one run of `count`");
    let report = read_report(&report);
    let count = job(&report, "count");
    let snapshot = &count["input"];
    let (files, bytes) = (
        snapshot["files"]
            .as_u64()
            .expect("the report names the run's input files"),
        snapshot["bytes"].as_u64().expect("and their bytes"),
    );
    // Every counted file is counted whole, and the counted files are the snapshot's.
    let mut counted_bytes = 0;
    for (word, n) in &counts {
        let (reps, len) = written
            .get(word)
            .unwrap_or_else(|| panic!("`{word}` is no file's word"));
        assert_eq!(n, reps, "`{word}`'s file counted whole");
        counted_bytes += len;
    }
    assert_eq!(counts.len() as u64, files, "files counted = files listed");
    assert_eq!(counted_bytes, bytes, "bytes counted = bytes listed");
    // The initial files were there before anything started: every snapshot holds them.
    for i in 0..INITIAL {
        assert_eq!(
            counts.get(&format!("init{i}")),
            Some(&(i + 1)),
            "initial file z{i}.txt counted"
        );
    }
    assert!(
        files > INITIAL,
        "files arrived before the run's listing ({files} listed)"
    );
}
