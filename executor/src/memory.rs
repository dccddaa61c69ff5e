//! What this executor really uses: process resident set size, read with `procfs`.
//!
//! Process RSS (not the cgroup's usage) because in local mode several executors share one cgroup;
//! on Kubernetes each executor is alone in its container, so the two agree.

/// Resident set size of this process in bytes, or 0 where `/proc` is unavailable.
///
/// From `/proc/self/statm` (resident pages times the page size): one short line, the cheapest
/// of the files that carry it, read on every heartbeat.
pub fn rss_bytes() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.statm())
        .map_or(0, |m| m.resident.saturating_mul(procfs::page_size()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_follows_what_the_process_touches() {
        let before = rss_bytes();
        assert!(before > 0, "a running process has resident pages");
        // 64 MiB written page by page must become resident.
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = rss_bytes();
        assert!(
            after >= before + (48 << 20),
            "rss {before} -> {after} after touching 64 MiB"
        );
        drop(block);
    }
}
