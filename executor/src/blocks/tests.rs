//! Block store: spilling beyond the budget, release, and serving blocks over TCP.

use super::*;
use neptune_core::ids::{JobKind, TaskId};

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
    let store = BlockStore::new("e0", 1000, 1).unwrap(); // 400 bytes for blocks
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
fn a_remote_block_is_fetched_over_tcp_and_a_missing_one_is_reported() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Arc::new(BlockStore::new("e1", 1 << 20, 1).unwrap());
    server.put(id(5), (0..=255).collect()).unwrap();
    let (addr, task) = rt
        .block_on(server::start("127.0.0.1".parse().unwrap(), server.clone()))
        .unwrap();
    let client = BlockStore::new("e2", 1 << 20, 1).unwrap();
    let loc = MapLoc {
        executor: "e1".into(),
        addr: addr.to_string(),
    };
    let got = client.fetch(&ctx(), &loc, id(5)).unwrap();
    assert_eq!(got.len(), 256);
    let missing = client.fetch(&ctx(), &loc, id(6)).unwrap_err();
    assert!(matches!(missing, FetchError::Missing { .. }), "{missing}");
    task.abort();
}

#[test]
fn an_unreachable_executor_fails_the_fetch_naming_it() {
    let client = BlockStore::new("e2", 1 << 20, 1).unwrap();
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
