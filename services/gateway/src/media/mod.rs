//! Inbound media: where files are kept (object_store: a local directory by default, or an
//! S3-compatible bucket), the download that fetches each file from Meta at once, checks it
//! against the sha256 Meta announced and keeps it, and the removal of a deleted contact's files.

mod fetch;
mod removal;

use std::sync::Arc;

use heydoc_config::{MediaBackend, Settings};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use secrecy::ExposeSecret;

pub use fetch::{fetch, spawn_fetch, sweep};
pub use removal::{expire_uploads, remove_deleted};

/// Why a stored file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not in the store (deleted by hand, expired by a bucket's lifecycle rule).
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Other(String),
}

/// A stored file's pieces.
pub type FileStream =
    futures_util::stream::BoxStream<'static, Result<axum::body::Bytes, object_store::Error>>;

/// The size of the parts a file is written in (S3's smallest part is 5 MiB).
const WRITE_PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one file being written at once.
const WRITE_PARTS_AT_ONCE: usize = 2;

/// A file being written to the store a piece at a time; `finish` keeps it, `abort` (or an
/// error) leaves nothing behind.
pub struct Writer {
    inner: WriteMultipart,
    location: String,
}

impl Writer {
    pub async fn write(&mut self, piece: &[u8]) -> Result<(), String> {
        self.inner
            .wait_for_capacity(WRITE_PARTS_AT_ONCE)
            .await
            .map_err(|e| format!("{}: {e}", self.location))?;
        self.inner.write(piece);
        Ok(())
    }

    pub async fn finish(self) -> Result<(), String> {
        self.inner
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.location))
    }

    pub async fn abort(self) {
        if let Err(e) = self.inner.abort().await {
            tracing::debug!(error = %e, "cannot abort a media write");
        }
    }
}

/// Where media files are kept. Keys are HeyDoc's own (`<yyyy>/<mm>/<message id>`), never a
/// name a user gave.
#[derive(Clone)]
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
    /// `local:/var/lib/heydoc/media` or `s3://bucket`, for logs and errors.
    pub location: String,
}

impl MediaStore {
    /// The store the settings name. A local directory is created when missing.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        match settings.media.backend {
            MediaBackend::Local => {
                let dir = settings.media_dir();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("media directory {}: {e}", dir.display()))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| format!("media directory {}: {e}", dir.display()))?;
                Ok(Self {
                    inner: Arc::new(fs),
                    location: format!("local:{}", dir.display()),
                })
            }
            MediaBackend::S3 => {
                let m = &settings.media;
                if m.s3_bucket.trim().is_empty() {
                    return Err("media.backend is s3 but HEYDOC_MEDIA__S3_BUCKET is empty".into());
                }
                // AWS_* from the environment first (an instance role, a profile), then the
                // settings where they are given.
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(m.s3_bucket.trim());
                if !m.s3_region.trim().is_empty() {
                    builder = builder.with_region(m.s3_region.trim());
                }
                if !m.s3_endpoint.trim().is_empty() {
                    builder = builder
                        .with_endpoint(m.s3_endpoint.trim())
                        .with_allow_http(m.s3_endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                if !m.s3_access_key_id.trim().is_empty() {
                    builder = builder
                        .with_access_key_id(m.s3_access_key_id.trim())
                        .with_secret_access_key(m.s3_secret_access_key.expose_secret());
                }
                let s3 = builder
                    .build()
                    .map_err(|e| format!("S3 media store: {e}"))?;
                Ok(Self {
                    inner: Arc::new(s3),
                    location: format!("s3://{}", m.s3_bucket.trim()),
                })
            }
        }
    }

    /// Keeps a file already in memory (a small upload).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        let path = Self::path(key)?;
        self.inner
            .put(&path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.location))
    }

    /// Starts writing `key` a piece at a time (a multipart upload on S3, a temporary file on
    /// a local directory): at most a few parts are held in memory, whatever the file's size.
    pub async fn writer(&self, key: &str) -> Result<Writer, String> {
        let path = Self::path(key)?;
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| format!("{}: {e}", self.location))?;
        Ok(Writer {
            inner: WriteMultipart::new_with_chunk_size(upload, WRITE_PART_BYTES),
            location: self.location.clone(),
        })
    }

    /// The file at `key`, as a stream of pieces (never read whole into memory).
    pub async fn get(&self, key: &str) -> Result<FileStream, StoreError> {
        let path = Self::path(key).map_err(StoreError::Other)?;
        match self.inner.get(&path).await {
            Ok(found) => Ok(found.into_stream()),
            Err(object_store::Error::NotFound { .. }) => {
                Err(StoreError::Missing(format!("{}: {key}", self.location)))
            }
            Err(other) => Err(StoreError::Other(format!("{}: {other}", self.location))),
        }
    }

    /// Removes a file; one that is already gone counts as removed.
    pub async fn delete(&self, key: &str) -> Result<(), String> {
        let path = Self::path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.location)),
        }
    }

    /// A key of ours as an object path; anything that could leave the store is refused.
    fn path(key: &str) -> Result<Path, String> {
        if key.is_empty()
            || key
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(format!("bad media key {key:?}"));
        }
        Path::parse(key).map_err(|e| format!("bad media key {key:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(store: &MediaStore, key: &str) -> Vec<u8> {
        use futures_util::TryStreamExt;
        let pieces: Vec<axum::body::Bytes> =
            store.get(key).await.unwrap().try_collect().await.unwrap();
        pieces.concat()
    }

    #[tokio::test]
    async fn keeps_files_and_refuses_keys_that_leave_the_directory() {
        let dir = std::env::temp_dir().join(format!("heydoc-media-{}", uuid::Uuid::new_v4()));
        let mut settings = Settings::defaults().unwrap();
        settings.media.dir = dir.display().to_string();
        let store = MediaStore::from_settings(&settings).unwrap();
        store.put("2026/11/7", b"photo".to_vec()).await.unwrap();
        assert_eq!(read_all(&store, "2026/11/7").await, b"photo");
        // Written a piece at a time, read back whole.
        let mut w = store.writer("2026/11/8").await.unwrap();
        let piece = vec![7u8; 3 * 1024 * 1024];
        for _ in 0..3 {
            w.write(&piece).await.unwrap();
        }
        w.finish().await.unwrap();
        assert_eq!(read_all(&store, "2026/11/8").await.len(), 9 * 1024 * 1024);
        assert!(dir.join("2026/11/7").exists());
        store.delete("2026/11/7").await.unwrap();
        assert!(!dir.join("2026/11/7").exists());
        store
            .delete("2026/11/7")
            .await
            .expect("a file already gone is removed");
        assert!(matches!(
            store.get("2026/11/7").await,
            Err(StoreError::Missing(_))
        ));
        for bad in ["../x", "a/../../x", "", "a//b", "/etc/passwd"] {
            assert!(store.get(bad).await.is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
