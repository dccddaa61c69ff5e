//! The `wordcount` stream job over a TCP line socket on a real local cluster: the receiver is
//! pinned to one executor, every line sent is counted exactly once, the micro-batch tasks prefer
//! the receiver's executor, and when that executor dies the receiver restarts on another one.

use crate::common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The executor the driver pinned the receiver to, once placed.
fn receiver_executor(addr: &str) -> Option<String> {
    status(addr)?["receivers"][0]["executor"]
        .as_str()
        .map(str::to_string)
}

/// `neptune_executor_receiver_lines_total` of the executor whose `/metrics` is at `http`.
fn received_lines(http: &str) -> u64 {
    let Ok((_, body)) = http_get(http, "/metrics") else {
        return 0;
    };
    body.lines()
        .filter(|l| l.starts_with("neptune_executor_receiver_lines_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Accept the receiver's connection within a minute.
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the receiver never connected");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Send `lines` lines of batch `b` and add their words to `expected`.
fn send(conn: &mut TcpStream, b: u64, lines: u64, expected: &mut BTreeMap<String, u64>) {
    let mut text = String::new();
    for line in 0..lines {
        text += &format!("w{} b{b} common\n", (b * 31 + line) % 23);
    }
    for w in text.split_whitespace() {
        *expected.entry(w.to_string()).or_default() += 1;
    }
    conn.write_all(text.as_bytes()).unwrap();
    conn.flush().unwrap();
}

fn start(
    dir: &tempfile::TempDir,
    listener: &TcpListener,
    http: &str,
) -> (Child, Arc<Mutex<HashMap<String, u32>>>) {
    let out = dir.path().join("out");
    let sets = [
        format!("stream.socket={}", listener.local_addr().unwrap()),
        format!("stream.output={}", out.display()),
        "stream.partitions=2".to_string(),
        "jobs.socket.interval_ms=100".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    spawn_with_executor_pids(local_on(
        "wordcount",
        2,
        &report_path(dir, "socket"),
        &sets,
        http,
    ))
}

#[test]
fn lines_sent_to_the_socket_are_each_counted_once_on_the_receivers_executor() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let (child, _) = start(&dir, &listener, &http);
    let mut conn = accept(&listener);

    let mut expected = BTreeMap::new();
    for b in 0..5u64 {
        // Let micro-batches pass between sends, so the lines land in different runs.
        let seen = wait_for(Duration::from_secs(60), "a micro-batch", || {
            job_runs(&http, "socket").filter(|r| *r >= 1)
        });
        send(&mut conn, b, 300, &mut expected);
        wait_for(Duration::from_secs(60), "two more micro-batches", || {
            job_runs(&http, "socket").filter(|r| *r >= seen + 2)
        });
    }
    let out = dir.path().join("out");
    let runs_at_done = wait_for(Duration::from_secs(120), "every line counted", || {
        (word_totals(&out).0 == expected)
            .then(|| job_runs(&http, "socket"))
            .flatten()
    });
    wait_for(Duration::from_secs(60), "three more micro-batches", || {
        job_runs(&http, "socket").filter(|r| *r >= runs_at_done + 3)
    });
    assert_eq!(
        word_totals(&out).0,
        expected,
        "each line counted exactly once"
    );

    let st = status(&http).unwrap();
    let pinned = st["receivers"][0]["executor"].as_str().unwrap().to_string();
    let mut by_exec = BTreeMap::new();
    for e in st["executors"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap().to_string();
        by_exec.insert(id, received_lines(e["http"].as_str().unwrap()));
    }
    assert_eq!(
        by_exec[&pinned],
        5 * 300,
        "the pinned executor read every line: {by_exec:?}"
    );
    assert_eq!(
        by_exec.values().sum::<u64>(),
        5 * 300,
        "only it did: {by_exec:?}"
    );
    // Locality: tasks of every micro-batch prefer the receiver's executor (map tasks) or the
    // executor holding their input (reduce tasks: the same one); only a busy slot sends one
    // elsewhere.
    let (local, remote) = (
        st["totals"]["local_launches"].as_u64().unwrap(),
        st["totals"]["non_local_launches"].as_u64().unwrap(),
    );
    assert!(local > remote, "local {local}, non-local {remote}");
    terminate(child);
}

#[test]
fn when_the_receivers_executor_dies_the_receiver_restarts_on_another_one() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let (child, pids) = start(&dir, &listener, &http);
    let mut conn = accept(&listener);
    let out = dir.path().join("out");

    let mut expected = BTreeMap::new();
    send(&mut conn, 0, 400, &mut expected);
    wait_for(Duration::from_secs(120), "the first lines counted", || {
        (word_totals(&out).0 == expected).then_some(())
    });

    let first = wait_for(Duration::from_secs(30), "the receiver placed", || {
        receiver_executor(&http)
    });
    let pid = wait_for(Duration::from_secs(30), "its pid", || {
        pids.lock().unwrap().get(&first).copied()
    });
    sigkill(pid);
    // The receiver comes back elsewhere and connects again.
    let mut conn = accept(&listener);
    let second = wait_for(Duration::from_secs(60), "the receiver moved", || {
        receiver_executor(&http).filter(|e| *e != first)
    });
    assert_ne!(first, second);
    send(&mut conn, 1, 400, &mut expected);
    wait_for(Duration::from_secs(120), "the later lines counted", || {
        (word_totals(&out).0 == expected).then_some(())
    });
    terminate(child);
}
