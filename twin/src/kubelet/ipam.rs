//! Loopback addresses for nodes and pods: every pod gets its own `127.0.K.N`.
//!
//! All of 127.0.0.0/8 routes to `lo` on Linux, so a process can bind any of these addresses
//! without configuring an interface, and pods that bind their pod IP never collide on ports.
//! A twin takes one /24 (`127.0.K.0`, K in 1..=254; `127.0.0.0/24` is left to the host, whose
//! `127.0.0.1` runs the API server) and holds an exclusive lock on a per-subnet file while it
//! runs, so twins started in parallel (other tests, other processes) never hand out the same
//! address. The lock is an OS file lock: it goes away with the process, even on a crash.
//!
//! Addresses are handed out round-robin, so a freed address is reused as late as possible
//! (sockets of a deleted pod in TIME_WAIT never meet a new pod on the same IP soon).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Addresses the allocator may hand out within the /24 (`.0` and `.255` excluded).
const FIRST: u8 = 1;
const LAST: u8 = 254;

/// Why no subnet or address could be had.
#[derive(Debug, Error)]
pub enum IpamError {
    /// The lock directory could not be created or a lock file opened.
    #[error("loopback subnet lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every subnet 127.0.1.0 .. 127.0.254.0 is held by another twin.
    #[error("every loopback subnet 127.0.1-254.0/24 is held by another twin (locks in {0})")]
    NoSubnet(PathBuf),
    /// The requested subnet is held by another twin.
    #[error("loopback subnet 127.0.{0}.0/24 is held by another twin")]
    SubnetBusy(u8),
    /// All 254 addresses of the subnet are in use.
    #[error("all addresses of 127.0.{0}.0/24 are in use")]
    Exhausted(u8),
}

/// The lease of one /24 and the addresses in use in it.
#[derive(Debug)]
pub struct Ipam {
    subnet: u8,
    in_use: BTreeSet<u8>,
    next: u8,
    /// Held for the lease's lifetime; dropping it releases the subnet.
    _lock: File,
}

impl Ipam {
    /// Leases `subnet` if given, else the first free subnet, locking it in `lock_dir`.
    ///
    /// # Errors
    /// [`IpamError`] when the lock cannot be taken or every subnet is busy.
    pub fn lease(lock_dir: &Path, subnet: Option<u8>) -> Result<Self, IpamError> {
        std::fs::create_dir_all(lock_dir).map_err(|source| IpamError::Lock {
            path: lock_dir.to_path_buf(),
            source,
        })?;
        let candidates: Vec<u8> = match subnet {
            Some(k) => vec![k],
            None => (1..=254).collect(),
        };
        for k in candidates {
            let path = lock_dir.join(format!("127.0.{k}.0.lock"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|source| IpamError::Lock {
                    path: path.clone(),
                    source,
                })?;
            match file.try_lock() {
                Ok(()) => {
                    return Ok(Self {
                        subnet: k,
                        in_use: BTreeSet::new(),
                        next: FIRST,
                        _lock: file,
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if subnet.is_some() {
                        return Err(IpamError::SubnetBusy(k));
                    }
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(IpamError::Lock { path, source });
                }
            }
        }
        Err(IpamError::NoSubnet(lock_dir.to_path_buf()))
    }

    /// The default lock directory (shared by every twin on the machine).
    pub fn default_lock_dir() -> PathBuf {
        std::env::temp_dir().join("neptune-twin-subnets")
    }

    /// The leased subnet's third octet.
    pub fn subnet(&self) -> u8 {
        self.subnet
    }

    /// A free address, round-robin after the last one handed out.
    ///
    /// # Errors
    /// [`IpamError::Exhausted`] when all 254 are in use.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        for _ in FIRST..=LAST {
            let candidate = self.next;
            self.next = if self.next >= LAST {
                FIRST
            } else {
                self.next + 1
            };
            if self.in_use.insert(candidate) {
                return Ok(Ipv4Addr::new(127, 0, self.subnet, candidate));
            }
        }
        Err(IpamError::Exhausted(self.subnet))
    }

    /// Gives `ip` back (ignored when it is not one of this lease's).
    pub fn release(&mut self, ip: Ipv4Addr) {
        let [a, b, c, d] = ip.octets();
        if a == 127 && b == 0 && c == self.subnet {
            self.in_use.remove(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_round_robin_and_exhaust_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::lease(dir.path(), Some(77)).unwrap();
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 0, 77, 1));
        assert_eq!(b, Ipv4Addr::new(127, 0, 77, 2));
        ipam.release(a);
        // Round-robin: the freed .1 comes back only after the rest of the range.
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 0, 77, 3));
        let mut n = 2; // in use: .2 and .3
        while ipam.allocate().is_ok() {
            n += 1;
        }
        assert_eq!(n, 254, "every address of the /24 but .0 and .255");
        assert!(matches!(ipam.allocate(), Err(IpamError::Exhausted(77))));
    }

    #[test]
    fn a_leased_subnet_is_not_leased_twice_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = Ipam::lease(dir.path(), None).unwrap();
        let second = Ipam::lease(dir.path(), None).unwrap();
        assert_ne!(first.subnet(), second.subnet());
        assert!(matches!(
            Ipam::lease(dir.path(), Some(first.subnet())),
            Err(IpamError::SubnetBusy(_))
        ));
        let k = first.subnet();
        drop(first);
        assert_eq!(Ipam::lease(dir.path(), Some(k)).unwrap().subnet(), k);
    }
}
