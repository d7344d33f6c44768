//! Building the object store that holds Parquet files.

use std::sync::Arc;

use futures::StreamExt as _;

use object_store::{ObjectStore, ObjectStoreExt as _, local::LocalFileSystem};

#[cfg(not(feature = "s3"))]
use crate::error::Error;
use crate::{
    config::{ObjectStoreConfig, StoreConfig},
    error::Result,
};

/// The URL the store's object store is registered under in each query
/// session.
pub(crate) const STORE_URL: &str = "ophion://store/";

/// The configured object store, rooted where Ophion's paths start.
pub(crate) fn build(config: &StoreConfig) -> Result<Arc<dyn ObjectStore>> {
    match &config.object_store {
        ObjectStoreConfig::Local | ObjectStoreConfig::Directory { .. } => {
            let root = match &config.object_store {
                ObjectStoreConfig::Directory { path } => path.clone(),
                _ => config.data_dir.join("parquet"),
            };
            std::fs::create_dir_all(&root)?;
            Ok(Arc::new(
                LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true),
            ))
        }
        #[cfg(feature = "s3")]
        ObjectStoreConfig::S3 {
            bucket,
            region,
            endpoint,
            access_key_id,
            secret_access_key,
            allow_http,
            prefix,
        } => {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(region)
                .with_allow_http(*allow_http)
                .with_retry(object_store::RetryConfig {
                    max_retries: 10,
                    retry_timeout: std::time::Duration::from_secs(60),
                    ..Default::default()
                });
            if let Some(e) = endpoint {
                b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
            }
            if let Some(k) = access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(s) = secret_access_key {
                b = b.with_secret_access_key(s);
            }
            let store: Arc<dyn ObjectStore> = Arc::new(b.build()?);
            if prefix.is_empty() {
                Ok(store)
            } else {
                Ok(Arc::new(object_store::prefix::PrefixStore::new(
                    store,
                    prefix.as_str(),
                )))
            }
        }
        #[cfg(not(feature = "s3"))]
        ObjectStoreConfig::S3 { .. } => Err(Error::Config(
            "object_store.kind = \"s3\" needs ophion-store built with the `s3` feature".into(),
        )),
    }
}

/// Deletes objects the catalog does not know (`known` holds its paths): files a crash left between
/// their upload and their publication, and retired files a restart forgot
/// to delete. Runs at open, before this node can write; objects modified
/// within `min_age` are left alone (with a shared catalog, another node
/// may be about to publish them). Returns how many were deleted.
pub(crate) async fn sweep_orphans(
    objects: &dyn ObjectStore,
    known: &std::collections::HashSet<String>,
    min_age: std::time::Duration,
    own_suffix: &str,
) -> Result<u64> {
    let mut listing = objects.list(None);
    let mut orphans = Vec::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let newest = now - min_age.as_secs() as i64;
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        let path = meta.location.to_string();
        let own = path
            .strip_suffix(".parquet")
            .is_some_and(|p| p.ends_with(own_suffix));
        if path.ends_with(".parquet")
            && !known.contains(&path)
            && (own || meta.last_modified.timestamp() <= newest)
        {
            orphans.push(meta.location);
        }
    }
    let mut deleted = 0;
    for p in orphans {
        match objects.delete(&p).await {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(path = %p, error = %e, "cannot delete an unpublished file"),
        }
    }
    if deleted > 0 {
        tracing::info!(
            files = deleted,
            "deleted files no published catalog entry refers to"
        );
    }
    Ok(deleted)
}
