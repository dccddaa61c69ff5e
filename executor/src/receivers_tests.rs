//! Stream receiver tests: cuts per announced run, empty cuts before a restart, reconnects,
//! dropped lines, and back-pressure until runs are released.

use super::*;
use tokio::io::AsyncWriteExt;

fn decode(mut b: &[u8]) -> Vec<String> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let (s, t): (String, &[u8]) = postcard::take_from_bytes(b).unwrap();
        v.push(s);
        b = t;
    }
    v
}

fn block(run: u64, partition: u32) -> BlockId {
    BlockId {
        job: 0,
        run,
        stage: RECEIVER_STAGE,
        map: 0,
        reduce: partition,
    }
}

fn found(l: Lookup) -> Vec<u8> {
    match l {
        Lookup::Found(b) => b,
        other => panic!("expected a cut, got {other:?}"),
    }
}

/// Lines of run `run` over `parts` partitions, in line order (the run is announced first).
fn run_lines(rs: &Receivers, run: u64, parts: u32) -> Vec<String> {
    rs.open_run(0, run);
    let mut all: Vec<(usize, String)> = Vec::new();
    for p in 0..parts {
        let lines = decode(&found(rs.cut_block(block(run, p))));
        all.extend(
            lines
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i * parts as usize + p as usize, l)),
        );
    }
    all.sort();
    all.into_iter().map(|(_, l)| l).collect()
}

async fn wait_lines(rs: &Receivers, want: usize) {
    for _ in 0..2000 {
        let held = rs.lock()[&0].buf().pending.len();
        if held >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the receiver did not read {want} lines");
}

fn receivers(addr: String, partitions: u32, memory: u64) -> Receivers {
    let def = ReceiverDef {
        name: "events".into(),
        addr,
        partitions,
    };
    Receivers::new(vec![def], memory, None)
}

#[tokio::test]
async fn lines_are_cut_per_run_and_every_partition_of_a_run_sees_the_same_cut() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rs = receivers(listener.local_addr().unwrap().to_string(), 2, 1 << 30);
    rs.start(0, 0).unwrap();
    rs.start(0, 0).unwrap(); // idempotent
    let (mut conn, _) = listener.accept().await.unwrap();
    conn.write_all(b"a 1\r\nb 2\n\xff\xfe\nc 3\n")
        .await
        .unwrap();
    wait_lines(&rs, 3).await;
    assert_eq!(run_lines(&rs, 0, 2), ["a 1", "b 2", "c 3"]);
    conn.write_all(b"d 4\n").await.unwrap();
    wait_lines(&rs, 1).await;
    // Run 0 is cut: asking again gives the same lines, the new one waits for run 1.
    assert_eq!(run_lines(&rs, 0, 2), ["a 1", "b 2", "c 3"]);
    assert_eq!(run_lines(&rs, 1, 2), ["d 4"]);
    assert_eq!(rs.cut_block(block(1, 2)), Lookup::Missing, "no partition 2");
    rs.release(0, 0);
    assert_eq!(rs.lock()[&0].buf().cuts.len(), 1);
}

#[tokio::test]
async fn a_run_the_driver_did_not_announce_gets_no_cut_and_takes_no_line() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rs = receivers(listener.local_addr().unwrap().to_string(), 1, 1 << 30);
    rs.start(0, 0).unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    conn.write_all(b"a\nb\n").await.unwrap();
    wait_lines(&rs, 2).await;
    for invented in [
        block(7, 0),
        block(u64::MAX, 0),
        BlockId {
            job: 9,
            ..block(0, 0)
        },
    ] {
        assert_eq!(rs.cut_block(invented), Lookup::NotOpen, "{invented:?}");
    }
    assert!(rs.lock()[&0].buf().cuts.is_empty(), "nothing was cut");
    assert_eq!(run_lines(&rs, 0, 1), ["a", "b"]);
    // Once released, a run is closed again: a late request cannot cut the next lines.
    rs.release(0, 0);
    conn.write_all(b"c\n").await.unwrap();
    wait_lines(&rs, 1).await;
    assert_eq!(rs.cut_block(block(0, 0)), Lookup::NotOpen);
    assert_eq!(run_lines(&rs, 1, 1), ["c"]);
}

#[tokio::test]
async fn runs_that_began_before_the_receiver_started_here_get_empty_cuts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rs = receivers(listener.local_addr().unwrap().to_string(), 2, 1 << 30);
    rs.start(0, 5).unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    conn.write_all(b"x\ny\n").await.unwrap();
    wait_lines(&rs, 2).await;
    assert!(run_lines(&rs, 4, 2).is_empty(), "run 4 began elsewhere");
    assert_eq!(run_lines(&rs, 5, 2), ["x", "y"]);
}

#[tokio::test]
async fn a_closed_connection_is_reopened_and_a_too_long_line_is_dropped() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rs = receivers(listener.local_addr().unwrap().to_string(), 1, 1 << 30);
    rs.start(0, 0).unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    let mut long = vec![b'x'; MAX_LINE + 10];
    long.push(b'\n');
    conn.write_all(&long).await.unwrap();
    conn.write_all(b"first\n").await.unwrap();
    drop(conn);
    let (mut conn, _) = listener.accept().await.unwrap();
    conn.write_all(b"second\nlast without newline")
        .await
        .unwrap();
    drop(conn);
    wait_lines(&rs, 3).await;
    assert_eq!(
        run_lines(&rs, 0, 1),
        ["first", "second", "last without newline"]
    );
}

#[tokio::test]
async fn a_full_receiver_stops_reading_until_a_run_is_released() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Memory such that the limit is the 64 KiB floor.
    let rs = receivers(listener.local_addr().unwrap().to_string(), 1, 0);
    rs.start(0, 0).unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    let line = format!("{}\n", "y".repeat(1023));
    let writer = tokio::spawn(async move {
        for _ in 0..1000 {
            conn.write_all(line.as_bytes()).await.unwrap();
        }
    });
    // It holds at most about its limit...
    wait_lines(&rs, 60).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = rs.lock()[&0].buf().held();
    assert!(held <= (64 << 10) + 1024, "held {held}");
    // ...and every line arrives, run after run, as runs are released.
    let mut got = 0;
    let mut run = 0;
    while got < 1000 {
        let n = run_lines(&rs, run, 1).len();
        rs.release(0, run);
        got += n;
        run += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(run < 100_000, "lines stopped arriving at {got}");
    }
    assert_eq!(got, 1000);
    writer.await.unwrap();
}
