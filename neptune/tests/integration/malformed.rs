//! Malformed input records on a real local cluster, through `wordcount` reading JSON lines: the
//! `fail` policy fails the job naming the file and line; `skip` completes and counts what it
//! skipped in the executors' metrics and the report.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Two JSON-lines files; `b.jsonl` has a malformed record on line 3. 5 words parse.
fn input(dir: &Path) -> String {
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(
        input.join("a.jsonl"),
        "{\"text\": \"to be\"}\n{\"text\": \"or not\"}\n",
    )
    .unwrap();
    std::fs::write(
        input.join("b.jsonl"),
        "{\"text\": \"to\"}\n\n{\"text\": oops}\n",
    )
    .unwrap();
    format!("input={}", input.display())
}

#[test]
fn a_malformed_record_under_the_fail_policy_fails_the_job_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let report = report_path(&dir, "fail");
    let sets = [input.as_str(), "input.format=jsonl", "input.malformed=fail"];
    let out = run_with_timeout(
        local("wordcount", 2, &report, &sets),
        Duration::from_secs(240),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job should fail:\n{stderr}");
    assert!(
        stderr.contains("b.jsonl:3") && stderr.contains("malformed JSON record"),
        "the error names the file and line:\n{stderr}"
    );
}

#[test]
fn malformed_records_under_the_skip_policy_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let watched = format!("stream.dir={}", dir.path().join("watched").display());
    let addr = format!("127.0.0.1:{}", free_port());
    let report = report_path(&dir, "skip");
    // The stream job keeps the cluster up after the batch job so the executors can be scraped.
    let sets = [
        input.as_str(),
        watched.as_str(),
        "input.format=jsonl",
        "input.malformed=skip",
    ];
    let child = local_on("wordcount", 2, &report, &sets, &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let skipped = wait_for(
        Duration::from_secs(120),
        "the batch job to finish and the executors to report the skipped record",
        || {
            let (_, body) = http_get(&addr, "/status").ok()?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            let count = status["jobs"]
                .as_array()?
                .iter()
                .find(|j| j["name"] == "count")?;
            if count["runs"].as_u64()? < 1 {
                return None;
            }
            let mut skipped = 0;
            for e in status["executors"].as_array()? {
                let (_, m) = http_get(e["http"].as_str()?, "/metrics").ok()?;
                skipped += m
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("neptune_executor_malformed_records_skipped_total")
                    })?
                    .rsplit(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()?;
            }
            (skipped > 0).then_some(skipped)
        },
    );
    assert_eq!(
        skipped, 1,
        "executor metrics count the one malformed record"
    );
    terminate(child);
    let report = read_report(&report);
    let count = job(&report, "count");
    assert_eq!(count["malformed_skipped"], 1, "{report}");
    assert_eq!(report["totals"]["malformed_skipped"], 1, "{report}");
    assert_eq!(
        count["result"], 4,
        "4 distinct words: to be or not; {report}"
    );
}
