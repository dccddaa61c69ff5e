//! The session handshake over real gRPC (a driver bound on loopback, tonic clients): the
//! welcome comes first, a live id is refused and free again once its session ends, a session
//! that does not start with a registration is refused, and the message size limit holds.

use crate::scheduler::Policy;
use crate::{Driver, DriverConfig};
use neptune_core::config::Config;
use neptune_core::{App, Dataset};
use neptune_proto::driver_client::DriverClient;
use neptune_proto::{
    DriverMessage, ExecutorMessage, Heartbeat, Register, Welcome, driver_message, executor_message,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

type Session = (
    mpsc::UnboundedSender<ExecutorMessage>,
    tonic::Streaming<DriverMessage>,
);

fn register_msg(id: &str) -> ExecutorMessage {
    ExecutorMessage {
        msg: Some(executor_message::Msg::Register(Register {
            executor_id: id.into(),
            cores: 1,
            memory_limit: 1 << 30,
            http_addr: "127.0.0.1:1".into(),
            block_addr: "127.0.0.1:2".into(),
        })),
    }
}

/// Open a session whose first message is `first`; the driver's first reply.
async fn open(
    client: &mut DriverClient<Channel>,
    first: ExecutorMessage,
) -> Result<(Welcome, Session), tonic::Status> {
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(first).unwrap();
    let mut incoming = client
        .session(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    match incoming.next().await {
        Some(Ok(DriverMessage {
            msg: Some(driver_message::Msg::Welcome(w)),
        })) => Ok((w, (tx, incoming))),
        Some(Err(s)) => Err(s),
        other => panic!("neither a welcome nor a refusal: {other:?}"),
    }
}

#[tokio::test]
async fn the_handshake_welcomes_refuses_a_live_id_and_frees_it_when_its_session_ends() {
    let mut app = App::new("t", Arc::new(Config::default()));
    app.batch("b", Dataset::from_fn(1, |_| Box::new(0..1u64)).count())
        .runs(None);
    let sets = Config::from_args(&["grpc.max_message_bytes=1048576"]).unwrap();
    let cfg = DriverConfig::new(
        "t".into(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        1,
        Some(Policy::Neptune),
        sets,
    )
    .unwrap();
    let driver = Driver::bind(
        cfg,
        Arc::new(app),
        neptune_net::Security::Insecure,
        neptune_net::Limits::default(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", driver.grpc_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(driver.run(async {
        let _ = stopped.await;
    }));
    let mut client = DriverClient::connect(url).await.unwrap();

    let (w, first) = open(&mut client, register_msg("e1")).await.unwrap();
    assert_eq!((w.executor_id.as_str(), w.app.as_str()), ("e1", "t"));
    assert_eq!(w.max_message_bytes, 1 << 20);
    assert!(w.config.iter().any(|e| e.key == "grpc.max_message_bytes"));

    let taken = open(&mut client, register_msg("e1")).await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken}");

    let heartbeat_first = ExecutorMessage {
        msg: Some(executor_message::Msg::Heartbeat(Heartbeat::default())),
    };
    let e = open(&mut client, heartbeat_first).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let e = open(&mut client, register_msg("no/slashes"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");

    // A message above the limit ends that session (and only that one).
    let (_, (tx, mut incoming)) = open(&mut client, register_msg("big")).await.unwrap();
    let huge = ExecutorMessage {
        msg: Some(executor_message::Msg::Update(neptune_proto::TaskUpdate {
            task: None,
            state: Some(neptune_proto::task_update::State::Rejected(
                neptune_proto::Rejected {
                    reason: "x".repeat(2 << 20),
                },
            )),
        })),
    };
    tx.send(huge).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(_)) = incoming.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the oversized session was not ended");

    // The first session ends; its id is free again (a restarted executor retries until then).
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        match open(&mut client, register_msg("e1")).await {
            Ok((w, s)) => {
                again = Some((w, s));
                break;
            }
            Err(s) if s.code() == Code::AlreadyExists => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("{s}"),
        }
    }
    let (w, _session) = again.expect("the id is free once its session ended");
    assert!(w.session > 1);
    let _ = stop.send(());
    let _ = running.await.unwrap();
}
