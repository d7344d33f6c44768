//! The write-ahead log: what makes an acknowledged write survive `kill -9`.
//!
//! A log is a directory of numbered segment files. Each record is
//!
//! ```text
//! [u32 len][u32 crc32 of payload][payload: u8 signal, u16 tenant len, tenant, Arrow IPC stream]
//! ```
//!
//! One writer thread owns the open segment. Callers queue records on a
//! bounded channel; the writer takes every record waiting, appends them,
//! calls `fdatasync` once for the group (group commit) and only then answers
//! each caller. A full queue is refused at once, so callers can answer
//! "retry later" instead of queueing without bound.
//!
//! Recovery reads segments in order and stops a segment at the first record
//! that is truncated or fails its checksum: that tail is counted and
//! skipped, never fatal. Writing always resumes in a fresh segment.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufReader, Read, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use arrow_array::RecordBatch;
use ophion_core::{Signal, TenantId};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

const HEADER: usize = 8;
/// Records larger than this are treated as corruption on replay.
const MAX_RECORD: usize = 1 << 30;

/// One logged write.
#[derive(Debug, Clone)]
pub struct WalEntry {
    /// Owner of the rows.
    pub tenant: TenantId,
    /// Which table.
    pub signal: Signal,
    /// The rows.
    pub batch: RecordBatch,
}

fn signal_code(s: Signal) -> u8 {
    match s {
        Signal::Traces => 1,
        Signal::Logs => 2,
        Signal::Metrics => 3,
    }
}

fn signal_of(code: u8) -> Option<Signal> {
    match code {
        1 => Some(Signal::Traces),
        2 => Some(Signal::Logs),
        3 => Some(Signal::Metrics),
        _ => None,
    }
}

/// Serializes an entry's payload (everything after the record header).
pub fn encode(tenant: &TenantId, signal: Signal, batch: &RecordBatch) -> Result<Vec<u8>> {
    let t = tenant.as_str().as_bytes();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 2 + 64);
    out.push(signal_code(signal));
    out.extend_from_slice(&(t.len() as u16).to_le_bytes());
    out.extend_from_slice(t);
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(out)
}

/// Parses a payload written by [`encode`].
pub fn decode(payload: &[u8]) -> Result<Vec<WalEntry>> {
    let bad = || Error::Corrupt("WAL payload header".into());
    let (&code, rest) = payload.split_first().ok_or_else(bad)?;
    let signal = signal_of(code).ok_or_else(bad)?;
    let len = u16::from_le_bytes(
        rest.get(..2)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let tenant = std::str::from_utf8(rest.get(2..2 + len).ok_or_else(bad)?).map_err(|_| bad())?;
    let tenant = TenantId::new(tenant).map_err(|_| bad())?;
    let reader = arrow_ipc::reader::StreamReader::try_new(&rest[2 + len..], None)?;
    reader
        .map(|b| {
            Ok(WalEntry {
                tenant: tenant.clone(),
                signal,
                batch: b?,
            })
        })
        .collect()
}

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Records read back.
    pub records: u64,
    /// Segments whose tail was truncated or corrupt and was skipped.
    pub corrupt_tails: u64,
    /// Bytes skipped in those tails.
    pub skipped_bytes: u64,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// Segment ids present in `dir`, ascending.
pub fn segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Reads every intact record of segments with id >= `from`, calling `f` on
/// each payload. Truncated or corrupt tails are skipped and counted.
pub fn replay(
    dir: &Path,
    from: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Replay> {
    let mut out = Replay::default();
    for id in segments(dir)?.into_iter().filter(|id| *id >= from) {
        let file = File::open(segment_path(dir, id))?;
        let total = file.metadata()?.len();
        let mut r = BufReader::new(file);
        let mut pos = 0u64;
        loop {
            let mut header = [0u8; HEADER];
            match read_full(&mut r, &mut header)? {
                0 => break,
                n if n < HEADER => {
                    out.corrupt_tails += 1;
                    out.skipped_bytes += total - pos;
                    break;
                }
                _ => {}
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len > MAX_RECORD || pos + (HEADER + len) as u64 > total {
                out.corrupt_tails += 1;
                out.skipped_bytes += total - pos;
                break;
            }
            let mut payload = vec![0u8; len];
            r.read_exact(&mut payload)?;
            if crc32fast::hash(&payload) != crc {
                out.corrupt_tails += 1;
                out.skipped_bytes += total - pos;
                break;
            }
            f(id, &payload)?;
            out.records += 1;
            pos += (HEADER + len) as u64;
        }
    }
    Ok(out)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// How the log makes writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// `fdatasync` every group before acknowledging (the default).
    Always,
    /// Never sync; the OS writes when it likes. Survives a process crash but
    /// not a power loss. For benchmarks and throwaway setups.
    Never,
}

struct Request {
    payload: Vec<u8>,
    ack: oneshot::Sender<Result<u64>>,
}

enum Command {
    Append(Request),
    /// Close the current segment and start a new one; answers the new id.
    Rotate(oneshot::Sender<Result<u64>>),
}

/// Handle to the log's writer thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Wal {
    tx: mpsc::Sender<Command>,
    dir: PathBuf,
    bytes: Arc<AtomicU64>,
}

impl Wal {
    /// Opens `dir` for appending in a new segment numbered after any
    /// existing one. `queue` bounds the records waiting for the writer.
    pub fn open(dir: &Path, sync: SyncPolicy, segment_bytes: u64, queue: usize) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let next = segments(dir)?.last().map_or(1, |id| id + 1);
        let (tx, rx) = mpsc::channel(queue.max(1));
        let bytes = Arc::new(AtomicU64::new(0));
        let mut w = Writer::new(
            dir.to_path_buf(),
            next,
            sync,
            segment_bytes,
            Arc::clone(&bytes),
        )?;
        std::thread::Builder::new()
            .name("ophion-wal".into())
            .spawn(move || w.run(rx))
            .map_err(Error::Io)?;
        Ok(Self {
            tx,
            dir: dir.to_path_buf(),
            bytes,
        })
    }

    /// Appends a payload; resolves once it is durable (per the sync
    /// policy), with the id of the segment that holds it. Refuses at once
    /// with [`Error::Backpressure`] when the queue is full.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .try_send(Command::Append(Request { payload, ack }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    Error::Backpressure("write-ahead log queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => Error::Closed,
            })?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Starts a new segment; returns its id. Every record acknowledged
    /// before this call is in a segment with a smaller id.
    pub async fn rotate(&self) -> Result<u64> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Command::Rotate(ack))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Deletes segments with an id below `id` (their records are persisted).
    pub fn truncate_before(&self, id: u64) -> Result<()> {
        for s in segments(&self.dir)?.into_iter().filter(|s| *s < id) {
            fs::remove_file(segment_path(&self.dir, s))?;
        }
        Ok(())
    }

    /// Bytes appended since the process started.
    pub fn bytes_written(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

struct Writer {
    dir: PathBuf,
    id: u64,
    file: File,
    len: u64,
    sync: SyncPolicy,
    segment_bytes: u64,
    bytes: Arc<AtomicU64>,
    buf: Vec<u8>,
}

impl Writer {
    fn new(
        dir: PathBuf,
        id: u64,
        sync: SyncPolicy,
        segment_bytes: u64,
        bytes: Arc<AtomicU64>,
    ) -> Result<Self> {
        let file = Self::create(&dir, id)?;
        Ok(Self {
            dir,
            id,
            file,
            len: 0,
            sync,
            segment_bytes,
            bytes,
            buf: Vec::new(),
        })
    }

    fn create(dir: &Path, id: u64) -> Result<File> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(dir, id))?;
        // Make the new file's directory entry durable too.
        File::open(dir)?.sync_all()?;
        Ok(file)
    }

    fn rotate(&mut self) -> Result<u64> {
        self.file.sync_all()?;
        self.id += 1;
        self.file = Self::create(&self.dir, self.id)?;
        self.len = 0;
        Ok(self.id)
    }

    fn run(&mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.blocking_recv() {
            let mut group = Vec::new();
            let mut next = Some(cmd);
            // Take every record already waiting: one sync for all of them.
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append(r) => group.push(r),
                    Command::Rotate(ack) => {
                        self.commit(std::mem::take(&mut group));
                        let _ = ack.send(self.rotate());
                    }
                }
                next = rx.try_recv().ok();
            }
            self.commit(group);
        }
    }

    fn commit(&mut self, group: Vec<Request>) {
        if group.is_empty() {
            return;
        }
        if self.len >= self.segment_bytes
            && let Err(e) = self.rotate()
        {
            let msg = e.to_string();
            for r in group {
                let _ = r.ack.send(Err(Error::Wal(msg.clone())));
            }
            return;
        }
        self.buf.clear();
        for r in &group {
            self.buf
                .extend_from_slice(&(r.payload.len() as u32).to_le_bytes());
            self.buf
                .extend_from_slice(&crc32fast::hash(&r.payload).to_le_bytes());
            self.buf.extend_from_slice(&r.payload);
        }
        let result = self
            .file
            .write_all(&self.buf)
            .and_then(|()| match self.sync {
                SyncPolicy::Always => self.file.sync_data(),
                SyncPolicy::Never => Ok(()),
            });
        match result {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.bytes
                    .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
                for r in group {
                    let _ = r.ack.send(Ok(self.id));
                }
            }
            Err(e) => {
                // A failed write may have left part of the group in the file;
                // continue in a fresh segment so a later good record never
                // follows garbage. Recovery skips the torn tail.
                let msg = e.to_string();
                tracing::warn!(error = %msg, segment = self.id, "write-ahead log append failed");
                for r in group {
                    let _ = r.ack.send(Err(Error::Wal(msg.clone())));
                }
                if let Err(e) = self.rotate() {
                    tracing::warn!(error = %e, "cannot start a new write-ahead log segment");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let a = Int64Array::from_iter_values(0..n);
        let b = StringArray::from_iter_values((0..n).map(|i| format!("v{i}")));
        RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b)]).expect("batch")
    }

    fn read_all(dir: &Path) -> (Vec<WalEntry>, Replay) {
        let mut entries = Vec::new();
        let r = replay(dir, 0, |_, p| {
            entries.extend(decode(p)?);
            Ok(())
        })
        .expect("replay");
        (entries, r)
    }

    #[tokio::test]
    async fn appends_replay_and_rotate() {
        let dir = tempfile::tempdir().expect("tmp");
        let wal = Wal::open(dir.path(), SyncPolicy::Always, 1 << 20, 16).expect("open");
        let t = TenantId::new("acme").expect("tenant");
        for i in 1..=5 {
            let seg = wal
                .append(encode(&t, Signal::Logs, &batch(i)).expect("enc"))
                .await
                .expect("append");
            assert_eq!(seg, 1);
        }
        assert_eq!(wal.rotate().await.expect("rotate"), 2);
        wal.append(encode(&t, Signal::Traces, &batch(9)).expect("enc"))
            .await
            .expect("append");
        let (entries, r) = read_all(dir.path());
        assert_eq!(
            r,
            Replay {
                records: 6,
                corrupt_tails: 0,
                skipped_bytes: 0
            }
        );
        assert_eq!(
            entries
                .iter()
                .map(|e| e.batch.num_rows())
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 9]
        );
        assert_eq!(entries[5].signal, Signal::Traces);
        assert_eq!(entries[0].tenant.as_str(), "acme");
        assert_eq!(entries[4].batch, batch(5));
        wal.truncate_before(2).expect("truncate");
        assert_eq!(segments(dir.path()).expect("list"), vec![2]);
    }

    #[tokio::test]
    async fn truncated_and_corrupt_tails_are_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("tmp");
        let t = TenantId::default();
        {
            let wal = Wal::open(dir.path(), SyncPolicy::Always, 1 << 20, 16).expect("open");
            for i in 1..=3 {
                wal.append(encode(&t, Signal::Logs, &batch(i)).expect("enc"))
                    .await
                    .expect("append");
            }
            wal.rotate().await.expect("rotate");
            for i in 4..=6 {
                wal.append(encode(&t, Signal::Logs, &batch(i)).expect("enc"))
                    .await
                    .expect("append");
            }
        }
        // Segment 1: cut in the middle of the last record.
        let p1 = segment_path(dir.path(), 1);
        let len = fs::metadata(&p1).expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(&p1)
            .expect("open")
            .set_len(len - 7)
            .expect("truncate");
        // Segment 2: flip a byte inside the second record's payload.
        let p2 = segment_path(dir.path(), 2);
        let mut bytes = fs::read(&p2).expect("read");
        let first_len = u32::from_le_bytes(bytes[..4].try_into().expect("len")) as usize;
        bytes[HEADER + first_len + HEADER + 3] ^= 0xff;
        fs::write(&p2, &bytes).expect("write");

        let (entries, r) = read_all(dir.path());
        assert_eq!(
            entries
                .iter()
                .map(|e| e.batch.num_rows())
                .collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
        assert_eq!(r.records, 3);
        assert_eq!(r.corrupt_tails, 2);
        assert!(r.skipped_bytes > 0);
        // Reopening appends to a fresh segment after the damaged ones.
        let wal = Wal::open(dir.path(), SyncPolicy::Always, 1 << 20, 16).expect("reopen");
        assert_eq!(
            wal.append(encode(&t, Signal::Logs, &batch(7)).expect("enc"))
                .await
                .expect("append"),
            3
        );
    }

    #[tokio::test]
    async fn concurrent_writers_share_syncs() {
        let dir = tempfile::tempdir().expect("tmp");
        let wal = Wal::open(dir.path(), SyncPolicy::Always, 1 << 20, 1024).expect("open");
        let t = TenantId::default();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (wal, t) = (wal.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                wal.append(encode(&t, Signal::Metrics, &batch(i % 7 + 1)).expect("enc"))
                    .await
            }));
        }
        for t in tasks {
            t.await.expect("join").expect("append");
        }
        let (entries, r) = read_all(dir.path());
        assert_eq!((entries.len(), r.records), (200, 200));
    }
}
