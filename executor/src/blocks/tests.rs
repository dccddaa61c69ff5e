//! Block store: spilling beyond the budget, release, and serving blocks over mutually
//! authenticated TCP: pooled connections, refused strangers, idle connections evicted and
//! timed out so they cannot lock fetches out.

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
    };
    let e = client.fetch(&ctx(), &loc, id(0)).unwrap_err();
    assert_eq!(e.executor(), Some("gone"));
    assert!(e.to_string().contains("gone"), "{e}");
}
