//! Background upkeep of published files: compaction of small files and
//! retention. Both change the catalog in one transaction (new files in, old
//! files out) before touching objects, and delete retired objects only on a
//! later pass, so a query that planned with the old files can still read
//! them.

use std::{collections::HashMap, sync::Arc, sync::atomic::Ordering::Relaxed};

use arrow_array::RecordBatch;
use arrow_schema::SortOptions;
use datafusion::{
    datasource::{
        physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource},
        source::DataSourceExec,
    },
    execution::object_store::ObjectStoreUrl,
    physical_expr::{LexOrdering, PhysicalSortExpr, expressions::Column},
    physical_plan::{ExecutionPlan as _, sorts::sort_preserving_merge::SortPreservingMergeExec},
    prelude::SessionContext,
};
use datafusion_datasource::PartitionedFile;
use futures::StreamExt as _;
use object_store::{ObjectStoreExt as _, PutPayload, path::Path as ObjectPath};
use ophion_core::{Signal, TenantId};

use crate::{
    catalog::{FileMeta, NewFile},
    error::{Error, Result},
    persist,
    store::{Inner, Store},
};

const NANOS_PER_DAY: i64 = 86_400_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;
/// Files merged at once: each open input holds a few decoded batches.
const MAX_MERGE_FILES: usize = 4;
/// Files stitched into one: bounds the row groups per file.
const MAX_STITCH_FILES: usize = 32;

/// Splits a partition's files (oldest first) into runs of about one small
/// file's worth of output and at most `max_files` each, so the work per
/// merge stays bounded. A run shorter than `min_files` waits for more
/// snapshots, unless the hour is over (`closed`) and the partition had
/// `min_files` in all: then its last run is merged from two files up, as
/// no more snapshots are coming to fill it (the tail of 7 snapshots cut
/// into runs of 4 stayed three small zstd 3 files for good).
fn runs(
    files: Vec<Arc<FileMeta>>,
    small_file_bytes: u64,
    max_files: usize,
    min_files: usize,
    closed: bool,
) -> Vec<Vec<Arc<FileMeta>>> {
    let min_files = min_files.max(2);
    let tail_files = if files.len() >= min_files {
        2
    } else {
        min_files
    };
    let mut out = Vec::new();
    let mut run: Vec<Arc<FileMeta>> = Vec::new();
    let mut run_bytes = 0;
    for f in files {
        run_bytes += f.bytes;
        run.push(f);
        if run_bytes >= small_file_bytes || run.len() >= max_files {
            let full = std::mem::take(&mut run);
            if full.len() >= min_files {
                out.push(full);
            }
            run_bytes = 0;
        }
    }
    if closed && run.len() >= tail_files {
        out.push(run);
    }
    out
}

impl Store {
    /// Merges the small files of each hour partition into one sorted file,
    /// when a partition has at least `compaction.min_files` of them.
    /// Returns how many files were merged away.
    pub async fn compact(&self) -> Result<usize> {
        let inner = &self.inner;
        let _one = inner.maintenance.lock().await;
        delete_retired(inner).await;
        if !maintenance_turn(inner).await? {
            return Ok(0);
        }
        let cfg = &inner.config.compaction;
        // Only files written by snapshots are merged, once: a compacted
        // file is final, so no row is rewritten twice. Snapshots whose row
        // groups are kept as they are (see below) are stitched whatever
        // their size: that costs a copy of their bytes, not CPU, and every
        // file fewer saves each query opening it. Other snapshots are final
        // once large (`keep_file_bytes`): re-encoding them would cost about
        // as much as ingesting their rows again. A partition is merged when
        // its hour is over (no more rows are coming) or it already holds a
        // small file's worth of snapshots.
        let closed_before = inner
            .clock
            .now_nanos()
            .saturating_sub(HOUR_NS + 10 * 60 * 1_000_000_000);
        let copied = |f: &FileMeta| f.rows >= cfg.copy_min_rows && f.signal != Signal::Logs;
        let mut groups: HashMap<(TenantId, Signal, String), Vec<Arc<FileMeta>>> = HashMap::new();
        for f in inner.catalog.all() {
            if f.level == 0 && (f.bytes < cfg.keep_file_bytes || copied(&f)) {
                let dir = f
                    .path
                    .rsplit_once('/')
                    .map_or(String::new(), |(d, _)| d.to_owned());
                groups
                    .entry((f.tenant.clone(), f.signal, dir))
                    .or_default()
                    .push(f);
            }
        }
        let mut merged = 0;
        for ((tenant, signal, _), mut files) in groups {
            let hour_start = files
                .iter()
                .map(|f| f.min_time)
                .min()
                .unwrap_or(0)
                .div_euclid(HOUR_NS)
                * HOUR_NS;
            let closed = hour_start < closed_before;
            files.sort_by_key(|f| f.min_time);
            // Files with row groups large enough to keep are stitched
            // together byte for byte; the others are merged and re-encoded.
            // Logs are always re-encoded: their text shrinks by about 7%
            // more with the full sort and zstd 9, where spans (random ids)
            // gain about 3% for the same CPU.
            let (copy, merge): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| copied(f));
            for run in runs(
                copy,
                cfg.small_file_bytes,
                MAX_STITCH_FILES,
                cfg.min_files,
                closed,
            ) {
                // A closing store ends the pass between merges.
                if inner.closing.load(Relaxed) {
                    break;
                }
                merged += stitch_group(inner, tenant.clone(), signal, run).await?;
            }
            for run in runs(
                merge,
                cfg.small_file_bytes,
                MAX_MERGE_FILES,
                cfg.min_files,
                closed,
            ) {
                // A closing store ends the pass between merges.
                if inner.closing.load(Relaxed) {
                    break;
                }
                merged += compact_group(inner, tenant.clone(), signal, run).await?;
            }
        }
        inner
            .stats
            .files_compacted
            .fetch_add(merged as u64, Relaxed);
        Ok(merged)
    }

    /// Retires files older than each signal's retention, then, with a size
    /// cap, the oldest files of each tenant and signal above it. Returns how
    /// many files were retired.
    pub async fn enforce_retention(&self) -> Result<usize> {
        let inner = &self.inner;
        let _one = inner.maintenance.lock().await;
        delete_retired(inner).await;
        if !maintenance_turn(inner).await? {
            return Ok(0);
        }
        let r = &inner.config.retention;
        let now = inner.clock.now_nanos();
        let days = |s: Signal| match s {
            Signal::Traces => r.traces_days,
            Signal::Logs => r.logs_days,
            Signal::Metrics => r.metrics_days,
        };
        let mut expired: Vec<Arc<FileMeta>> = inner
            .catalog
            .all()
            .into_iter()
            .filter(|f| {
                days(f.signal) > 0
                    && f.max_time < now.saturating_sub(i64::from(days(f.signal)) * NANOS_PER_DAY)
            })
            .collect();
        if r.max_bytes > 0 {
            let mut by_table: HashMap<(TenantId, Signal), Vec<Arc<FileMeta>>> = HashMap::new();
            for f in inner.catalog.all() {
                if !expired.iter().any(|e| e.id == f.id) {
                    by_table
                        .entry((f.tenant.clone(), f.signal))
                        .or_default()
                        .push(f);
                }
            }
            for (_, mut files) in by_table {
                files.sort_by_key(|f| f.max_time);
                let mut total: u64 = files.iter().map(|f| f.bytes).sum();
                for f in files {
                    if total <= r.max_bytes {
                        break;
                    }
                    total -= f.bytes;
                    expired.push(f);
                }
            }
        }
        if expired.is_empty() {
            return Ok(0);
        }
        let ids = expired.iter().map(|f| f.id).collect();
        inner
            .catalog
            .commit(Vec::new(), ids, None, now, |_| {})
            .await?;
        retire(inner, &expired);
        inner
            .stats
            .files_expired
            .fetch_add(expired.len() as u64, Relaxed);
        Ok(expired.len())
    }
}

/// How long a node keeps the maintenance lease of a shared catalog
/// without renewing it: each pass renews it, so it passes to another node
/// only when its holder stops.
const MAINTENANCE_LEASE_NS: i64 = 10 * 60 * 1_000_000_000;

/// Whether this node maintains the files now. With a shared catalog, it
/// first catches up with the other nodes' files, then needs the
/// maintenance lease: one node compacts and retires at a time. (Were two
/// to race anyway, the catalog refuses the second to retire the same
/// files.)
async fn maintenance_turn(inner: &Inner) -> Result<bool> {
    inner.catalog.refresh().await?;
    let mine = inner
        .catalog
        .lease("maintenance", inner.clock.now_nanos(), MAINTENANCE_LEASE_NS)
        .await?;
    if mine {
        delete_retired_shared(inner).await?;
    }
    Ok(mine)
}

/// Stitches files whose row groups are worth keeping into one file, copying
/// the encoded row groups (see [`persist::stitch`]). Files of different
/// schemas fall back to a real merge.
async fn stitch_group(
    inner: &Arc<Inner>,
    tenant: TenantId,
    signal: Signal,
    files: Vec<Arc<FileMeta>>,
) -> Result<usize> {
    let mut inputs = Vec::with_capacity(files.len());
    for f in &files {
        let get = inner
            .objects
            .get(&ObjectPath::from(f.path.as_str()))
            .await?;
        inputs.push(get.bytes().await?);
    }
    let stitched = tokio::task::spawn_blocking(move || persist::stitch(&inputs))
        .await
        .map_err(|e| Error::Wal(format!("compaction task failed: {e}")))??;
    let Some((bytes, rows)) = stitched else {
        return compact_group(inner, tenant, signal, files).await;
    };
    let rows_total: u64 = files.iter().map(|f| f.rows).sum();
    if rows != rows_total {
        return Err(Error::Corrupt(format!(
            "compaction read {rows} rows from files holding {rows_total}"
        )));
    }
    let min_time = files.iter().map(|f| f.min_time).min().unwrap_or(0);
    let max_time = files.iter().map(|f| f.max_time).max().unwrap_or(0);
    publish_merged(
        inner,
        tenant,
        signal,
        &files,
        bytes,
        rows,
        (min_time, max_time),
    )
    .await
}

/// Merges sorted files with a streaming k-way merge: memory stays at a few
/// batches per input file plus the output file, whatever the input size.
async fn compact_group(
    inner: &Arc<Inner>,
    tenant: TenantId,
    signal: Signal,
    files: Vec<Arc<FileMeta>>,
) -> Result<usize> {
    let storage = persist::storage_schema(signal);
    let ordering = LexOrdering::new(
        persist::sort_columns(signal)
            .iter()
            .map(|c| {
                Ok(PhysicalSortExpr::new(
                    Arc::new(Column::new_with_schema(c, &storage)?),
                    SortOptions {
                        descending: false,
                        nulls_first: true,
                    },
                ))
            })
            .collect::<datafusion::error::Result<Vec<_>>>()?,
    )
    .ok_or_else(|| Error::Corrupt("empty sort order".into()))?;
    // One partition per file: each is sorted, so a merge keeps the order.
    let groups = files
        .iter()
        .map(|f| FileGroup::new(vec![PartitionedFile::new(f.path.clone(), f.bytes)]))
        .collect();
    let config = FileScanConfigBuilder::new(
        ObjectStoreUrl::parse(crate::objstore::STORE_URL)?,
        Arc::new(ParquetSource::new(Arc::clone(&storage))),
    )
    .with_file_groups(groups)
    .with_output_ordering(vec![ordering.clone()])
    .build();
    let merge = SortPreservingMergeExec::new(ordering, DataSourceExec::from_data_source(config));
    // Small batches: the merge holds a few per input file.
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_batch_size(2048),
    );
    ctx.runtime_env().register_object_store(
        &url::Url::parse(crate::objstore::STORE_URL).map_err(|e| Error::Config(e.to_string()))?,
        Arc::clone(&inner.objects),
    );
    let mut stream = merge.execute(0, ctx.task_ctx())?;

    // Encode on a blocking thread as batches arrive.
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
    let rows_total: u64 = files.iter().map(|f| f.rows).sum();
    let text_index = inner.config.buffer.text_index;
    let encoder =
        tokio::task::spawn_blocking(move || -> Result<(bytes::Bytes, usize, i64, i64)> {
            let mut w = persist::FileEncoder::new(
                Vec::new(),
                signal,
                Arc::clone(&storage),
                rows_total as usize,
                persist::Effort::Compaction,
                text_index,
            )?;
            let (mut rows, mut min, mut max) = (0usize, i64::MAX, i64::MIN);
            for batch in rx {
                let (lo, hi) = persist::time_range(&batch, signal)?;
                min = min.min(lo);
                max = max.max(hi);
                rows += batch.num_rows();
                w.write(&batch)?;
            }
            let out = w.finish()?;
            Ok((bytes::Bytes::from(out), rows, min, max))
        });
    while let Some(batch) = stream.next().await {
        if tx.send(batch?).is_err() {
            break; // the encoder failed; its error is reported below
        }
    }
    drop(tx);
    let (bytes, rows, min_time, max_time) = encoder
        .await
        .map_err(|e| Error::Wal(format!("compaction task failed: {e}")))??;
    if rows as u64 != rows_total {
        return Err(Error::Corrupt(format!(
            "compaction read {rows} rows from files holding {rows_total}"
        )));
    }
    publish_merged(
        inner,
        tenant,
        signal,
        &files,
        bytes,
        rows as u64,
        (min_time, max_time),
    )
    .await
}

/// Uploads a merged file and swaps it for its inputs in one catalog commit;
/// returns how many files it replaced.
async fn publish_merged(
    inner: &Arc<Inner>,
    tenant: TenantId,
    signal: Signal,
    files: &[Arc<FileMeta>],
    bytes: bytes::Bytes,
    rows: u64,
    (min_time, max_time): (i64, i64),
) -> Result<usize> {
    let hour = min_time.div_euclid(HOUR_NS) * HOUR_NS;
    let path = persist::file_path(&tenant, signal, hour, &inner.writer);
    let size = bytes.len() as u64;
    let object = ObjectPath::from(path.as_str());
    inner.objects.put(&object, PutPayload::from(bytes)).await?;
    let new = NewFile {
        tenant,
        signal,
        path,
        min_time,
        max_time,
        rows,
        bytes: size,
        level: 1,
    };
    let ids = files.iter().map(|f| f.id).collect();
    let committed = inner
        .catalog
        .commit(vec![new], ids, None, inner.clock.now_nanos(), |_| {})
        .await;
    if let Err(e) = committed {
        // Unpublished: no query can read it. (Were the delete to fail too,
        // the next start sweeps it.)
        let _ = inner.objects.delete(&object).await;
        return Err(e);
    }
    retire(inner, files);
    Ok(files.len())
}

/// Remembers objects no longer in the catalog, for deletion once no query
/// that could have planned with them can still run.
fn retire(inner: &Inner, files: &[Arc<FileMeta>]) {
    // A shared catalog lists its retired files itself (see
    // `delete_retired_shared`), whichever node retired them.
    if inner.catalog.db().shared() {
        return;
    }
    let now = std::time::Instant::now();
    let mut r = inner.retired.lock().unwrap_or_else(|e| e.into_inner());
    r.extend(files.iter().map(|f| (f.path.clone(), now)));
}

/// How long a retired file stays: a query runs at most
/// `query.timeout_secs`; that long, and more.
fn retired_grace(inner: &Inner) -> std::time::Duration {
    std::time::Duration::from_secs(inner.config.query.timeout_secs.max(1) + 5)
}

/// Deletes the objects of files the shared catalog retired more than the
/// grace ago and that are not deleted yet, whichever node retired them
/// (a compact node killed after its commit leaves none behind).
async fn delete_retired_shared(inner: &Inner) -> Result<()> {
    let db = inner.catalog.db();
    if !db.shared() {
        return Ok(());
    }
    let grace = i64::try_from(retired_grace(inner).as_nanos()).unwrap_or(i64::MAX);
    let due = db
        .retired_undeleted(inner.clock.now_nanos().saturating_sub(grace))
        .await?;
    let mut done = Vec::with_capacity(due.len());
    for (id, p) in due {
        let path = ObjectPath::from(p.as_str());
        inner.metadata_cache.remove(&path);
        inner.text_indexes.remove(&p);
        match inner.objects.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => done.push(id),
            Err(e) => {
                tracing::warn!(path = %p, error = %e, "cannot delete a retired file; will retry")
            }
        }
    }
    if !done.is_empty() {
        db.mark_deleted(&done, inner.clock.now_nanos()).await?;
    }
    Ok(())
}

async fn delete_retired(inner: &Inner) {
    let grace = retired_grace(inner);
    let paths: Vec<String> = {
        let mut r = inner.retired.lock().unwrap_or_else(|e| e.into_inner());
        let (due, keep): (Vec<_>, Vec<_>) = r.drain(..).partition(|(_, at)| at.elapsed() >= grace);
        *r = keep;
        due.into_iter().map(|(p, _)| p).collect()
    };
    for p in paths {
        let path = ObjectPath::from(p.as_str());
        inner.metadata_cache.remove(&path);
        inner.text_indexes.remove(&p);
        if let Err(e) = inner.objects.delete(&path).await {
            tracing::warn!(path = %p, error = %e, "cannot delete a retired file; it is no longer queried");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshots(n: usize) -> Vec<Arc<FileMeta>> {
        (0..n)
            .map(|i| {
                Arc::new(FileMeta {
                    id: i as i64,
                    tenant: TenantId::default(),
                    signal: Signal::Logs,
                    path: format!("default/logs/h/{i}.parquet"),
                    min_time: i as i64,
                    max_time: i as i64,
                    rows: 100_000,
                    bytes: 2 << 20,
                    level: 0,
                })
            })
            .collect()
    }

    fn lengths(n: usize, closed: bool) -> Vec<usize> {
        runs(snapshots(n), 64 << 20, MAX_MERGE_FILES, 4, closed)
            .iter()
            .map(Vec::len)
            .collect()
    }

    #[test]
    fn a_closed_hour_merges_every_run_it_can() {
        assert_eq!(MAX_MERGE_FILES, 4, "the cases below assume runs of 4");
        // Seven snapshots of a closed hour: four, then the other three.
        assert_eq!(lengths(7, true), [4, 3]);
        // An hour still open keeps its last three for more snapshots.
        assert_eq!(lengths(7, false), [4]);
        // Fewer than min_files in all: the hour's files stay as they are.
        assert_eq!(lengths(3, true), Vec::<usize>::new());
        assert_eq!(lengths(4, true), [4]);
        // A last run of one file has nothing to merge with.
        assert_eq!(lengths(5, true), [4]);
        assert_eq!(lengths(10, true), [4, 4, 2]);
    }
}
