//! Partitioning and block store contract tests.

use super::*;

#[test]
fn keys_go_to_the_same_partition_every_time() {
    let a = partition_of("word", 8);
    assert_eq!(a, partition_of("word", 8));
    assert!(a < 8);
    let spread: std::collections::BTreeSet<u32> =
        (0..100u32).map(|i| partition_of(&i, 4)).collect();
    assert_eq!(spread.len(), 4, "keys spread over every partition");
}

#[test]
fn local_blocks_append_segments_and_report_missing_blocks() {
    let b = LocalBlocks::new(std::env::temp_dir(), 1 << 20);
    let id = BlockId {
        job: 0,
        run: 0,
        stage: 0,
        map: 1,
        reduce: 2,
    };
    b.put(id, vec![1, 2]).unwrap();
    b.put(id, vec![3]).unwrap();
    let ctx = TaskContext::detached(
        crate::ids::TaskId {
            job: 0,
            run: 0,
            stage: 1,
            partition: 2,
        },
        crate::ids::JobKind::Batch,
    );
    let loc = MapLoc {
        executor: "e".into(),
        addr: String::new(),
        max_block: u64::MAX,
    };
    assert_eq!(b.fetch(&ctx, &loc, id).unwrap(), vec![1, 2, 3]);
    let missing = b.fetch(&ctx, &loc, BlockId { map: 9, ..id }).unwrap_err();
    assert_eq!(missing.executor(), Some("e"));
}

#[test]
fn a_map_task_run_twice_on_one_executor_leaves_its_blocks_written_once() {
    let b = std::sync::Arc::new(LocalBlocks::new(std::env::temp_dir(), 1 << 20));
    let ctx = TaskContext::detached(
        crate::ids::TaskId {
            job: 0,
            run: 0,
            stage: 0,
            partition: 1,
        },
        crate::ids::JobKind::Batch,
    );
    ctx.set_shuffle(b.clone(), Vec::new());
    let run = || write::write_records(&ctx, 2, 0..10u32, |r| r % 2).unwrap();
    let first: MapStatus = postcard::from_bytes(&run()).unwrap();
    let second: MapStatus = postcard::from_bytes(&run()).unwrap();
    assert_eq!(first, second);
    let loc = MapLoc {
        executor: "e".into(),
        addr: String::new(),
        max_block: u64::MAX,
    };
    for reduce in 0..2u32 {
        let id = BlockId {
            job: 0,
            run: 0,
            stage: 0,
            map: 1,
            reduce,
        };
        let block = b.fetch(&ctx, &loc, id).unwrap();
        assert_eq!(
            block.len() as u64,
            second.bytes[reduce as usize],
            "no duplicate segments"
        );
    }
}
