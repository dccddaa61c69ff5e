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

/// Parse a memory size: plain bytes, or with a suffix `k`/`K`/`Ki`, `M`/`Mi`, `G`/`Gi`, `T`/`Ti`
/// (decimal for `k`/`M`/`G`/`T` as in Kubernetes quantities, binary for `Ki`/`Mi`/`Gi`/`Ti`).
///
/// # Errors
/// A message naming the value when it does not parse or is zero.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 2147483648, 2Gi, 512Mi)"))?;
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit `{unit}` (use Ki, Mi, Gi, Ti, k, M, G, T)"
            ));
        }
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if v == 0 {
        return Err(format!("`{s}` must be greater than zero"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_kubernetes_suffixes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("2Gi").unwrap(), 2 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512_000_000);
        assert!(parse_size("lots").unwrap_err().contains("lots"));
        assert!(parse_size("5Xi").unwrap_err().contains("Xi"));
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn rss_is_read_from_proc() {
        assert!(parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n") == Some(2 << 20));
        assert!(rss_bytes() > 0);
    }
}
