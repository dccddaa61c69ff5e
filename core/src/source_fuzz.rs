//! Property-based fuzzing of record parsing: arbitrary bytes as text, JSON-lines and CSV files,
//! and as a stream receiver's cut. No input may panic or hang; every record emitted parses, and
//! every line is accounted for (a record, a skipped record, or the task's error).

use super::*;
use crate::ids::JobKind;
use crate::shuffle::{BlockId, Blocks, LocalBlocks, MapLoc, ShuffleRead};
use crate::source_socket::{RECEIVER_STAGE, receiver_lines};
use proptest::prelude::*;

fn ctx() -> TaskContext {
    TaskContext::detached_at(JobKind::Batch, 0, 0)
}

/// File contents: mostly line-shaped text (some of it JSON or CSV), sometimes raw bytes.
fn contents() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "[0-9]{1,6}",
        r#"\{"n":[0-9]{1,4}\}"#,
        "[ -~]{0,20}",
        "[0-9]{1,3},[a-z]{0,3}",
        "\\PC{0,8}",
    ];
    let text = prop::collection::vec((line, prop_oneof![Just("\n"), Just("\r\n")]), 0..30)
        .prop_map(|ls| {
            ls.into_iter()
                .flat_map(|(l, e)| format!("{l}{e}").into_bytes())
                .collect()
        });
    prop_oneof![3 => text, 1 => prop::collection::vec(any::<u8>(), 0..400)]
}

fn file(bytes: &[u8], name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    let pattern = format!("{}/*", dir.path().display());
    (dir, pattern)
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Rec {
    n: u32,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn text_lines_are_the_file_split_at_newlines_or_an_error(bytes in contents()) {
        let (_d, pattern) = file(&bytes, "a.txt");
        let ds = text_files(&pattern).unwrap();
        let c = ctx();
        let lines: Vec<String> = ds.iter(&c).collect();
        prop_assert_eq!(c.records(), lines.len() as u64);
        match std::str::from_utf8(&bytes) {
            Ok(s) => {
                prop_assert!(!c.has_failed());
                let want: Vec<&str> = s.lines().collect();
                prop_assert_eq!(lines, want);
            }
            Err(_) => prop_assert!(c.has_failed(), "invalid UTF-8 must fail the task"),
        }
    }

    #[test]
    fn json_lines_yield_records_or_skip_or_fail_naming_the_line(bytes in contents(), skip in any::<bool>()) {
        let (_d, pattern) = file(&bytes, "a.jsonl");
        let policy = if skip { Malformed::Skip } else { Malformed::Fail };
        let ds = json_lines_with::<Rec>(&pattern, policy).unwrap();
        let c = ctx();
        let recs: Vec<Rec> = ds.iter(&c).collect();
        let lines = c.records();
        prop_assert!(recs.len() as u64 + c.skipped() <= lines);
        if let Some(e) = c.take_error() {
            prop_assert!(e.to_string().contains("a.jsonl"), "{}", e);
        } else if std::str::from_utf8(&bytes).is_ok() {
            let blank = String::from_utf8_lossy(&bytes).lines().filter(|l| l.trim().is_empty()).count() as u64;
            prop_assert_eq!(recs.len() as u64 + c.skipped() + blank, lines);
        }
    }

    #[test]
    fn csv_rows_yield_records_or_skip_or_fail(bytes in contents(), skip in any::<bool>()) {
        let mut with_header = b"n\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let (_d, pattern) = file(&with_header, "a.csv");
        let policy = if skip { Malformed::Skip } else { Malformed::Fail };
        let ds = csv_files_with::<Rec>(&pattern, policy).unwrap();
        let c = ctx();
        let recs: Vec<Rec> = ds.iter(&c).collect();
        prop_assert_eq!(recs.len() as u64, c.records());
        if let Some(e) = c.take_error() {
            prop_assert!(e.to_string().contains("a.csv"), "{}", e);
        }
    }

    #[test]
    fn a_receiver_cut_of_arbitrary_bytes_decodes_to_lines_or_fails_the_task(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let blocks = std::sync::Arc::new(LocalBlocks::new(dir.path(), 1 << 20));
        let block = BlockId { job: 0, run: 0, stage: RECEIVER_STAGE, map: 0, reduce: 0 };
        blocks.put(block, bytes.clone()).unwrap();
        let c = ctx();
        let loc = MapLoc { executor: "r".into(), addr: String::new(), max_block: u64::MAX };
        c.set_shuffle(blocks, vec![ShuffleRead { stage: RECEIVER_STAGE, maps: vec![loc] }]);
        let lines: Vec<String> = receiver_lines(0, 1).iter(&c).collect();
        let encoded: usize = lines.iter().map(|l| postcard::to_stdvec(l).unwrap().len()).sum();
        prop_assert!(encoded <= bytes.len());
        prop_assert!(c.has_failed() || encoded == bytes.len(), "bytes neither decoded nor refused");
    }
}
