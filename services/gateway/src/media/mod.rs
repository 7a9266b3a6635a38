//! Inbound media: the storage interface files are kept through (a local directory by
//! default), and the download that fetches each file from Meta at once, checks it against
//! the sha256 Meta announced and keeps it.

mod fetch;

use std::io;
use std::path::PathBuf;

pub use fetch::{fetch, spawn_fetch, sweep};

/// Where media files are kept. Keys are HeyDoc's own (`<yyyy>/<mm>/<message id>`), never a
/// name a user gave.
#[async_trait::async_trait]
pub trait MediaStore: Send + Sync {
    async fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    async fn get(&self, key: &str) -> io::Result<Vec<u8>>;
}

/// Files under one directory (created on first use), written whole then renamed into place.
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        if key.is_empty()
            || key
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad media key"));
        }
        Ok(self.root.join(key))
    }
}

#[async_trait::async_trait]
impl MediaStore for LocalDir {
    async fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let partial = path.with_extension(format!("part-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&partial, bytes).await?;
        tokio::fs::rename(&partial, &path).await
    }

    async fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        tokio::fs::read(self.path(key)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_files_and_refuses_keys_that_leave_the_directory() {
        let dir = std::env::temp_dir().join(format!("heydoc-media-{}", uuid::Uuid::new_v4()));
        let store = LocalDir::new(dir.clone());
        store.put("2026/11/7", b"photo").await.unwrap();
        assert_eq!(store.get("2026/11/7").await.unwrap(), b"photo");
        for bad in ["../x", "a/../../x", "", "a//b", "/etc/passwd"] {
            assert!(store.get(bad).await.is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
