//! Checking an executor's `Register` message before anything of it is kept: the id's length and
//! charset, cores and memory within sane bounds, and addresses that parse as `host:port`. The
//! rules that need the driver's state (an id with a live session is refused, not taken over;
//! how many executors may register) are the event loop's, see `event_loop/sessions.rs`.

use neptune_core::ids::check_executor_id;
use neptune_proto::{MAX_CORES, MAX_MEMORY, MIN_MEMORY, Register};
use std::net::SocketAddr;

/// A registration whose every value has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The id asked for; `None`: the driver assigns one.
    pub id: Option<String>,
    /// Task slots.
    pub cores: u32,
    /// Memory limit, bytes.
    pub memory_limit: u64,
    /// Where the executor serves `/metrics`.
    pub http_addr: String,
    /// Where the executor serves its shuffle blocks, as other executors must dial it.
    pub block_addr: String,
}

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The id is malformed.
    #[error("{0}")]
    Id(String),
    /// Cores outside `1..=MAX_CORES`.
    #[error("cores {0} is not within 1..={MAX_CORES}")]
    Cores(u32),
    /// Memory outside `MIN_MEMORY..=MAX_MEMORY`.
    #[error("memory limit {0} bytes is not within {MIN_MEMORY}..={MAX_MEMORY}")]
    Memory(u64),
    /// An address is not `host:port`.
    #[error("{field} `{addr}` is not host:port: {reason}")]
    Addr {
        /// Which address.
        field: &'static str,
        /// The value (cut to a printable length).
        addr: String,
        /// What is wrong.
        reason: String,
    },
}

/// Check `r` (sent from `peer`).
///
/// # Errors
/// [`RegisterError`] naming the first value out of bounds.
pub fn check(r: Register, peer: Option<SocketAddr>) -> Result<Registration, RegisterError> {
    let id = if r.executor_id.is_empty() {
        None
    } else {
        check_executor_id(&r.executor_id).map_err(|e| RegisterError::Id(e.to_string()))?;
        Some(r.executor_id)
    };
    if !(1..=MAX_CORES).contains(&r.cores) {
        return Err(RegisterError::Cores(r.cores));
    }
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&r.memory_limit) {
        return Err(RegisterError::Memory(r.memory_limit));
    }
    check_addr("http_addr", &r.http_addr)?;
    check_addr("block_addr", &r.block_addr)?;
    Ok(Registration {
        id,
        cores: r.cores,
        memory_limit: r.memory_limit,
        http_addr: r.http_addr,
        block_addr: advertised(&r.block_addr, peer),
    })
}

/// `addr` must be `ip:port` or `hostname:port` (a DNS name of at most 253 characters), with a
/// port other than 0.
fn check_addr(field: &'static str, addr: &str) -> Result<(), RegisterError> {
    let err = |reason: &str| RegisterError::Addr {
        field,
        addr: addr.chars().take(64).collect(),
        reason: reason.to_string(),
    };
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return if sa.port() == 0 {
            Err(err("port 0"))
        } else {
            Ok(())
        };
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| err("no port"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(err("no valid port (1-65535)")),
    }
    let hostname = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if hostname {
        Ok(())
    } else {
        Err(err("the host is neither an IP address nor a DNS name"))
    }
}

/// The block server address to give other executors: the executor's own, with an unspecified
/// host (it listens on all interfaces) replaced by the address its connection came from.
fn advertised(block_addr: &str, peer: Option<SocketAddr>) -> String {
    match (block_addr.parse::<SocketAddr>(), peer) {
        (Ok(a), Some(p)) if a.ip().is_unspecified() => {
            SocketAddr::new(p.ip(), a.port()).to_string()
        }
        _ => block_addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Register {
        Register {
            executor_id: "exec-0".into(),
            cores: 2,
            memory_limit: 1 << 30,
            http_addr: "127.0.0.1:4041".into(),
            block_addr: "0.0.0.0:7000".into(),
        }
    }

    #[test]
    fn a_valid_registration_is_kept_with_its_block_address_made_dialable() {
        let peer = "10.1.2.3:5555".parse().ok();
        let r = check(ok(), peer).unwrap();
        assert_eq!(r.id.as_deref(), Some("exec-0"));
        assert_eq!(r.block_addr, "10.1.2.3:7000");
        let named = Register {
            executor_id: String::new(),
            block_addr: "exec-0.neptune.svc:7000".into(),
            ..ok()
        };
        let r = check(named, peer).unwrap();
        assert_eq!(
            (r.id, r.block_addr.as_str()),
            (None, "exec-0.neptune.svc:7000")
        );
    }

    #[test]
    fn every_value_out_of_bounds_is_refused_naming_it() {
        let cases: Vec<(Register, &str)> = vec![
            (
                Register {
                    executor_id: "a/../x".into(),
                    ..ok()
                },
                "'/'",
            ),
            (
                Register {
                    executor_id: "x".repeat(300),
                    ..ok()
                },
                "300 bytes",
            ),
            (Register { cores: 0, ..ok() }, "cores 0"),
            (
                Register {
                    cores: 1_000_000,
                    ..ok()
                },
                "cores 1000000",
            ),
            (
                Register {
                    memory_limit: 0,
                    ..ok()
                },
                "memory limit 0",
            ),
            (
                Register {
                    memory_limit: u64::MAX,
                    ..ok()
                },
                "memory limit",
            ),
            (
                Register {
                    block_addr: "nowhere".into(),
                    ..ok()
                },
                "block_addr",
            ),
            (
                Register {
                    block_addr: "h:0".into(),
                    ..ok()
                },
                "block_addr",
            ),
            (
                Register {
                    block_addr: "1.2.3.4:0".into(),
                    ..ok()
                },
                "port 0",
            ),
            (
                Register {
                    block_addr: "a b:80".into(),
                    ..ok()
                },
                "neither",
            ),
            (
                Register {
                    http_addr: "x".repeat(10_000),
                    ..ok()
                },
                "http_addr",
            ),
        ];
        for (r, want) in cases {
            let e = check(r, None).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
            assert!(e.len() < 400, "messages stay short: {e}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_registrations_are_kept_only_within_bounds(
            executor_id in "\\PC{0,300}",
            cores in proptest::prelude::any::<u32>(),
            memory_limit in proptest::prelude::any::<u64>(),
            http_addr in "\\PC{0,80}",
            block_addr in proptest::prop_oneof!["[0-9.:]{0,24}", "\\PC{0,80}"],
        ) {
            let r = Register { executor_id, cores, memory_limit, http_addr, block_addr };
            if let Ok(kept) = check(r.clone(), None) {
                proptest::prop_assert!(kept.id.as_deref().is_none_or(|id| check_executor_id(id).is_ok()));
                proptest::prop_assert!((1..=MAX_CORES).contains(&kept.cores));
                proptest::prop_assert!((MIN_MEMORY..=MAX_MEMORY).contains(&kept.memory_limit));
                proptest::prop_assert!(kept.block_addr.len() <= 260 && kept.http_addr.len() <= 260);
            }
        }
    }
}
