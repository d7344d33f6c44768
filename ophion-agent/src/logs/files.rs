//! Which files are which, across renames, truncation and restarts, and
//! what has been read of each.
//!
//! A file is known while the agent runs by its device and inode (a rename
//! keeps them), and across restarts by its fingerprint: a hash of its
//! first bytes (up to [`FINGERPRINT_BYTES`]), as the OpenTelemetry
//! Collector's filelog receiver and Vector do. Its offset counts the bytes
//! turned into records; the rest is read again at the next look.
//!
//! - **Rename rotation** (`app.log` -> `app.log.1`, a new `app.log`): the
//!   open handle keeps reading the renamed file to its end, whether or not
//!   the pattern lists the new name; the new `app.log` is a new file.
//! - **Copy-truncate** (`app.log` copied to `app.log.1`, then emptied):
//!   a new file that starts like a file being read is held as its copy,
//!   unread. When the original is truncated (shorter than its offset), it
//!   starts again at 0 and the copy continues from the original's offset,
//!   so the lines written between the last read and the copy come from
//!   the copy, once. An original never truncated within
//!   [`COPY_WAIT`] makes the copy a plain duplicate: it is skipped to its
//!   end. (Lines written between the copy and the truncation are lost to
//!   every reader: that is copy-truncate's own window.)
//! - **Truncation** in place: read again from the start.
//! - **Restart**: files are matched to the saved state by fingerprint.

use std::{
    collections::HashMap,
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Bytes of a file's start that identify it.
pub const FINGERPRINT_BYTES: usize = 1024;

/// How long a copy waits for its original to be truncated.
pub const COPY_WAIT: Duration = Duration::from_secs(5);

/// FNV-1a, 64 bits: stable across builds and platforms.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A fingerprint: how many of the first bytes, and their hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Bytes hashed.
    pub len: u32,
    /// Their hash.
    pub hash: u64,
}

/// The first bytes of `f` (up to `n`).
fn head(f: &mut File, n: usize) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::with_capacity(n);
    f.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

impl Fingerprint {
    fn of(bytes: &[u8]) -> Self {
        Self {
            len: bytes.len() as u32,
            hash: fnv(bytes),
        }
    }

    /// Whether `f` starts with the bytes this fingerprint was taken of.
    fn matches(&self, f: &mut File) -> bool {
        head(f, self.len as usize)
            .is_ok_and(|h| h.len() == self.len as usize && fnv(&h) == self.hash)
    }
}

/// What is saved of a file across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Where it was last seen.
    pub path: PathBuf,
    /// Its fingerprint.
    pub fp: Fingerprint,
    /// Bytes turned into records.
    pub offset: u64,
}

/// A file being read.
#[derive(Debug)]
pub struct Tracked {
    /// Where it was last seen.
    pub path: PathBuf,
    /// Its identity while the agent runs.
    pub id: (u64, u64),
    /// The open handle (kept across renames and deletion).
    pub file: File,
    /// Its fingerprint.
    pub fp: Fingerprint,
    /// Bytes turned into records.
    pub offset: u64,
    /// Whether a pattern still lists it.
    pub listed: bool,
    /// When it last grew (or was first seen).
    pub last_growth: Instant,
    /// Its size at the last look.
    pub size: u64,
    /// The source (index in the configuration) it belongs to.
    pub source: usize,
    /// A copy of the file with this identity, since then: not read
    /// while the original is not truncated.
    pub copy_of: Option<((u64, u64), Instant)>,
}

#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Every file being read.
#[derive(Debug, Default)]
pub struct Files {
    /// By identity.
    pub tracked: HashMap<(u64, u64), Tracked>,
    /// Saved entries not matched to a file yet (from the last run).
    pub unmatched: Vec<Saved>,
}

impl Files {
    /// Starts from the state a previous run saved.
    pub fn from_saved(saved: Vec<Saved>) -> Self {
        Self {
            tracked: HashMap::new(),
            unmatched: saved,
        }
    }

    /// What to save now.
    pub fn saved(&self) -> Vec<Saved> {
        let mut out: Vec<Saved> = self
            .tracked
            .values()
            .map(|t| Saved {
                path: t.path.clone(),
                fp: t.fp,
                offset: t.offset,
            })
            .collect();
        out.extend(self.unmatched.iter().cloned());
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Brings the set up to date with the files the patterns list now
    /// (`(path, source)`), opening new ones, following renames and
    /// noticing truncation. `from_end`: a file never seen before whose
    /// content predates the agent starts at its end.
    pub fn refresh(&mut self, listed: &[(PathBuf, usize)], first_look: bool, from_end: bool) {
        for t in self.tracked.values_mut() {
            t.listed = false;
        }
        let mut new = Vec::new();
        for (path, source) in listed {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let id = identity(&meta);
            if let Some(t) = self.tracked.get_mut(&id) {
                t.listed = true;
                t.path = path.clone();
                continue;
            }
            let Ok(file) = File::open(path) else { continue };
            new.push((path.clone(), *source, id, file, meta.len()));
        }
        // Truncated files: their identity, old fingerprint and offset, for
        // a copy.
        let mut truncated: Vec<((u64, u64), Fingerprint, u64)> = Vec::new();
        for t in self.tracked.values_mut() {
            let size = t.file.metadata().map_or(t.size, |m| m.len());
            let rewritten = size < u64::from(t.fp.len) || !t.fp.matches(&mut t.file);
            if size < t.offset || rewritten {
                truncated.push((t.id, t.fp, t.offset));
                tracing::info!(file = %t.path.display(), "file truncated; reading it from the start");
                t.offset = 0;
                t.fp = Fingerprint::of(&[]);
            }
            if size != t.size {
                t.last_growth = Instant::now();
            }
            t.size = size;
        }
        // Copies found earlier: follow their original.
        let offsets: HashMap<(u64, u64), u64> =
            self.tracked.values().map(|t| (t.id, t.offset)).collect();
        for t in self.tracked.values_mut() {
            let Some((of, since)) = t.copy_of else {
                continue;
            };
            if let Some((_, _, o)) = truncated.iter().find(|(id, _, _)| *id == of) {
                t.offset = (*o).min(t.size);
                t.copy_of = None;
            } else if !offsets.contains_key(&of) {
                t.copy_of = None;
            } else if since.elapsed() > COPY_WAIT {
                if t.last_growth.elapsed() < COPY_WAIT / 2 {
                    // Still written to: a file of its own that starts
                    // like another.
                    t.offset = 0;
                } else {
                    tracing::info!(file = %t.path.display(), "a copy of a file already read; skipped");
                    t.offset = t.size;
                }
                t.copy_of = None;
            } else {
                t.offset = offsets[&of].min(t.size);
            }
        }
        for (path, source, id, mut file, size) in new {
            let fp = head(&mut file, FINGERPRINT_BYTES)
                .map_or(Fingerprint::of(&[]), |h| Fingerprint::of(&h));
            let mut offset = if from_end && first_look { size } else { 0 };
            let mut copy_of = None;
            // A file saved by the last run, the copy of one truncated in
            // this look, or a copy of one being read.
            if let Some(i) = self
                .unmatched
                .iter()
                .position(|s| s.fp.len > 0 && s.fp.matches(&mut file) && s.offset <= size)
            {
                offset = self.unmatched.swap_remove(i).offset;
            } else if let Some(i) = truncated
                .iter()
                .position(|(_, f, o)| f.len > 0 && f.matches(&mut file) && *o <= size)
            {
                offset = truncated.swap_remove(i).2;
            } else if let Some(t) = self.tracked.values_mut().find(|t| {
                t.fp.len > 0 && t.copy_of.is_none() && size <= t.size && t.fp.matches(&mut file)
            }) {
                offset = t.offset.min(size);
                copy_of = Some((t.id, Instant::now()));
            }
            self.tracked.insert(
                id,
                Tracked {
                    path,
                    id,
                    file,
                    fp,
                    offset,
                    listed: true,
                    last_growth: Instant::now(),
                    size,
                    source,
                    copy_of,
                },
            );
        }
        // Grow short fingerprints as their files grow.
        for t in self.tracked.values_mut() {
            if (t.fp.len as usize) < FINGERPRINT_BYTES
                && t.size > u64::from(t.fp.len)
                && let Ok(h) = head(&mut t.file, FINGERPRINT_BYTES)
            {
                t.fp = Fingerprint::of(&h);
            }
        }
    }

    /// Drops files no pattern lists that have been read to their end and
    /// idle for `idle` (a rotated-away file is drained first).
    pub fn forget_finished(&mut self, idle: Duration) {
        self.tracked
            .retain(|_, t| t.listed || t.offset < t.size || t.last_growth.elapsed() < idle);
    }
}

/// Reads up to `max` bytes of `t` from its offset.
pub fn read_new(t: &mut Tracked, max: usize) -> std::io::Result<Vec<u8>> {
    t.file.seek(SeekFrom::Start(t.offset))?;
    let mut buf = Vec::new();
    (&mut t.file).take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Lists the files of `include` patterns minus `exclude` ones.
pub fn list(include: &[String], exclude: &[String]) -> Vec<PathBuf> {
    let excluded: Vec<glob::Pattern> = exclude
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    let mut out = Vec::new();
    for pattern in include {
        let Ok(paths) = glob::glob(pattern) else {
            tracing::warn!(pattern, "not a valid file pattern");
            continue;
        };
        for p in paths.flatten() {
            let name = p.file_name().map(Path::new).unwrap_or(&p);
            if !excluded
                .iter()
                .any(|e| e.matches_path(&p) || e.matches_path(name))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
