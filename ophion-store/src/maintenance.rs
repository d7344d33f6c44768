//! Background upkeep of published files: compaction of small files and
//! retention. Both change the catalog in one transaction (new files in, old
//! files out) before touching objects, and delete retired objects only on a
//! later pass, so a query that planned with the old files can still read
//! them.

use std::{collections::HashMap, sync::Arc, sync::atomic::Ordering::Relaxed};

use arrow_array::RecordBatch;
use object_store::{ObjectStoreExt as _, PutPayload, path::Path as ObjectPath};
use ophion_core::{Signal, TenantId};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{
    catalog::{FileMeta, NewFile},
    error::{Error, Result},
    persist,
    store::{Inner, Store},
};

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

impl Store {
    /// Merges the small files of each hour partition into one sorted file,
    /// when a partition has at least `compaction.min_files` of them.
    /// Returns how many files were merged away.
    pub async fn compact(&self) -> Result<usize> {
        let inner = &self.inner;
        delete_retired(inner).await;
        let cfg = &inner.config.compaction;
        let mut groups: HashMap<(TenantId, Signal, String), Vec<Arc<FileMeta>>> = HashMap::new();
        for f in inner.catalog.all() {
            if f.bytes < cfg.small_file_bytes {
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
        for ((tenant, signal, _), files) in groups {
            if files.len() < cfg.min_files.max(2) {
                continue;
            }
            merged += compact_group(inner, tenant, signal, files).await?;
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
        delete_retired(inner).await;
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
            .commit(&inner.metadata, Vec::new(), ids, None, now, || {})
            .await?;
        retire(inner, &expired);
        inner
            .stats
            .files_expired
            .fetch_add(expired.len() as u64, Relaxed);
        Ok(expired.len())
    }
}

async fn compact_group(
    inner: &Arc<Inner>,
    tenant: TenantId,
    signal: Signal,
    files: Vec<Arc<FileMeta>>,
) -> Result<usize> {
    let mut batches: Vec<RecordBatch> = Vec::new();
    for f in &files {
        let bytes = inner
            .objects
            .get(&ObjectPath::from(f.path.as_str()))
            .await?
            .bytes()
            .await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
        for b in reader {
            batches.push(b?);
        }
    }
    let encoded = tokio::task::spawn_blocking(
        move || -> Result<Option<(i64, (i64, i64), usize, bytes::Bytes)>> {
            let Some(all) = persist::concat(&batches)? else {
                return Ok(None);
            };
            let sorted = persist::sort(&all, signal)?;
            let range = persist::time_range(&sorted, signal)?;
            let hour = range.0.div_euclid(3_600_000_000_000) * 3_600_000_000_000;
            Ok(Some((
                hour,
                range,
                sorted.num_rows(),
                persist::encode(&sorted, signal, persist::Effort::Compaction)?,
            )))
        },
    )
    .await
    .map_err(|e| Error::Wal(format!("compaction task failed: {e}")))??;
    let Some((hour, (min_time, max_time), rows, bytes)) = encoded else {
        return Ok(0);
    };
    let path = persist::file_path(&tenant, signal, hour);
    let size = bytes.len() as u64;
    inner
        .objects
        .put(&ObjectPath::from(path.as_str()), PutPayload::from(bytes))
        .await?;
    let new = NewFile {
        tenant,
        signal,
        path,
        min_time,
        max_time,
        rows: rows as u64,
        bytes: size,
        level: 1,
    };
    let ids = files.iter().map(|f| f.id).collect();
    inner
        .catalog
        .commit(
            &inner.metadata,
            vec![new],
            ids,
            None,
            inner.clock.now_nanos(),
            || {},
        )
        .await?;
    retire(inner, &files);
    Ok(files.len())
}

/// Remembers objects no longer in the catalog; deleted on the next pass.
fn retire(inner: &Inner, files: &[Arc<FileMeta>]) {
    let mut r = inner.retired.lock().unwrap_or_else(|e| e.into_inner());
    r.extend(files.iter().map(|f| f.path.clone()));
}

async fn delete_retired(inner: &Inner) {
    let paths: Vec<String> =
        std::mem::take(&mut *inner.retired.lock().unwrap_or_else(|e| e.into_inner()));
    for p in paths {
        if let Err(e) = inner.objects.delete(&ObjectPath::from(p.as_str())).await {
            tracing::warn!(path = %p, error = %e, "cannot delete a retired file; it is no longer queried");
        }
    }
}
