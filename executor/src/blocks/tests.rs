//! Block store: spilling beyond the budget, release, serving blocks over mutually
//! authenticated TCP (pooled connections, refused strangers, idle connections evicted and timed
//! out so they cannot lock fetches out), and refusing replies that announce more than a block may
//! hold.

use super::*;
use neptune_core::ids::{JobKind, TaskId};
use neptune_net::metrics::{Closed, NetMetrics};
use neptune_net::{Limits, Security, Tls};
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

fn tls(app: &str) -> Arc<Tls> {
    let creds = neptune_net::issue::issue(app, &[], 1)
        .unwrap()
        .credentials()
        .unwrap();
    Arc::new(Tls::new(creds).unwrap())
}

/// A block server for `store` on loopback, in `rt`.
fn serve(
    rt: &tokio::runtime::Runtime,
    store: Arc<BlockStore>,
    tls: &Arc<Tls>,
    limits: Limits,
) -> (std::net::SocketAddr, NetMetrics) {
    let net = NetMetrics::new(&[], true);
    let (addr, task) = rt
        .block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            server::start(l, store, &Security::Mtls(tls.clone()), limits, net.clone())
        })
        .unwrap();
    std::mem::forget(task); // runs until the runtime is dropped
    (addr, net)
}

fn client(name: &str, tls: &Arc<Tls>) -> BlockStore {
    BlockStore::new(name, 1 << 20, 1, Some(tls.blocks_client())).unwrap()
}

fn loc(addr: std::net::SocketAddr) -> MapLoc {
    MapLoc {
        executor: "e1".into(),
        addr: addr.to_string(),
        max_block: u64::MAX,
    }
}

/// Poll `f` until true, failing after a generous deadline (never a timing assertion).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn id(map: u32) -> BlockId {
    BlockId {
        job: 1,
        run: 2,
        stage: 0,
        map,
        reduce: 3,
    }
}

fn ctx() -> TaskContext {
    TaskContext::detached(
        TaskId {
            job: 1,
            run: 2,
            stage: 1,
            partition: 3,
        },
        JobKind::Batch,
    )
}

#[test]
fn blocks_beyond_the_budget_spill_to_disk_and_read_back_whole() {
    let store = BlockStore::new("e0", 1000, 1, None).unwrap(); // 400 bytes for blocks
    store.put(id(0), vec![7; 300]).unwrap();
    store.put(id(0), vec![8; 300]).unwrap();
    assert_eq!(store.spilled_total(), 300);
    assert_eq!(store.memory_bytes(), 300);
    let b = store.get(id(0)).unwrap().unwrap();
    assert_eq!((b.len(), b[0], b[599]), (600, 7, 8));
    store.release(1, 2);
    assert!(store.get(id(0)).unwrap().is_none());
    assert_eq!(store.memory_bytes(), 0);
}

#[test]
fn a_remote_block_is_fetched_over_mutual_tls_on_a_reused_connection_and_a_missing_one_is_reported()
{
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = tls("app");
    let server = Arc::new(BlockStore::new("e1", 1 << 20, 1, None).unwrap());
    server.put(id(5), (0..=255).collect()).unwrap();
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (addr, net) = serve(&rt, server.clone(), &app, limits);
    let client = client("e2", &app);
    let got = client.fetch(&ctx(), &loc(addr), id(5)).unwrap();
    assert_eq!(got, (0..=255).collect::<Vec<u8>>());
    let missing = client.fetch(&ctx(), &loc(addr), id(6)).unwrap_err();
    assert!(matches!(missing, FetchError::Missing { .. }), "{missing}");
    // Both exchanges used one connection, now pooled.
    assert_eq!(client.pool().idle_count(&addr.to_string()), 1);
    assert_eq!(net.open("blocks").get(), 1);

    // The server closes the pooled connection once idle; the next fetch reconnects by itself.
    eventually("the idle connection closed", || {
        net.closed_count("blocks", Closed::IdleTimeout) == 1
    });
    assert_eq!(client.fetch(&ctx(), &loc(addr), id(5)).unwrap().len(), 256);
}

#[test]
fn fetches_without_the_apps_certificate_get_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = tls("app");
    let server = Arc::new(BlockStore::new("e1", 1 << 20, 1, None).unwrap());
    server.put(id(5), vec![42; 64]).unwrap();
    let (addr, net) = serve(&rt, server, &app, Limits::default());

    let rogue = client("rogue", &tls("other"));
    let e = rogue.fetch(&ctx(), &loc(addr), id(5)).unwrap_err();
    assert!(matches!(e, FetchError::Unreachable { .. }), "{e}");

    // A plaintext request, well-formed for the block protocol.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&fetch::encode_request(id(5))).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        !reply.windows(8).any(|w| w == [42; 8]),
        "block bytes leaked: {reply:?}"
    );
    assert!(net.closed_count("blocks", Closed::HandshakeFailed) >= 2);
}

#[test]
fn more_idle_connections_than_the_cap_do_not_stop_fetches_and_are_closed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = tls("app");
    let server = Arc::new(BlockStore::new("e1", 1 << 20, 1, None).unwrap());
    server.put(id(5), vec![7; 1000]).unwrap();
    let cap = 8;
    let limits = Limits {
        max_connections: cap,
        handshake_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let (addr, net) = serve(&rt, server, &app, limits);
    // Three times the cap of connections that never say anything.
    let idle: Vec<std::net::TcpStream> = (0..3 * cap)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    eventually("the server is full", || {
        net.open("blocks").get() == cap as i64
    });

    // A real fetch still gets through: it evicts the oldest idle connection.
    let client = client("e2", &app);
    assert_eq!(
        client.fetch(&ctx(), &loc(addr), id(5)).unwrap(),
        vec![7; 1000]
    );
    assert!(net.closed_count("blocks", Closed::Evicted) >= (2 * cap) as u64);

    // Every idle connection gets closed: evicted, or at the handshake timeout.
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("idle connection not closed: {other:?}"),
        }
    }
    eventually("only the fetch's pooled connection is left", || {
        net.open("blocks").get() == 1
    });
    // And the pooled connection still serves.
    assert_eq!(client.fetch(&ctx(), &loc(addr), id(5)).unwrap().len(), 1000);
}

#[test]
fn an_unreachable_executor_fails_the_fetch_naming_it() {
    let client = BlockStore::new("e2", 1 << 20, 1, None).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let loc = MapLoc {
        executor: "gone".into(),
        addr: format!("127.0.0.1:{port}"),
        max_block: u64::MAX,
    };
    let e = client.fetch(&ctx(), &loc, id(0)).unwrap_err();
    assert_eq!(e.executor(), Some("gone"));
    assert!(e.to_string().contains("gone"), "{e}");
}

/// A one-shot fake block server that answers the first request with `reply`; returns its address.
fn fake_server(reply: Vec<u8>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in l.incoming().take(fetch::ATTEMPTS as usize) {
            let Ok(mut c) = conn else { return };
            let mut req = [0u8; fetch::REQUEST_LEN];
            if c.read_exact(&mut req).is_ok() {
                let _ = c.write_all(&reply);
            }
        }
    });
    addr
}

fn liar_loc(addr: String, max_block: u64) -> MapLoc {
    MapLoc {
        executor: "liar".into(),
        addr,
        max_block,
    }
}

#[test]
fn a_peer_announcing_a_block_longer_than_its_map_task_reported_is_refused_before_allocating() {
    let client = BlockStore::new("e2", 1 << 20, 1, None).unwrap();
    // 2^40 bytes announced, 3 sent: refused from the header alone, no retry.
    let mut reply = fetch::encode_reply_head(fetch::FOUND, 1 << 40).to_vec();
    reply.extend_from_slice(&[1, 2, 3]);
    let e = client
        .fetch(&ctx(), &liar_loc(fake_server(reply), 100), id(0))
        .unwrap_err();
    assert!(matches!(e, FetchError::BadReply { .. }), "{e}");
    assert_eq!(e.executor(), Some("liar"), "the liar is blamed");
    assert!(e.to_string().contains("1099511627776"), "{e}");
}

#[test]
fn the_fetch_cap_bounds_blocks_of_unknown_size_and_unknown_statuses_are_refused() {
    let client = BlockStore::new("e2", 1 << 20, 1, None).unwrap();
    client.set_max_block_bytes(1 << 20);
    let reply = fetch::encode_reply_head(fetch::FOUND, (1 << 20) + 1).to_vec();
    let e = client
        .fetch(&ctx(), &liar_loc(fake_server(reply), u64::MAX), id(0))
        .unwrap_err();
    assert!(matches!(e, FetchError::BadReply { .. }), "{e}");
    let reply = fetch::encode_reply_head(7, 0).to_vec();
    let e = client
        .fetch(&ctx(), &liar_loc(fake_server(reply), u64::MAX), id(0))
        .unwrap_err();
    assert!(e.to_string().contains("unknown reply status 7"), "{e}");
}

#[test]
fn a_peer_that_announces_a_length_and_hangs_up_early_fails_the_fetch_as_unreachable() {
    let client = BlockStore::new("e2", 1 << 20, 1, None).unwrap();
    let mut reply = fetch::encode_reply_head(fetch::FOUND, 50).to_vec();
    reply.extend_from_slice(&[0; 10]);
    let e = client
        .fetch(&ctx(), &liar_loc(fake_server(reply), 100), id(0))
        .unwrap_err();
    assert!(matches!(e, FetchError::Unreachable { .. }), "{e}");
}

#[test]
fn a_map_task_rerun_replaces_what_its_earlier_attempt_wrote_here() {
    use neptune_core::shuffle::Blocks;
    let store = BlockStore::new("e0", 1 << 20, 1, None).unwrap();
    store.put(id(0), vec![1, 2]).unwrap();
    store.discard(id(0));
    store.put(id(0), vec![3]).unwrap();
    assert_eq!(store.get(id(0)).unwrap().unwrap(), vec![3]);
    assert_eq!(store.memory_bytes(), 1);
}

#[test]
fn a_request_for_an_invented_run_gets_missing_and_creates_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Arc::new(BlockStore::new("e1", 1 << 20, 1, None).unwrap());
    store.put(id(5), vec![9; 10]).unwrap();
    let (mut a, b) = tokio::io::duplex(1 << 16);
    let served = rt.spawn(server::serve(
        b,
        store.clone(),
        Limits::default(),
        NetMetrics::new(&[], false),
        None,
    ));
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let invented = BlockId { run: 999, ..id(5) };
        a.write_all(&fetch::encode_request(invented)).await.unwrap();
        let mut head = [0u8; fetch::REPLY_HEAD_LEN];
        a.read_exact(&mut head).await.unwrap();
        assert_eq!(fetch::decode_reply_head(&head, 0), Ok(fetch::Head::Missing));
        // A receiver cut of a receiver that does not run here: missing too.
        let cut = BlockId {
            stage: neptune_core::source_socket::RECEIVER_STAGE,
            ..invented
        };
        a.write_all(&fetch::encode_request(cut)).await.unwrap();
        a.read_exact(&mut head).await.unwrap();
        assert_eq!(fetch::decode_reply_head(&head, 0), Ok(fetch::Head::Missing));
        drop(a);
    });
    rt.block_on(served).unwrap().unwrap();
    assert_eq!(store.memory_bytes(), 10, "nothing was created");
    assert_eq!(store.get(BlockId { run: 999, ..id(5) }).unwrap(), None);
}

#[path = "fuzz.rs"]
mod fuzz;
