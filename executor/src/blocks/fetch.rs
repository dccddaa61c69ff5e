//! Fetching a block from another executor, inside the reduce task's coroutine, over a pooled
//! connection ([`super::client`]: mutual TLS unless `--insecure`), and the block wire format
//! both sides share.
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
//! Wire format (big-endian; a fixed-size frame each way, so nothing is allocated from a length
//! the peer sent before it is checked): request `job u32, run u64, stage u32, map u32, reduce
//! u32`; reply `status u8, len u64`, then `len` bytes when the status is [`FOUND`]. A reply is
//! refused ([`FetchError::BadReply`], not retried) when its status is unknown or its length
//! exceeds the block's known size (the largest block its map task reported) or the executor's
//! fetch cap (`shuffle.max_block_bytes`); the body is read in chunks as it arrives, so a peer
//! that announces a length and sends less costs no memory beyond what it sent.

use super::client::{IDLE_LIMIT, Pool};
use neptune_core::shuffle::{BlockId, FetchError, MapLoc};
use neptune_core::task::TaskContext;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

pub use super::client::READ_TICK;
/// Attempts per block before the fetch fails.
pub const ATTEMPTS: u32 = 3;
/// How long a receiver cut whose run the receiver's executor has not heard of yet is waited
/// for: the driver announces a run to every executor before it launches the run's tasks, but on
/// another stream than the launch, so the announcement may still be in flight.
const NOT_OPEN_WAIT: Duration = Duration::from_secs(10);
const CHUNK: usize = 256 << 10;

/// Length of a request frame.
pub const REQUEST_LEN: usize = 24;
/// Length of a reply header.
pub const REPLY_HEAD_LEN: usize = 9;
/// Reply status: the block follows.
pub const FOUND: u8 = 0;
/// Reply status: this executor does not hold the block.
pub const MISSING: u8 = 1;
/// Reply status: a receiver cut of a run this executor has not been told about (yet).
pub const NOT_OPEN: u8 = 2;

/// Encode a block request.
pub fn encode_request(id: BlockId) -> [u8; REQUEST_LEN] {
    let mut b = [0u8; REQUEST_LEN];
    b[0..4].copy_from_slice(&id.job.to_be_bytes());
    b[4..12].copy_from_slice(&id.run.to_be_bytes());
    b[12..16].copy_from_slice(&id.stage.to_be_bytes());
    b[16..20].copy_from_slice(&id.map.to_be_bytes());
    b[20..24].copy_from_slice(&id.reduce.to_be_bytes());
    b
}

/// Decode a block request (every 24 bytes name some block).
pub fn decode_request(b: &[u8; REQUEST_LEN]) -> BlockId {
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut run = [0u8; 8];
    run.copy_from_slice(&b[4..12]);
    BlockId {
        job: u32_at(0),
        run: u64::from_be_bytes(run),
        stage: u32_at(12),
        map: u32_at(16),
        reduce: u32_at(20),
    }
}

/// Encode a reply header.
pub fn encode_reply_head(status: u8, len: u64) -> [u8; REPLY_HEAD_LEN] {
    let mut h = [0u8; REPLY_HEAD_LEN];
    h[0] = status;
    h[1..9].copy_from_slice(&len.to_be_bytes());
    h
}

/// What a reply header says, once checked against `limit` (the most bytes this block may have).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// `len` bytes follow, and `len <= limit`.
    Found(u64),
    /// The peer does not hold the block.
    Missing,
    /// A receiver cut of a run the peer has not been told about yet.
    NotOpen,
}

/// Check a reply header.
///
/// # Errors
/// A message when the status is unknown or the length exceeds `limit`.
pub fn decode_reply_head(h: &[u8; REPLY_HEAD_LEN], limit: u64) -> Result<Head, String> {
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[1..9]);
    let len = u64::from_be_bytes(len);
    match h[0] {
        FOUND if len <= limit => Ok(Head::Found(len)),
        FOUND => Err(format!(
            "it announced {len} bytes, above the {limit} this block may have"
        )),
        MISSING => Ok(Head::Missing),
        NOT_OPEN => Ok(Head::NotOpen),
        other => Err(format!("unknown reply status {other}")),
    }
}

/// One attempt's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The block.
    Found(Vec<u8>),
    /// The peer does not hold it.
    Missing,
    /// A receiver cut of a run the peer has not been told about yet.
    NotOpen,
    /// The task was killed while waiting.
    Killed,
}

/// Why one attempt failed.
#[derive(Debug)]
pub enum AttemptError {
    /// The connection failed (worth retrying).
    Io(std::io::Error),
    /// The peer broke the protocol (not worth retrying).
    Bad(String),
}

/// Read one reply for a block of at most `limit` bytes from `r`, passing a yield point after
/// every read or read timeout.
///
/// # Errors
/// [`AttemptError::Bad`] for a reply no honest server sends, [`AttemptError::Io`] when reading
/// fails or the peer stays silent for too long.
pub fn read_reply(ctx: &TaskContext, r: &mut impl Read, limit: u64) -> Result<Reply, AttemptError> {
    read_reply_from(ctx, r, limit, &mut false)
}

/// [`read_reply`], noting in `replied` whether any byte arrived.
fn read_reply_from(
    ctx: &TaskContext,
    r: &mut impl Read,
    limit: u64,
    replied: &mut bool,
) -> Result<Reply, AttemptError> {
    let mut head = [0u8; REPLY_HEAD_LEN];
    if !read_full(ctx, r, &mut head, replied).map_err(AttemptError::Io)? {
        return Ok(Reply::Killed);
    }
    let len = match decode_reply_head(&head, limit).map_err(AttemptError::Bad)? {
        Head::Found(len) => len,
        Head::Missing => return Ok(Reply::Missing),
        Head::NotOpen => return Ok(Reply::NotOpen),
    };
    // Checked against the limit above, and grown one chunk at a time as bytes arrive: never
    // allocated from the announced length alone.
    let len = usize::try_from(len).map_err(|_| AttemptError::Bad("length overflows".into()))?;
    let mut body = Vec::new();
    while body.len() < len {
        let start = body.len();
        body.resize(start + (len - start).min(CHUNK), 0);
        if !read_full(ctx, r, &mut body[start..], replied).map_err(AttemptError::Io)? {
            return Ok(Reply::Killed);
        }
    }
    Ok(Reply::Found(body))
}

/// Fetch `id` from `loc`, retrying with back-off; a block longer than `cap` bytes (or than the
/// block's known size) is refused.
///
/// # Errors
/// [`FetchError::Missing`] if the peer does not hold it, [`FetchError::BadReply`] if it broke the
/// protocol, [`FetchError::Unreachable`] after [`ATTEMPTS`] failed attempts,
/// [`FetchError::Killed`] if the task was killed meanwhile.
pub fn fetch_with_retries(
    ctx: &TaskContext,
    pool: &Pool,
    loc: &MapLoc,
    id: BlockId,
    cap: u64,
) -> Result<Vec<u8>, FetchError> {
    let limit = cap.min(loc.max_block);
    let mut last = String::new();
    let mut attempt = 0;
    let waiting_since = Instant::now();
    while attempt < ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(100 << attempt));
            if !ctx.yield_point() {
                return Err(FetchError::Killed);
            }
        }
        match fetch_once(ctx, pool, &loc.addr, id, limit) {
            Ok(Reply::Found(b)) => return Ok(b),
            Ok(Reply::Missing) => {
                return Err(FetchError::Missing {
                    block: id,
                    executor: loc.executor.clone(),
                });
            }
            Ok(Reply::NotOpen) if waiting_since.elapsed() < NOT_OPEN_WAIT => {
                // Not an attempt lost: the run's announcement is on its way to the peer.
                std::thread::sleep(READ_TICK);
                if !ctx.yield_point() {
                    return Err(FetchError::Killed);
                }
                continue;
            }
            Ok(Reply::NotOpen) => {
                return Err(FetchError::Missing {
                    block: id,
                    executor: loc.executor.clone(),
                });
            }
            Ok(Reply::Killed) => return Err(FetchError::Killed),
            Err(AttemptError::Bad(reason)) => {
                return Err(FetchError::BadReply {
                    block: id,
                    executor: loc.executor.clone(),
                    addr: loc.addr.clone(),
                    reason,
                });
            }
            Err(AttemptError::Io(e)) => {
                tracing::debug!(block = ?id, addr = %loc.addr, attempt, error = %e, "fetch attempt failed");
                last = e.to_string();
            }
        }
        attempt += 1;
    }
    Err(FetchError::Unreachable {
        block: id,
        executor: loc.executor.clone(),
        addr: loc.addr.clone(),
        reason: last,
    })
}

/// One attempt: over a pooled connection if there is one (replaced by a fresh one at once if it
/// turns out to be stale: it fails before any reply byte arrives), else a new one. A connection
/// goes back to the pool only after a whole, well-formed reply.
fn fetch_once(
    ctx: &TaskContext,
    pool: &Pool,
    addr: &str,
    id: BlockId,
    limit: u64,
) -> Result<Reply, AttemptError> {
    loop {
        let (mut conn, reused) = match pool.take(addr) {
            Some(c) => (c, true),
            None => match pool.connect(ctx, addr).map_err(AttemptError::Io)? {
                Some(c) => (c, false),
                None => return Ok(Reply::Killed),
            },
        };
        let mut replied = false;
        let sent = conn
            .write_all(&encode_request(id))
            .and_then(|()| conn.flush());
        let result = match sent {
            Ok(()) => read_reply_from(ctx, &mut conn, limit, &mut replied),
            Err(e) => Err(AttemptError::Io(e)),
        };
        match result {
            Ok(Reply::Killed) => return Ok(Reply::Killed), // mid-exchange: not reusable
            Ok(r) => {
                pool.put(conn);
                return Ok(r);
            }
            Err(AttemptError::Io(e)) if reused && !replied => {
                tracing::debug!(addr, error = %e, "pooled block connection was stale; reconnecting");
            }
            Err(e) => return Err(e),
        }
    }
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
