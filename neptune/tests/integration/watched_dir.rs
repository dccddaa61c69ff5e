//! The `wordcount` stream job over a watched directory on a real local cluster: files dropped in
//! while the app runs are each counted exactly once, across micro-batches.

use crate::common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn files_dropped_into_the_watched_directory_are_each_counted_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    let out = dir.path().join("out");
    let addr = format!("127.0.0.1:{}", free_port());
    let sets = [
        format!("stream.dir={}", watched.display()),
        format!("stream.output={}", out.display()),
        "stream.partitions=2".to_string(),
        "jobs.watch.interval_ms=100".to_string(),
        "stream.dir.cleanup=delete".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let child = local_on("wordcount", 2, &report_path(&dir, "watch"), &sets, &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for f in 0..6u64 {
        // Let the stream make progress between drops, so files land in different micro-batches.
        let seen = wait_for(Duration::from_secs(60), "a micro-batch", || {
            job_runs(&addr, "watch").filter(|r| *r >= 1)
        });
        wait_for(Duration::from_secs(60), "two more micro-batches", || {
            job_runs(&addr, "watch").filter(|r| *r >= seen + 2)
        });
        let mut text = String::new();
        for line in 0..200u64 {
            text += &format!("w{} f{f} common\n", (f * 31 + line) % 17);
        }
        for w in text.split_whitespace() {
            *expected.entry(w.to_string()).or_default() += 1;
        }
        let tmp = watched.join(format!(".f{f}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, watched.join(format!("f{f}.txt"))).unwrap();
    }

    let runs_at_done = wait_for(Duration::from_secs(120), "every file counted", || {
        (word_totals(&out).0 == expected)
            .then(|| job_runs(&addr, "watch"))
            .flatten()
    });
    // Later micro-batches must not count any file again.
    wait_for(Duration::from_secs(60), "three more micro-batches", || {
        job_runs(&addr, "watch").filter(|r| *r >= runs_at_done + 3)
    });
    let (got, runs_with_words) = word_totals(&out);
    assert_eq!(got, expected, "each file counted exactly once");
    assert!(
        runs_with_words >= 2,
        "files were picked up across micro-batches"
    );
    // cleanup=delete: counted files are gone, nothing archived.
    let left = |p: &Path| std::fs::read_dir(p).unwrap().count();
    assert_eq!(left(&watched.join(".neptune/done")), 0);
    assert_eq!(left(&watched), 1, "only .neptune is left");

    terminate(child);
}
