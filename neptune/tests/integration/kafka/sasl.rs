//! SASL against a real broker: tansu requiring client authentication (`--authentication`) with a
//! SCRAM-SHA-512 and a SCRAM-SHA-256 user. A stream wordcount that logs in as either, with the
//! user's password read from a file (as a mounted Secret), counts every record exactly once; one
//! with a wrong password reads nothing and its `/status` names the SASL keys to check, as
//! docs/dataplane.md promises. (PLAIN is not tried: tansu 0.6 accepts any password with it.)

use super::broker::*;
use crate::common::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// The wordcount's `--set`s over `words` as `user` logging in with `mechanism` and the password
/// in `password_file`.
fn sasl_sets(
    bootstrap: &str,
    out: &std::path::Path,
    (user, mechanism): (&str, &str),
    password_file: &std::path::Path,
) -> Vec<String> {
    sets(
        bootstrap,
        "words",
        &[
            format!("stream.output={}", out.display()),
            "kafka.security.protocol=sasl_plaintext".to_string(),
            format!("kafka.sasl.mechanism={mechanism}"),
            format!("kafka.sasl.username={user}"),
            format!("kafka.sasl.password_file={}", password_file.display()),
        ],
    )
}

#[test]
#[ignore = "needs the tansu broker: `make kafka` (part of `make test`) builds it once per machine and runs these"]
fn a_wordcount_logs_in_with_scram_and_a_wrong_password_waits_naming_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&dir.path().join("broker"));
    let bootstrap = broker.bootstrap();
    // The user, the topic and its records while the broker still accepts anyone (the tests'
    // producer speaks plaintext); then the broker requires a login.
    broker.create_user("neptune", "s3cret-pass", "scram512");
    broker.create_user("neptune256", "s3cret-pass", "scram256");
    create_topic(&bootstrap, "words", 2);
    let mut expected = BTreeMap::new();
    produce(&bootstrap, "words", 2, 0, 300, &mut expected);
    broker.restart_with(&["--authentication"]);

    let right = dir.path().join("right");
    std::fs::write(&right, "s3cret-pass\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let (out, out256, bad_out) = (
        dir.path().join("out"),
        dir.path().join("out256"),
        dir.path().join("bad-out"),
    );
    let addr = || format!("127.0.0.1:{}", free_port());
    let (addr, addr256, bad_addr) = (addr(), addr(), addr());
    let scram512 = ("neptune", "SCRAM-SHA-512");
    let start = |sets: Vec<String>, addr: &str, report: &str| {
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        spawn_with_executor_pids(local_on(
            "wordcount",
            1,
            &report_path(&dir, report),
            &sets,
            addr,
        ))
        .0
    };
    let good = Reap(Some(start(
        sasl_sets(&bootstrap, &out, scram512, &right),
        &addr,
        "good",
    )));
    let good256 = Reap(Some(start(
        sasl_sets(&bootstrap, &out256, ("neptune256", "SCRAM-SHA-256"), &right),
        &addr256,
        "good256",
    )));
    let bad = Reap(Some(start(
        sasl_sets(&bootstrap, &bad_out, scram512, &wrong),
        &bad_addr,
        "bad",
    )));

    for out in [&out, &out256] {
        wait_for(Duration::from_secs(120), "every record counted", || {
            (word_totals(out).0 == expected).then_some(())
        });
    }
    let error = wait_for(
        Duration::from_secs(60),
        "the login error in /status",
        || {
            let st = status(&bad_addr)?;
            st["kafka"][0]["error"].as_str().map(str::to_string)
        },
    );
    eprintln!("the wrong password's /status error: {error}");
    assert!(
        error.contains("kafka.sasl.mechanism") && error.contains("password"),
        "the error names what to check: {error}"
    );
    assert!(
        word_totals(&bad_out).0.is_empty(),
        "nothing is read without a login"
    );
    drop((good, good256, bad));
}
