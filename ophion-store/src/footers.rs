//! Parquet footers and page indexes parsed once and shared by every query
//! session (`[store.query] metadata_cache_mb`).
//!
//! A query over hours of spans opens hundreds of files; parsing each
//! one's footer and page index again for every query cost more than the
//! rows it then read (350 ms of a 1.4 s sampled read over 10M spans).
//! Files never change once written (their names are unique), so what is
//! parsed is kept in a cache bounded in bytes and keyed by path
//! ([`FooterCache`]), and entries of deleted files are dropped with them.
//!
//! DataFusion's own caching reader stores a footer without its page index
//! (the scan first asks for the footer alone) and then reads the page
//! index from the file again in every query that prunes pages. This
//! reader fetches and caches the page index with the footer.

use std::{
    ops::Range,
    sync::{Arc, RwLock},
};

use bytes::Bytes;
use datafusion::{
    common::{HashMap, TableReference},
    datasource::{
        listing::PartitionedFile,
        physical_plan::{
            ParquetFileMetrics, ParquetFileReaderFactory, parquet::metadata::DFParquetMetadata,
        },
    },
    execution::cache::{
        Cache, CacheEntryInfo, CacheKey as _, CacheValue as _,
        cache_manager::{CachedFileMetadataEntry, FileMetadataCache},
    },
    physical_plan::metrics::ExecutionPlanMetricsSet,
};
use futures::{FutureExt as _, future::BoxFuture};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _, path::Path};
use parquet::{
    arrow::{arrow_reader::ArrowReaderOptions, async_reader::AsyncFileReader},
    errors::ParquetError,
    file::metadata::{PageIndexPolicy, ParquetMetaData},
};

/// Opens files of `store` reading footers through `cache`.
#[derive(Debug)]
pub(crate) struct CachedFooters {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) cache: Arc<FileMetadataCache>,
}

impl ParquetFileReaderFactory for CachedFooters {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::error::Result<Box<dyn AsyncFileReader + Send>> {
        let metrics =
            ParquetFileMetrics::new(partition_index, file.object_meta.location.as_ref(), metrics);
        Ok(Box::new(Reader {
            store: Arc::clone(&self.store),
            cache: Arc::clone(&self.cache),
            meta: file.object_meta,
            metadata_size_hint,
            metrics,
        }))
    }
}

struct Reader {
    store: Arc<dyn ObjectStore>,
    cache: Arc<FileMetadataCache>,
    meta: ObjectMeta,
    metadata_size_hint: Option<usize>,
    metrics: ParquetFileMetrics,
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for Reader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.metrics
            .bytes_scanned
            .add((range.end - range.start) as usize);
        self.store
            .get_range(&self.meta.location, range)
            .map(|r| r.map_err(external))
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        self.metrics.bytes_scanned.add(total as usize);
        async move {
            self.store
                .get_ranges(&self.meta.location, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            footer(
                self.store.as_ref(),
                &self.cache,
                &self.meta,
                self.metadata_size_hint,
            )
            .await
            .map_err(external)
        }
        .boxed()
    }
}

/// The footer and page index of the file at `meta`, from `cache` or read
/// and kept there.
pub(crate) async fn footer(
    store: &dyn ObjectStore,
    cache: &Arc<FileMetadataCache>,
    meta: &ObjectMeta,
    size_hint: Option<usize>,
) -> datafusion::error::Result<Arc<ParquetMetaData>> {
    DFParquetMetadata::new(store, meta)
        .with_file_metadata_cache(Some(Arc::clone(cache)))
        .with_metadata_size_hint(size_hint)
        // With the page index, always: the cached entry serves page
        // pruning too.
        .with_page_index_policy(Some(PageIndexPolicy::Optional))
        .fetch_metadata()
        .await
}

/// The footers and page indexes of recently read files, at most
/// `metadata_cache_mb` of them, with moka's TinyLFU admission.
///
/// A query passes every file of its time range. Once the footers of the
/// files a query passes outgrow the cache (a few hundred files of 100
/// million log lines), a least-recently-used cache, DataFusion's default,
/// drops each footer before the next query needs it again and hits
/// nothing. This one admits a footer only when it has been asked for
/// more often than what it would evict, so a query over more than fits
/// finds the part the cache holds, and the files asked for most win the
/// room (the same reasoning as `textindex::IndexCache`).
pub(crate) struct FooterCache {
    name: String,
    /// The limit in bytes and the entries.
    held: RwLock<(usize, moka::sync::Cache<Path, CachedFileMetadataEntry>)>,
}

impl FooterCache {
    /// A cache of at most `limit` bytes.
    pub(crate) fn new(name: &str, limit: usize) -> Self {
        Self {
            name: name.to_string(),
            held: RwLock::new((limit, Self::build(limit))),
        }
    }

    fn build(limit: usize) -> moka::sync::Cache<Path, CachedFileMetadataEntry> {
        moka::sync::Cache::builder()
            .max_capacity(limit as u64)
            .weigher(|path: &Path, entry: &CachedFileMetadataEntry| {
                u32::try_from(path.size() + entry.size()).unwrap_or(u32::MAX)
            })
            .build()
    }

    fn cache(&self) -> moka::sync::Cache<Path, CachedFileMetadataEntry> {
        // A clone shares the entries (moka's handles are reference counted).
        let held = self.held.read().unwrap_or_else(|e| e.into_inner());
        held.1.clone()
    }
}

impl Cache<Path, CachedFileMetadataEntry> for FooterCache {
    fn get(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        self.cache().get(key)
    }

    fn put(&self, key: &Path, value: CachedFileMetadataEntry) -> Option<CachedFileMetadataEntry> {
        let cache = self.cache();
        // Not `get`: a read counts towards the key's popularity, and a
        // miss counted twice would win admission over the entries it
        // evicts.
        let old = if cache.contains_key(key) {
            cache.remove(key)
        } else {
            None
        };
        cache.insert(key.clone(), value);
        old
    }

    fn remove(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        self.cache().remove(key)
    }

    fn contains_key(&self, key: &Path) -> bool {
        self.cache().contains_key(key)
    }

    fn len(&self) -> usize {
        let cache = self.cache();
        cache.run_pending_tasks();
        usize::try_from(cache.entry_count()).unwrap_or(usize::MAX)
    }

    fn clear(&self) {
        let cache = self.cache();
        cache.invalidate_all();
        cache.run_pending_tasks();
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn cache_limit(&self) -> usize {
        self.held.read().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Every query session's runtime sets the limit again (to the same
    /// value): only a new one starts a new cache.
    fn update_cache_limit(&self, limit: usize) {
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        if held.0 != limit {
            *held = (limit, Self::build(limit));
        }
    }

    /// Files never change once written: nothing expires.
    fn cache_ttl(&self) -> Option<std::time::Duration> {
        None
    }

    fn update_cache_ttl(&self, _ttl: Option<std::time::Duration>) {}

    /// Keys are paths, which belong to no table.
    fn drop_table_entries(&self, _table_ref: &TableReference) -> datafusion::error::Result<()> {
        Ok(())
    }

    fn list_entries(&self) -> HashMap<Path, CacheEntryInfo<CachedFileMetadataEntry>> {
        self.cache()
            .iter()
            .map(|(path, value)| {
                let info = CacheEntryInfo {
                    size_bytes: value.size(),
                    value,
                    hits: 0,
                    expires: None,
                };
                ((*path).clone(), info)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::cache::cache_manager::FileMetadata;

    /// A footer of 10 KiB.
    struct Footer;

    impl FileMetadata for Footer {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn memory_size(&self) -> usize {
            10 << 10
        }
        fn extra_info(&self) -> HashMap<String, String> {
            HashMap::new()
        }
    }

    /// Queries over more files than the cache holds keep finding the part
    /// it holds (least recently used found none), and a session setting
    /// the same limit again keeps the entries.
    #[test]
    fn queries_over_more_footers_than_fit_keep_hitting() {
        let cache = FooterCache::new("test", 100 << 10);
        let paths: Vec<Path> = (0..30)
            .map(|i| Path::from(format!("f{i}.parquet")))
            .collect();
        let query = || {
            let mut hits = 0;
            for path in &paths {
                if cache.get(path).is_some() {
                    hits += 1;
                } else {
                    let meta = ObjectMeta {
                        location: path.clone(),
                        last_modified: Default::default(),
                        size: 1,
                        e_tag: None,
                        version: None,
                    };
                    cache.put(path, CachedFileMetadataEntry::new(meta, Arc::new(Footer)));
                }
                cache.cache().run_pending_tasks();
            }
            hits
        };
        query();
        for pass in 0..4 {
            let hits = query();
            assert!(hits >= 5, "pass {pass}: {hits} of 30 found");
            assert!(cache.len() <= 10, "{}", cache.len());
            cache.update_cache_limit(100 << 10);
        }
        assert!(cache.len() >= 5);
        cache.update_cache_limit(0);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.cache_limit(), 0);
    }
}
