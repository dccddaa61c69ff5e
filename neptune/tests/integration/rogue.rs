//! A rogue process against a running local cluster, at the message level: a plain gRPC client
//! that registers like an executor (trying a live executor's id and malformed values first),
//! then sends forged updates for real task keys it does not hold, huge counters, invented
//! phases and a message above the size limit, and forged block requests with invented run ids
//! and megabytes of garbage to a real executor's block server. The job's result must equal an
//! undisturbed run's, no total may move, and the driver must count every refusal.
//!
//! The cluster runs `--insecure`: this test is about what a peer that got past authentication
//! (a compromised member holding the app's certificate) can do. That strangers do not get past
//! mutual TLS is `transport.rs`'s test.

use crate::common;

use common::*;
use neptune_proto::driver_client::DriverClient;
use neptune_proto::{
    DriverMessage, ExecutorMessage, Register, TaskKey, TaskUpdate, driver_message,
    executor_message, task_update,
};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// The cluster's message size limit, so the rogue's oversized message is cheap to build.
const MAX_MESSAGE: usize = 1 << 20;

/// Dial the driver the way an executor does. The only place the rogue connects: when the
/// driver requires mutual TLS, give it the app's client credentials here (a compromised but
/// authenticated peer) and every check of this test keeps its meaning.
async fn connect_rogue(url: &str) -> DriverClient<Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string()).expect("url");
    let channel = endpoint
        .connect()
        .await
        .expect("the rogue reaches the driver");
    DriverClient::new(channel).max_encoding_message_size(8 * MAX_MESSAGE)
}

/// A registration with sane values under `id`.
fn offer(id: &str) -> Register {
    Register {
        executor_id: id.to_string(),
        cores: 1,
        memory_limit: 1 << 30,
        http_addr: "127.0.0.1:9".into(),
        block_addr: "127.0.0.1:9".into(),
    }
}

/// An open session: what to send on, what comes back.
struct Session {
    out: mpsc::UnboundedSender<ExecutorMessage>,
    incoming: tonic::Streaming<DriverMessage>,
}

/// Register with `offer`; `Err` is the driver's refusal.
async fn register(
    client: &mut DriverClient<Channel>,
    r: Register,
) -> Result<Session, tonic::Status> {
    let (out, rx) = mpsc::unbounded_channel();
    out.send(ExecutorMessage {
        msg: Some(executor_message::Msg::Register(r)),
    })
    .unwrap();
    let mut incoming = client
        .session(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    match incoming.next().await {
        Some(Ok(DriverMessage {
            msg: Some(driver_message::Msg::Welcome(_)),
        })) => Ok(Session { out, incoming }),
        Some(Err(s)) => Err(s),
        other => panic!("neither a welcome nor a refusal: {other:?}"),
    }
}

fn update(key: TaskKey, state: task_update::State) -> ExecutorMessage {
    ExecutorMessage {
        msg: Some(executor_message::Msg::Update(TaskUpdate {
            task: Some(key),
            state: Some(state),
        })),
    }
}

/// Every forgery for `key`: a success with a bogus result and maximal counters, failures (one
/// blaming an honest executor's blocks), a kill losing everything, a suspension in an invented
/// phase, a resumption.
fn forgeries(key: TaskKey) -> Vec<ExecutorMessage> {
    use neptune_proto as p;
    vec![
        update(
            key,
            task_update::State::Succeeded(p::Succeeded {
                result: postcard::to_stdvec(&u64::MAX).unwrap(),
                records: u64::MAX,
                elapsed_us: u64::MAX,
                skipped: u64::MAX,
                event_time: Some(p::EventTime {
                    oldest_ms: i64::MIN,
                    newest_ms: i64::MAX,
                    count: u64::MAX,
                    mean_ms: i64::MIN,
                }),
                timing: Some(p::TaskTiming {
                    queued_ns: u64::MAX,
                    start_ns: u64::MAX,
                    first_record_ns: u64::MAX,
                    process_ns: u64::MAX,
                }),
            }),
        ),
        update(
            key,
            task_update::State::Failed(p::Failed {
                reason: "forged".into(),
                records: u64::MAX,
                fetch_failed_executor: "exec-0".into(),
            }),
        ),
        update(
            key,
            task_update::State::Failed(p::Failed {
                reason: "forged".into(),
                records: u64::MAX,
                fetch_failed_executor: String::new(),
            }),
        ),
        update(
            key,
            task_update::State::Killed(p::Killed { records: u64::MAX }),
        ),
        update(
            key,
            task_update::State::Suspended(p::Suspended {
                latency_ns: u64::MAX,
                phase: 12345,
            }),
        ),
        update(
            key,
            task_update::State::Resumed(p::Resumed {
                latency_ns: u64::MAX,
            }),
        ),
    ]
}

/// Sum of a counter family's samples (`name{...} value` lines) in a `/metrics` body, and the
/// value of the sample with `label`.
fn metric(body: &str, name: &str, label: &str) -> (f64, f64) {
    let mut sum = 0.0;
    let mut labelled = 0.0;
    for l in body.lines().filter(|l| l.starts_with(&format!("{name}{{"))) {
        let v: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        sum += v;
        if l.contains(label) {
            labelled += v;
        }
    }
    (sum, labelled)
}

/// Forged block requests to the block server at `addr`: invented run ids, then megabytes of
/// garbage; every whole request must be answered "missing".
fn forge_block_requests(addr: &str) {
    let mut s = std::net::TcpStream::connect(addr).expect("the block server answers");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for (stage, run) in [(0u32, u64::MAX), (1, 987_654_321), (0x8000_0000, 424_242)] {
        let mut req = [0u8; 24];
        req[4..12].copy_from_slice(&run.to_be_bytes());
        req[12..16].copy_from_slice(&stage.to_be_bytes());
        s.write_all(&req).unwrap();
        let mut head = [0u8; 9];
        s.read_exact(&mut head).unwrap();
        assert_eq!(
            head,
            [1, 0, 0, 0, 0, 0, 0, 0, 0],
            "missing, nothing created"
        );
    }
    // 4 MiB of frames naming nothing, read back as the server answers them.
    let reader = {
        let mut r = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
            sink
        })
    };
    let garbage: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.write_all(&garbage).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let replies = reader.join().unwrap();
    assert_eq!(
        replies.len(),
        garbage.len() / 24 * 9,
        "one short reply per whole frame"
    );
}

/// The driver and two executors as separate processes, the driver's gRPC port known; whatever
/// still runs when this is dropped (a failed assertion) is killed.
struct Cluster {
    driver: Option<std::process::Child>,
    executors: Vec<std::process::Child>,
    url: String,
    http: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.driver.iter_mut().chain(self.executors.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(report: &std::path::Path, sets: &[String]) -> Cluster {
    let grpc = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut cmd = neptune();
    cmd.env("RUST_LOG", "warn")
        .args(["driver", "--app", "shuffle", "--executors", "2"])
        .args(["--listen", &grpc, "--http", &http, "--insecure"])
        .arg("--report")
        .arg(report);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let driver = Some(cmd.stdout(Stdio::null()).spawn().expect("driver"));
    let url = format!("http://{grpc}");
    let executors = (0..2)
        .map(|i| {
            neptune()
                .args([
                    "executor", "--driver", &url, "--cores", "2", "--memory", "1Gi",
                ])
                .args(["--http", "127.0.0.1:0", "--id", &format!("exec-{i}")])
                .args(["--block-listen", "127.0.0.1:0", "--insecure"])
                .stdout(Stdio::null())
                .spawn()
                .expect("executor")
        })
        .collect();
    Cluster {
        driver,
        executors,
        url,
        http,
    }
}

/// What the rogue did, for the checks after the run.
struct Done {
    forged: u64,
}

/// The rogue: refused registrations, then a session forging everything it can.
async fn play_rogue(url: &str, http: &str, blocks: String) -> Done {
    let mut client = connect_rogue(url).await;
    // A live executor's id is not taken over.
    let e = register(&mut client, offer("exec-0"))
        .await
        .err()
        .expect("exec-0 is taken");
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}");
    // Malformed values are refused, naming them.
    let bad = [
        (
            Register {
                executor_id: "a/../../etc".into(),
                ..offer("")
            },
            "executor id",
        ),
        (
            Register {
                executor_id: "x".repeat(1000),
                ..offer("")
            },
            "1000 bytes",
        ),
        (
            Register {
                cores: 0,
                ..offer("r1")
            },
            "cores",
        ),
        (
            Register {
                cores: 1_000_000,
                ..offer("r2")
            },
            "cores",
        ),
        (
            Register {
                memory_limit: u64::MAX,
                ..offer("r3")
            },
            "memory",
        ),
        (
            Register {
                block_addr: "nowhere".into(),
                ..offer("r4")
            },
            "block_addr",
        ),
    ];
    for (r, what) in bad {
        let e = register(&mut client, r).await.err().expect("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(e.message().contains(what), "{what}: {}", e.message());
    }

    let Session { out, mut incoming } = register(&mut client, offer("rogue"))
        .await
        .expect("welcome");
    // Heartbeats with absurd values keep the session alive.
    let beat = out.clone();
    tokio::spawn(async move {
        let hb = neptune_proto::Heartbeat {
            memory_used: u64::MAX,
            memory_limit: u64::MAX,
            spilled_bytes_total: u64::MAX,
            suspended_retained_bytes: u64::MAX,
            job_records: Vec::new(),
        };
        let msg = ExecutorMessage {
            msg: Some(executor_message::Msg::Heartbeat(hb)),
        };
        while beat.send(msg.clone()).is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Its one slot gets a task, which it keeps: from then on nothing else is launched here,
    // so every key below but that one belongs to a task it does not hold.
    let held = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            match incoming.next().await {
                Some(Ok(DriverMessage {
                    msg: Some(driver_message::Msg::Launch(l)),
                })) => {
                    break l.task.expect("key").id();
                }
                Some(Ok(_)) => {}
                other => panic!("the rogue's session ended early: {other:?}"),
            }
        }
    })
    .await
    .expect("a task is launched on the rogue");
    let later = Arc::new(Mutex::new(BTreeSet::new()));
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    {
        let later = later.clone();
        tokio::spawn(async move {
            let end = loop {
                match incoming.next().await {
                    Some(Ok(DriverMessage {
                        msg: Some(driver_message::Msg::Launch(l)),
                    })) => {
                        later.lock().unwrap().insert(l.task.map(|t| t.id()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(s)) => break Some(s),
                    None => break None,
                }
            };
            let _ = ended_tx.send(end);
        });
    }

    let mut forged = 0u64;
    for run in 0..2u64 {
        for stage in 0..2u32 {
            for partition in 0..16u32 {
                for attempt in [0u32, 1, 1000] {
                    let key = TaskKey {
                        job: 0,
                        run,
                        stage,
                        partition,
                        attempt,
                    };
                    if key.id() == held {
                        continue;
                    }
                    for m in forgeries(key) {
                        out.send(m).unwrap();
                        forged += 1;
                    }
                }
            }
        }
    }
    let http = http.to_string();
    let counted = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(120), "every forgery counted", || {
            let (_, body) = http_get(&http, "/metrics").ok()?;
            let rejected = metric(&body, "neptune_driver_rejected_updates_total", "-").0;
            (rejected >= forged as f64).then_some(body)
        })
    })
    .await
    .unwrap();
    let refused = |label: &str| {
        metric(
            &counted,
            "neptune_driver_refused_registrations_total",
            label,
        )
        .1
    };
    assert!(refused("reason=\"id_in_use\"") >= 1.0, "{counted}");
    assert!(refused("reason=\"invalid\"") >= 6.0, "{counted}");

    tokio::task::spawn_blocking(move || forge_block_requests(&blocks))
        .await
        .unwrap();

    // A message above the limit ends the rogue's session, not the driver.
    let huge = update(
        TaskKey {
            job: 0,
            run: 0,
            stage: 0,
            partition: 0,
            attempt: 0,
        },
        task_update::State::Failed(neptune_proto::Failed {
            reason: "x".repeat(2 * MAX_MESSAGE),
            ..Default::default()
        }),
    );
    out.send(huge).unwrap();
    // (The driver drops the session: the rogue sees its stream end, with or without a status.)
    tokio::time::timeout(Duration::from_secs(60), ended)
        .await
        .expect("the driver ends the session of an oversized message")
        .unwrap();
    assert!(
        later.lock().unwrap().is_empty(),
        "nothing but the held task was launched on the rogue"
    );
    Done { forged }
}

#[test]
fn a_rogue_peer_changes_no_result_and_no_total_and_every_refusal_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let work = [
        "shuffle.records=2000000",
        "shuffle.keys=20000",
        "shuffle.maps=16",
        "shuffle.reduces=8",
        "shuffle.cost=100",
        "jobs.sum.runs=2",
    ];
    let mut sets: Vec<String> = work.iter().map(|s| s.to_string()).collect();
    sets.push(format!("grpc.max_message_bytes={MAX_MESSAGE}"));
    let report = report_path(&dir, "rogue");
    let mut c = start(&report, &sets);
    let executors = wait_for(Duration::from_secs(120), "the cluster is ready", || {
        let st = status(&c.http)?;
        st["ready"]
            .as_bool()?
            .then(|| st["executors"].as_array().cloned())?
    });
    let blocks = executors[0]["blocks"]
        .as_str()
        .expect("block address")
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let done = rt.block_on(play_rogue(&c.url, &c.http, blocks));
    assert!(done.forged > 1000);

    let driver = c.driver.take().expect("driver");
    let out = wait_with_timeout(driver, Duration::from_secs(300));
    assert!(out.status.success(), "the driver failed");
    drop(c);
    let r = read_report(&report);
    let undisturbed = report_path(&dir, "undisturbed");
    run_ok(local("shuffle", 1, &undisturbed, &work));
    let u = read_report(&undisturbed);
    assert_eq!(
        job(&r, "sum")["result"],
        job(&u, "sum")["result"],
        "result changed"
    );
    assert_eq!(
        job(&r, "sum")["records"],
        job(&u, "sum")["records"],
        "records moved"
    );
    assert_eq!(job(&r, "sum")["runs"], 2);
    let t = &r["totals"];
    for key in [
        "kills",
        "records_lost",
        "malformed_skipped",
        "fetch_failures",
        "suspensions",
        "resumptions",
    ] {
        assert_eq!(t[key], 0, "totals.{key} moved: {t}");
    }
    assert_eq!(t["suspensions_by_phase"], serde_json::json!({}), "{t}");
    assert_eq!(job(&r, "sum")["malformed_skipped"], 0);
    assert!(
        t["executors_lost"].as_u64().unwrap() >= 1,
        "the rogue was lost: {t}"
    );
}
