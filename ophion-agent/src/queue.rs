//! The persistent queue between what the agent accepts and what it has
//! sent: records on local disk, bounded in bytes, each checksummed.
//!
//! Layout: a directory of segment files `<20-digit id>.seg`, each a run of
//! records `len: u32 LE | crc32: u32 LE | signal: u8 | items: u32 LE |
//! state length: u32 LE | state | OTLP protobuf`
//! (`len` counts what follows the checksum; the checksum covers it), and a
//! `cursor` file naming the first record not yet delivered (`segment
//! offset`).
//!
//! Durability: [`DiskQueue::append`] returns only once the record is on
//! disk (`fdatasync`; a new segment also syncs the directory). Appends
//! that arrive together share one sync (group commit), so a burst of small
//! requests costs one sync, not one each. The cursor is replaced
//! atomically (write, sync, rename, sync the directory) after each
//! delivery, so a crash redelivers at most the batch in flight, never
//! loses an acknowledged record.
//!
//! Recovery: on open, the segments from the cursor on are read through;
//! the first record that is short or fails its checksum ends the queue
//! (a write torn by a crash can only be the last, never acknowledged) and
//! the segment is cut there; such records are counted.
//!
//! Collector state: a record may carry a state blob (the log collector's
//! file offsets after the lines in it). The newest state is part of the
//! queue: in the records not yet delivered, and in the cursor file for
//! those delivered, both written atomically with what they describe. So
//! [`DiskQueue::state`] after any crash describes exactly the lines that
//! were queued: nothing is read twice or skipped.
//!
//! Bound: when the segments hold `max_bytes`, appends fail with
//! [`QueueError::Full`] (a retryable refusal for the agent's clients);
//! fully delivered segments are deleted as the cursor passes them.

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use ophion_core::Signal;

/// Bytes before a record's payload: length and checksum.
const HEADER: u64 = 8;
/// The largest record accepted (the receiver's body limit is far below).
const MAX_RECORD: u64 = 256 << 20;

/// Why the queue refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue holds its `max_bytes`; retry once it has drained.
    #[error("the agent's queue is full ({used} of {max} bytes); retry later")]
    Full {
        /// Bytes held.
        used: u64,
        /// The bound.
        max: u64,
    },
    /// The disk failed.
    #[error("queue I/O in {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A position in the queue: segment id and byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Segment id.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

/// One queued request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What it carries.
    pub signal: Signal,
    /// Spans, log records or data points in it.
    pub items: u32,
    /// The OTLP `Export*ServiceRequest`, protobuf-encoded (may be empty
    /// for a record that only carries state).
    pub protobuf: Vec<u8>,
    /// The collector state after this record (see the module docs).
    pub state: Option<Vec<u8>>,
}

/// Bytes of a record's payload before the state: signal, items and the
/// state's length (`u32::MAX`: none).
const PREFIX: usize = 9;

fn signal_byte(s: Signal) -> u8 {
    match s {
        Signal::Traces => 1,
        Signal::Logs => 2,
        Signal::Metrics => 3,
    }
}

fn signal_of(b: u8) -> Option<Signal> {
    match b {
        1 => Some(Signal::Traces),
        2 => Some(Signal::Logs),
        3 => Some(Signal::Metrics),
        _ => None,
    }
}

/// Sizes and policy.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Bytes the segments may hold.
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
}

/// Counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Records appended since start.
    pub appended: AtomicU64,
    /// Records delivered since start.
    pub delivered: AtomicU64,
    /// Appends refused because the queue was full.
    pub refused_full: AtomicU64,
    /// Torn or corrupt records found (and cut) when opening.
    pub corrupt: AtomicU64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    len: u64,
}

#[derive(Debug)]
struct Inner {
    /// Every segment on disk, oldest first; the last is written to.
    segments: VecDeque<Segment>,
    writer: File,
    /// Records ever written through `writer`'s segment chain (monotonic).
    written: u64,
    /// Delivered up to here (persisted in `cursor`).
    cursor: Position,
    /// Records between the cursor and the end.
    pending: u64,
    /// Records made durable by a segment change (synced before the
    /// writer moved on).
    durable: u64,
    /// The newest state among delivered records (kept in the cursor file).
    delivered_state: Option<Vec<u8>>,
    /// States of undelivered records: the position after each, oldest
    /// first.
    states: VecDeque<(Position, Vec<u8>)>,
}

/// The queue; see the module docs. Blocking I/O: call from a blocking
/// context (`spawn_blocking`).
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    limits: QueueLimits,
    inner: Mutex<Inner>,
    /// Serialises syncs; holds how many records are durable.
    synced: Mutex<u64>,
    /// Counters.
    pub stats: QueueStats,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the record at the reader's position: `Ok(None)` at a clean end,
/// `Err(())` at a torn or corrupt record.
fn read_record(r: &mut impl Read) -> Result<Option<(Record, u64)>, ()> {
    let mut head = [0u8; HEADER as usize];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(()),
            Ok(n) => got += n,
            Err(_) => return Err(()),
        }
    }
    let len = u64::from(u32::from_le_bytes(head[..4].try_into().map_err(|_| ())?));
    let crc = u32::from_le_bytes(head[4..].try_into().map_err(|_| ())?);
    if len < PREFIX as u64 || len > MAX_RECORD {
        return Err(());
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(|_| ())?;
    if crc32fast::hash(&body) != crc {
        return Err(());
    }
    let signal = signal_of(body[0]).ok_or(())?;
    let items = u32::from_le_bytes(body[1..5].try_into().map_err(|_| ())?);
    let state_len = u32::from_le_bytes(body[5..PREFIX].try_into().map_err(|_| ())?);
    let state = if state_len == u32::MAX {
        None
    } else {
        let end = PREFIX
            .checked_add(state_len as usize)
            .filter(|e| *e <= body.len())
            .ok_or(())?;
        Some(body[PREFIX..end].to_vec())
    };
    let skip = PREFIX + state.as_ref().map_or(0, Vec::len);
    body.drain(..skip);
    Ok(Some((
        Record {
            signal,
            items,
            protobuf: body,
            state,
        },
        HEADER + len,
    )))
}

/// The cursor file: `segment: u64 LE | offset: u64 LE | state length:
/// u32 LE (u32::MAX: none) | state | crc32 of all that: u32 LE`. A
/// missing or damaged file is the start of the queue.
fn read_cursor(path: &Path) -> (Position, Option<Vec<u8>>) {
    let Ok(b) = fs::read(path) else {
        return (Position::default(), None);
    };
    let parse = || -> Option<(Position, Option<Vec<u8>>)> {
        let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let segment = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
        let offset = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
        let n = u32::from_le_bytes(body.get(16..20)?.try_into().ok()?);
        let state = (n != u32::MAX).then(|| body.get(20..20 + n as usize).map(<[u8]>::to_vec));
        Some((Position { segment, offset }, state.flatten()))
    };
    parse().unwrap_or_else(|| {
        tracing::warn!(cursor = %path.display(), "queue cursor unreadable; starting from the oldest segment");
        (Position::default(), None)
    })
}

/// Replaces the cursor file atomically.
fn write_cursor(dir: &Path, to: Position, state: Option<&[u8]>) -> Result<(), QueueError> {
    let tmp = dir.join("cursor.tmp");
    let path = dir.join("cursor");
    let mut b = Vec::with_capacity(24 + state.map_or(0, <[u8]>::len));
    b.extend_from_slice(&to.segment.to_le_bytes());
    b.extend_from_slice(&to.offset.to_le_bytes());
    match state {
        Some(s) => {
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s);
        }
        None => b.extend_from_slice(&u32::MAX.to_le_bytes()),
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&b).map_err(io(&tmp))?;
        f.sync_data().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir)
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, recovering from a crash.
    pub fn open(dir: &Path, limits: QueueLimits) -> Result<Self, QueueError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut ids: Vec<u64> = fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let (cursor, delivered_state) = read_cursor(&dir.join("cursor"));
        let mut states = VecDeque::new();
        let stats = QueueStats::default();
        let mut segments = VecDeque::new();
        let mut pending = 0;
        for &id in &ids {
            let path = segment_path(dir, id);
            if id < cursor.segment {
                // Delivered before a crash cut the clean-up short.
                fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            let mut r = std::io::BufReader::new(&mut f);
            let mut at = 0;
            let start = if id == cursor.segment {
                cursor.offset
            } else {
                0
            };
            let mut torn = false;
            loop {
                match read_record(&mut r) {
                    Ok(Some((rec, n))) => {
                        at += n;
                        if at > start {
                            pending += 1;
                            if let Some(st) = rec.state {
                                states.push_back((
                                    Position {
                                        segment: id,
                                        offset: at,
                                    },
                                    st,
                                ));
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(()) => {
                        torn = true;
                        break;
                    }
                }
            }
            drop(r);
            if torn {
                stats.corrupt.fetch_add(1, Relaxed);
                tracing::warn!(segment = %path.display(), offset = at, "queue: cut a torn or corrupt record (written, never acknowledged)");
                f.set_len(at).map_err(io(&path))?;
                f.sync_all().map_err(io(&path))?;
            }
            segments.push_back(Segment { id, len: at });
        }
        if segments.is_empty() {
            let id = cursor.segment.max(1);
            File::create(segment_path(dir, id)).map_err(io(dir))?;
            sync_dir(dir)?;
            segments.push_back(Segment { id, len: 0 });
        }
        let cursor = if cursor.segment < segments[0].id {
            Position {
                segment: segments[0].id,
                offset: 0,
            }
        } else {
            cursor
        };
        let last = segments.back().map_or(1, |s| s.id);
        let path = segment_path(dir, last);
        let writer = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(Self {
            dir: dir.to_owned(),
            limits,
            inner: Mutex::new(Inner {
                segments,
                writer,
                written: 0,
                cursor,
                pending,
                durable: 0,
                delivered_state,
                states,
            }),
            synced: Mutex::new(0),
            stats,
        })
    }

    /// Bytes the segments hold (delivered records included until their
    /// segment is deleted).
    pub fn used_bytes(&self) -> u64 {
        lock(&self.inner).segments.iter().map(|s| s.len).sum()
    }

    /// Records not yet delivered.
    pub fn pending(&self) -> u64 {
        lock(&self.inner).pending
    }

    /// Whether an append would be refused as full now.
    pub fn is_full(&self) -> bool {
        self.used_bytes() >= self.limits.max_bytes
    }

    /// Appends `record` and returns once it is on disk.
    pub fn append(&self, record: &Record) -> Result<(), QueueError> {
        let state_len = record.state.as_ref().map_or(0, Vec::len);
        let len = (record.protobuf.len() + PREFIX + state_len) as u64;
        if len > MAX_RECORD {
            return Err(QueueError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(format!(
                    "a record of {len} bytes is over the limit of {MAX_RECORD}"
                )),
            });
        }
        let mut buf = Vec::with_capacity((HEADER + len) as usize);
        buf.extend_from_slice(&(len as u32).to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.push(signal_byte(record.signal));
        buf.extend_from_slice(&record.items.to_le_bytes());
        match &record.state {
            Some(st) => {
                buf.extend_from_slice(&(st.len() as u32).to_le_bytes());
                buf.extend_from_slice(st);
            }
            None => buf.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        buf.extend_from_slice(&record.protobuf);
        let crc = crc32fast::hash(&buf[HEADER as usize..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let mine = {
            let mut inner = lock(&self.inner);
            let used: u64 = inner.segments.iter().map(|s| s.len).sum();
            if used + buf.len() as u64 > self.limits.max_bytes {
                self.stats.refused_full.fetch_add(1, Relaxed);
                return Err(QueueError::Full {
                    used,
                    max: self.limits.max_bytes,
                });
            }
            let full = inner
                .segments
                .back()
                .is_some_and(|s| s.len > 0 && s.len + buf.len() as u64 > self.limits.segment_bytes);
            if full {
                // Everything in the old segment becomes durable before the
                // writer moves on, so a sync only ever concerns the last.
                inner.writer.sync_data().map_err(io(&self.dir))?;
                // Not `synced` here: its lock is only ever taken before
                // this one (see `sync_through`).
                inner.durable = inner.written;
                let id = inner.segments.back().map_or(1, |s| s.id + 1);
                let path = segment_path(&self.dir, id);
                inner.writer = OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(&path)
                    .map_err(io(&path))?;
                sync_dir(&self.dir)?;
                inner.segments.push_back(Segment { id, len: 0 });
            }
            let path = self.dir.clone();
            inner.writer.write_all(&buf).map_err(io(&path))?;
            if let Some(s) = inner.segments.back_mut() {
                s.len += buf.len() as u64;
            }
            inner.written += 1;
            inner.pending += 1;
            if let Some(st) = &record.state {
                let after = inner
                    .segments
                    .back()
                    .map(|s| Position {
                        segment: s.id,
                        offset: s.len,
                    })
                    .unwrap_or_default();
                inner.states.push_back((after, st.clone()));
            }
            inner.written
        };
        self.sync_through(mine)?;
        self.stats.appended.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Makes the first `n` records written durable: one sync covers every
    /// append waiting for it. Locks `synced`, then `inner`, never the
    /// other way round.
    fn sync_through(&self, n: u64) -> Result<(), QueueError> {
        let mut synced = lock(&self.synced);
        if *synced >= n {
            return Ok(());
        }
        let (file, upto) = {
            let inner = lock(&self.inner);
            if inner.durable >= n {
                *synced = (*synced).max(inner.durable);
                return Ok(());
            }
            (
                inner.writer.try_clone().map_err(io(&self.dir))?,
                inner.written,
            )
        };
        file.sync_data().map_err(io(&self.dir))?;
        *synced = (*synced).max(upto);
        Ok(())
    }

    /// Up to `max_bytes` (at least one record) of consecutive undelivered
    /// records of one signal, from the cursor on, and the position after
    /// them. Empty when nothing is pending.
    pub fn peek(&self, max_bytes: u64) -> Result<(Vec<Record>, Position), QueueError> {
        let (mut at, segments): (Position, Vec<(u64, u64)>) = {
            let inner = lock(&self.inner);
            (
                inner.cursor,
                inner.segments.iter().map(|s| (s.id, s.len)).collect(),
            )
        };
        let mut out: Vec<Record> = Vec::new();
        let mut bytes = 0;
        for (id, len) in segments {
            if id < at.segment {
                continue;
            }
            if id > at.segment {
                at = Position {
                    segment: id,
                    offset: 0,
                };
            }
            if at.offset >= len {
                continue;
            }
            let path = segment_path(&self.dir, id);
            let mut f = File::open(&path).map_err(io(&path))?;
            f.seek(SeekFrom::Start(at.offset)).map_err(io(&path))?;
            let mut r = std::io::BufReader::new(f).take(len - at.offset);
            while at.offset < len {
                let Ok(Some((rec, n))) = read_record(&mut r) else {
                    return Err(QueueError::Io {
                        path,
                        source: std::io::Error::other(
                            "a record changed on disk after it was written",
                        ),
                    });
                };
                let differs = out.first().is_some_and(|f| f.signal != rec.signal);
                if differs || (!out.is_empty() && bytes + n > max_bytes) {
                    return Ok((out, at));
                }
                bytes += n;
                at.offset += n;
                out.push(rec);
            }
        }
        Ok((out, at))
    }

    /// The newest collector state queued (see the module docs).
    pub fn state(&self) -> Option<Vec<u8>> {
        let inner = lock(&self.inner);
        inner
            .states
            .back()
            .map(|(_, s)| s.clone())
            .or_else(|| inner.delivered_state.clone())
    }

    /// Marks everything before `to` delivered: persists the cursor (with
    /// the newest state delivered), then deletes the segments wholly
    /// before it.
    pub fn ack(&self, to: Position, records: u64) -> Result<(), QueueError> {
        // Appends may run meanwhile; only acks move the cursor, and they
        // come from the one sender.
        let state = {
            let inner = lock(&self.inner);
            inner
                .states
                .iter()
                .take_while(|(at, _)| *at <= to)
                .last()
                .map(|(_, s)| s.clone())
                .or_else(|| inner.delivered_state.clone())
        };
        write_cursor(&self.dir, to, state.as_deref())?;
        let mut inner = lock(&self.inner);
        while inner.states.front().is_some_and(|(at, _)| *at <= to) {
            inner.states.pop_front();
        }
        inner.delivered_state = state;
        inner.cursor = inner.cursor.max(to);
        inner.pending = inner.pending.saturating_sub(records);
        self.stats.delivered.fetch_add(records, Relaxed);
        // Delete segments wholly delivered (never the one written to).
        while inner.segments.len() > 1 && inner.segments[0].id < inner.cursor.segment {
            if let Some(s) = inner.segments.pop_front() {
                let p = segment_path(&self.dir, s.id);
                fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        // The segment written to, wholly delivered: start it again.
        if inner.segments.len() == 1
            && let Some(s) = inner.segments.front()
            && inner.cursor
                == (Position {
                    segment: s.id,
                    offset: s.len,
                })
            && s.len >= self.limits.segment_bytes
        {
            let id = s.id + 1;
            let old = segment_path(&self.dir, s.id);
            let new = segment_path(&self.dir, id);
            inner.writer = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&new)
                .map_err(io(&new))?;
            sync_dir(&self.dir)?;
            inner.segments.clear();
            inner.segments.push_back(Segment { id, len: 0 });
            inner.cursor = Position {
                segment: id,
                offset: 0,
            };
            fs::remove_file(&old).map_err(io(&old))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32, signal: Signal) -> Record {
        Record {
            signal,
            items: i,
            protobuf: format!("record {i} {}", "x".repeat((i % 50) as usize)).into_bytes(),
            state: None,
        }
    }

    fn limits(max: u64, seg: u64) -> QueueLimits {
        QueueLimits {
            max_bytes: max,
            segment_bytes: seg,
        }
    }

    /// Reads everything pending, acknowledging as it goes.
    fn drain(q: &DiskQueue) -> Vec<Record> {
        let mut out = Vec::new();
        loop {
            let (batch, to) = q.peek(300).expect("peek");
            if batch.is_empty() {
                return out;
            }
            q.ack(to, batch.len() as u64).expect("ack");
            out.extend(batch);
        }
    }

    #[test]
    fn records_come_out_in_order_once_across_segments_and_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let q = DiskQueue::open(dir.path(), limits(1 << 20, 256)).expect("open");
        let signals = [
            Signal::Traces,
            Signal::Traces,
            Signal::Logs,
            Signal::Metrics,
        ];
        let want: Vec<Record> = (0..40).map(|i| rec(i, signals[i as usize % 4])).collect();
        for r in &want[..25] {
            q.append(r).expect("append");
        }
        let mut got = Vec::new();
        // Deliver some, then "crash" (drop) and reopen.
        let (batch, to) = q.peek(200).expect("peek");
        assert!(!batch.is_empty());
        assert!(
            batch.iter().all(|r| r.signal == batch[0].signal),
            "one signal per batch"
        );
        q.ack(to, batch.len() as u64).expect("ack");
        got.extend(batch);
        drop(q);
        let q = DiskQueue::open(dir.path(), limits(1 << 20, 256)).expect("reopen");
        assert_eq!(q.pending(), 25 - got.len() as u64);
        for r in &want[25..] {
            q.append(r).expect("append");
        }
        got.extend(drain(&q));
        assert_eq!(got, want);
        assert_eq!(q.pending(), 0);
        // Delivered segments are deleted.
        let segs = fs::read_dir(dir.path())
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
            })
            .count();
        assert!(segs <= 1, "{segs} segments left");
    }

    #[test]
    fn a_torn_tail_is_cut_and_what_came_before_survives() {
        let dir = tempfile::tempdir().expect("tmp");
        let q = DiskQueue::open(dir.path(), limits(1 << 20, 1 << 20)).expect("open");
        for i in 0..5 {
            q.append(&rec(i, Signal::Logs)).expect("append");
        }
        drop(q);
        // A crash mid-write: half a record, then garbage in another copy.
        let seg = fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .expect("segment")
            .path();
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
        f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 2, 0, 0, 0, 0, b'h'])
            .expect("torn");
        drop(f);
        let q = DiskQueue::open(dir.path(), limits(1 << 20, 1 << 20)).expect("reopen");
        assert_eq!(q.stats.corrupt.load(Relaxed), 1);
        q.append(&rec(5, Signal::Logs))
            .expect("append after recovery");
        let got = drain(&q);
        assert_eq!(
            got,
            (0..6).map(|i| rec(i, Signal::Logs)).collect::<Vec<_>>()
        );
        // A flipped byte inside a record fails its checksum.
        drop(q);
        let q = DiskQueue::open(dir.path(), limits(1 << 20, 1 << 20)).expect("reopen");
        q.append(&rec(6, Signal::Logs)).expect("append");
        q.append(&rec(7, Signal::Logs)).expect("append");
        drop(q);
        let seg = fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .expect("segment")
            .path();
        let mut bytes = fs::read(&seg).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        fs::write(&seg, bytes).expect("write");
        let q = DiskQueue::open(dir.path(), limits(1 << 20, 1 << 20)).expect("reopen");
        assert_eq!(q.stats.corrupt.load(Relaxed), 1);
        assert_eq!(drain(&q), vec![rec(6, Signal::Logs)]);
    }

    #[test]
    fn a_full_queue_refuses_and_takes_records_again_once_drained() {
        let dir = tempfile::tempdir().expect("tmp");
        let q = DiskQueue::open(dir.path(), limits(1_000, 300)).expect("open");
        let mut n = 0;
        while q.append(&rec(n, Signal::Traces)).is_ok() {
            n += 1;
            assert!(n < 100, "never full");
        }
        // The record that did not fit still does not.
        assert!(matches!(
            q.append(&rec(n, Signal::Traces)),
            Err(QueueError::Full { .. })
        ));
        assert_eq!(q.stats.refused_full.load(Relaxed), 2);
        assert!(q.used_bytes() <= 1_000);
        let got = drain(&q);
        assert_eq!(got.len(), n as usize);
        q.append(&rec(99, Signal::Traces)).expect("room again");
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    fn with_state(i: u32, state: &str) -> Record {
        Record {
            signal: Signal::Logs,
            items: 1,
            protobuf: format!("line {i}").into_bytes(),
            state: Some(state.as_bytes().to_vec()),
        }
    }

    #[test]
    fn the_newest_queued_state_survives_delivery_and_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let l = QueueLimits {
            max_bytes: 1 << 20,
            segment_bytes: 120,
        };
        let q = DiskQueue::open(dir.path(), l).expect("open");
        assert_eq!(q.state(), None);
        for i in 0..10 {
            q.append(&with_state(i, &format!("offset={}", i * 10)))
                .expect("append");
        }
        assert_eq!(q.state().as_deref(), Some(&b"offset=90"[..]));
        // Deliver part: the newest state is still the newest queued.
        let (batch, to) = q.peek(100).expect("peek");
        q.ack(to, batch.len() as u64).expect("ack");
        drop(q);
        let q = DiskQueue::open(dir.path(), l).expect("reopen");
        assert_eq!(q.state().as_deref(), Some(&b"offset=90"[..]));
        // Deliver all (segments deleted): the cursor keeps it.
        loop {
            let (batch, to) = q.peek(1000).expect("peek");
            if batch.is_empty() {
                break;
            }
            q.ack(to, batch.len() as u64).expect("ack");
        }
        drop(q);
        let q = DiskQueue::open(dir.path(), l).expect("reopen");
        assert_eq!(q.pending(), 0);
        assert_eq!(q.state().as_deref(), Some(&b"offset=90"[..]));
        // A record without state leaves it as it was.
        q.append(&Record {
            signal: Signal::Traces,
            items: 1,
            protobuf: vec![1, 2, 3],
            state: None,
        })
        .expect("append");
        assert_eq!(q.state().as_deref(), Some(&b"offset=90"[..]));
    }
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;

    #[test]
    fn appends_from_many_threads_across_segment_changes_all_land_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let q = std::sync::Arc::new(
            DiskQueue::open(
                dir.path(),
                QueueLimits {
                    max_bytes: 64 << 20,
                    // A new segment every few records: many changes while
                    // other threads append and sync.
                    segment_bytes: 300,
                },
            )
            .expect("open"),
        );
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let q = std::sync::Arc::clone(&q);
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        q.append(&Record {
                            signal: Signal::Traces,
                            items: t * 1000 + i,
                            protobuf: vec![t as u8; 40],
                            state: None,
                        })
                        .expect("append");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let mut seen = std::collections::HashSet::new();
        loop {
            let (batch, to) = q.peek(10_000).expect("peek");
            if batch.is_empty() {
                break;
            }
            q.ack(to, batch.len() as u64).expect("ack");
            for r in batch {
                assert!(seen.insert(r.items), "{} twice", r.items);
            }
        }
        assert_eq!(seen.len(), 1600);
    }
}
