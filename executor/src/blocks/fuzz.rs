//! Property-based fuzzing of the block wire format: arbitrary and mutated request streams into
//! the block server, arbitrary reply bytes into the fetch decoder. Neither may panic, allocate
//! more than the limits allow, create anything, or wedge.

use super::*;
use neptune_core::ids::{JobKind, TaskId};
use proptest::prelude::*;
use std::io::Cursor;

fn ctx() -> TaskContext {
    TaskContext::detached(
        TaskId {
            job: 0,
            run: 0,
            stage: 1,
            partition: 0,
        },
        JobKind::Batch,
    )
}

/// Blocks of a small id space, so generated requests hit some of them.
fn small_id() -> impl Strategy<Value = BlockId> {
    (0u32..2, 0u64..3, 0u32..2, 0u32..2, 0u32..3).prop_map(|(job, run, stage, map, reduce)| {
        BlockId {
            job,
            run,
            stage,
            map,
            reduce,
        }
    })
}

/// A request stream: well-formed requests (some for held blocks), random bytes, or both spliced.
fn request_stream() -> impl Strategy<Value = Vec<u8>> {
    let valid = || {
        prop::collection::vec(small_id(), 0..8).prop_map(|ids| {
            ids.into_iter()
                .flat_map(fetch::encode_request)
                .collect::<Vec<u8>>()
        })
    };
    let noise = || prop::collection::vec(any::<u8>(), 0..512);
    prop_oneof![
        valid(),
        noise(),
        (valid(), noise(), any::<prop::sample::Index>()).prop_map(|(mut v, n, at)| {
            let at = if v.is_empty() { 0 } else { at.index(v.len()) };
            v.splice(at..at, n);
            v
        }),
    ]
}

/// The store every server case serves: a few blocks of the small id space.
fn store() -> (Arc<BlockStore>, Vec<(BlockId, Vec<u8>)>) {
    let store = Arc::new(BlockStore::new("fuzz", 1 << 20, 1, None).unwrap());
    let held: Vec<(BlockId, Vec<u8>)> = (0u8..4)
        .map(|i| {
            let id = BlockId {
                job: 0,
                run: u64::from(i % 3),
                stage: 1,
                map: u32::from(i % 2),
                reduce: u32::from(i),
            };
            (id, vec![i; usize::from(i) * 7])
        })
        .collect();
    for (id, bytes) in &held {
        store.put(*id, bytes.clone()).unwrap();
    }
    (store, held)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_block_server_answers_every_whole_request_and_nothing_else(input in request_stream()) {
        let (store, held) = store();
        let before = store.memory_bytes();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut client, conn) = tokio::io::duplex(1 << 20);
            let served = tokio::spawn(server::serve(conn, store.clone(), neptune_net::Limits::default(), neptune_net::NetMetrics::new(&[], false), None));
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            served.await.unwrap().unwrap();
            out
        });
        // One reply per whole 24-byte request, each the held block or "missing".
        let mut rest = out.as_slice();
        for req in input.chunks_exact(fetch::REQUEST_LEN) {
            let id = fetch::decode_request(req.try_into().unwrap());
            let (head, tail) = rest.split_at(fetch::REPLY_HEAD_LEN);
            let head = fetch::decode_reply_head(head.try_into().unwrap(), u64::MAX).unwrap();
            match held.iter().find(|(h, _)| *h == id) {
                Some((_, bytes)) => {
                    prop_assert_eq!(head, fetch::Head::Found(bytes.len() as u64));
                    prop_assert_eq!(&tail[..bytes.len()], bytes.as_slice());
                    rest = &tail[bytes.len()..];
                }
                None => {
                    prop_assert_eq!(head, fetch::Head::Missing);
                    rest = tail;
                }
            }
        }
        prop_assert!(rest.is_empty(), "a reply without a request");
        prop_assert_eq!(store.memory_bytes(), before, "requests created or dropped blocks");
    }

    #[test]
    fn the_fetch_decoder_never_accepts_more_than_the_limit(
        status in prop_oneof![Just(fetch::FOUND), Just(fetch::MISSING), Just(fetch::NOT_OPEN), any::<u8>()],
        len in prop_oneof![0u64..4096, any::<u64>()],
        body in prop::collection::vec(any::<u8>(), 0..4096),
        limit in 0u64..2048,
    ) {
        let mut bytes = fetch::encode_reply_head(status, len).to_vec();
        bytes.extend_from_slice(&body);
        let got = fetch::read_reply(&ctx(), &mut Cursor::new(bytes), limit);
        match got {
            Ok(fetch::Reply::Found(b)) => {
                prop_assert_eq!(status, fetch::FOUND);
                prop_assert!(b.len() as u64 == len && len <= limit);
                prop_assert_eq!(b.as_slice(), &body[..b.len()]);
            }
            Ok(fetch::Reply::Missing) => prop_assert_eq!(status, fetch::MISSING),
            Ok(fetch::Reply::NotOpen) => prop_assert_eq!(status, fetch::NOT_OPEN),
            Ok(fetch::Reply::Killed) => prop_assert!(false, "nobody killed the task"),
            Err(fetch::AttemptError::Bad(_)) => {
                prop_assert!(status > fetch::NOT_OPEN || (status == fetch::FOUND && len > limit));
            }
            Err(fetch::AttemptError::Io(e)) => {
                // Only a body shorter than announced.
                prop_assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
                prop_assert!(status == fetch::FOUND && len <= limit && (body.len() as u64) < len);
            }
        }
    }

    #[test]
    fn truncated_reply_headers_are_errors(head in prop::collection::vec(any::<u8>(), 0..fetch::REPLY_HEAD_LEN)) {
        let got = fetch::read_reply(&ctx(), &mut Cursor::new(head), u64::MAX);
        prop_assert!(matches!(got, Err(fetch::AttemptError::Io(_))));
    }
}
