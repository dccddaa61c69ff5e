//! What this executor really uses: process resident set size from `/proc/self/status`.
//!
//! Process RSS (not the cgroup's usage) because in local mode several executors share one cgroup;
//! on Kubernetes each executor is alone in its container, so the two agree.

/// Resident set size of this process in bytes, or 0 where `/proc` is unavailable.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_vm_rss(&s))
        .unwrap_or(0)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc() {
        assert!(parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n") == Some(2 << 20));
        assert!(rss_bytes() > 0);
    }
}
