//! Fetching a block from another executor, inside the reduce task's coroutine, over a pooled
//! connection ([`super::client`]: mutual TLS unless `--insecure`).
//!
//! Choice: blocking `std::net::TcpStream` with short read timeouts, not may's coroutine sockets.
//! may's sockets would park the task on I/O readiness and resume it from may's event loop on
//! whichever worker polled it, behind the runtime's back (its core accounting assumes a task
//! runs on the worker it was placed on; see `runtime/mod.rs`, hazard 2). A blocking read stalls
//! only the worker the task occupies — its own core, which it holds anyway — and reads are
//! chunked with a [`READ_TICK`] timeout and a yield point between chunks, so a suspend or kill
//! request is honoured within a tick even while waiting for a slow peer. Retry back-off sleeps
//! block that core too, briefly (hundreds of milliseconds in total).
//!
//! Wire format (big-endian): request `job u32, run u64, stage u32, map u32, reduce u32`; reply
//! `status u8 (0 found, 1 missing), len u64, bytes`.

use super::client::{BlockConn, IDLE_LIMIT, Pool};
use neptune_core::shuffle::{BlockId, FetchError, MapLoc};
use neptune_core::task::TaskContext;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

pub use super::client::READ_TICK;
/// Attempts per block before the fetch fails.
pub const ATTEMPTS: u32 = 3;
const CHUNK: usize = 256 << 10;

/// Encode a block request.
pub fn encode_request(id: BlockId) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0..4].copy_from_slice(&id.job.to_be_bytes());
    b[4..12].copy_from_slice(&id.run.to_be_bytes());
    b[12..16].copy_from_slice(&id.stage.to_be_bytes());
    b[16..20].copy_from_slice(&id.map.to_be_bytes());
    b[20..24].copy_from_slice(&id.reduce.to_be_bytes());
    b
}

/// Decode a block request.
pub fn decode_request(b: &[u8; 24]) -> BlockId {
    let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    BlockId {
        job: u32_at(0),
        run: u64::from_be_bytes(b[4..12].try_into().expect("8 bytes")),
        stage: u32_at(12),
        map: u32_at(16),
        reduce: u32_at(20),
    }
}

enum Attempt {
    Found(Vec<u8>),
    Missing,
    Killed,
}

/// Fetch `id` from `loc`, retrying with back-off.
///
/// # Errors
/// [`FetchError::Missing`] if the peer does not hold it, [`FetchError::Unreachable`] after
/// [`ATTEMPTS`] failed attempts, [`FetchError::Killed`] if the task was killed meanwhile.
pub fn fetch_with_retries(
    ctx: &TaskContext,
    pool: &Pool,
    loc: &MapLoc,
    id: BlockId,
) -> Result<Vec<u8>, FetchError> {
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(100 << attempt));
            if !ctx.yield_point() {
                return Err(FetchError::Killed);
            }
        }
        match fetch_once(ctx, pool, &loc.addr, id) {
            Ok(Attempt::Found(b)) => return Ok(b),
            Ok(Attempt::Missing) => {
                return Err(FetchError::Missing {
                    block: id,
                    executor: loc.executor.clone(),
                });
            }
            Ok(Attempt::Killed) => return Err(FetchError::Killed),
            Err(e) => {
                tracing::debug!(block = ?id, addr = %loc.addr, attempt, error = %e, "fetch attempt failed");
                last = e.to_string();
            }
        }
    }
    Err(FetchError::Unreachable {
        block: id,
        executor: loc.executor.clone(),
        addr: loc.addr.clone(),
        reason: last,
    })
}

/// One attempt: over a pooled connection if there is one (replaced by a fresh one at once if it
/// turns out to be stale: it fails before any reply byte arrives), else a new one.
fn fetch_once(ctx: &TaskContext, pool: &Pool, addr: &str, id: BlockId) -> std::io::Result<Attempt> {
    loop {
        let (mut conn, reused) = match pool.take(addr) {
            Some(c) => (c, true),
            None => match pool.connect(ctx, addr)? {
                Some(c) => (c, false),
                None => return Ok(Attempt::Killed),
            },
        };
        let mut replied = false;
        match exchange(ctx, &mut conn, id, &mut replied) {
            Ok(Attempt::Killed) => return Ok(Attempt::Killed), // mid-exchange: not reusable
            Ok(a) => {
                pool.put(conn);
                return Ok(a);
            }
            Err(e) if reused && !replied => {
                tracing::debug!(addr, error = %e, "pooled block connection was stale; reconnecting");
            }
            Err(e) => return Err(e),
        }
    }
}

fn exchange(
    ctx: &TaskContext,
    s: &mut BlockConn,
    id: BlockId,
    replied: &mut bool,
) -> std::io::Result<Attempt> {
    s.write_all(&encode_request(id))?;
    s.flush()?;
    let mut head = [0u8; 9];
    if !read_full(ctx, s, &mut head, replied)? {
        return Ok(Attempt::Killed);
    }
    if head[0] == 1 {
        return Ok(Attempt::Missing);
    }
    let len = u64::from_be_bytes(head[1..9].try_into().expect("8 bytes")) as usize;
    let mut body = vec![0u8; len];
    for chunk in body.chunks_mut(CHUNK) {
        if !read_full(ctx, s, chunk, replied)? {
            return Ok(Attempt::Killed);
        }
    }
    Ok(Attempt::Found(body))
}

/// Fill `buf`, passing a yield point after every read or read timeout. `Ok(false)`: killed.
/// `replied` turns true at the first byte read.
fn read_full(
    ctx: &TaskContext,
    s: &mut impl Read,
    buf: &mut [u8],
    replied: &mut bool,
) -> std::io::Result<bool> {
    let mut got = 0;
    let mut last_progress = Instant::now();
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                got += n;
                *replied = true;
                last_progress = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if last_progress.elapsed() > IDLE_LIMIT {
                    return Err(ErrorKind::TimedOut.into());
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if !ctx.yield_point() {
            return Ok(false);
        }
    }
    Ok(true)
}
