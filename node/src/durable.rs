//! sled's database and trees with a `flush` that survives a power cut, not only a killed
//! process. sled 0.34's own `flush` ends in `sync_file_range` on Linux, which flushes
//! neither the drive's write cache nor the log file's grown length, and it writes large
//! values to `blobs/` files it never `fsync`s; its flusher thread `fsync`s the log every
//! half second. Here `flush` runs sled's, then `fsync`s the log file (any descriptor of
//! the file will do: `fsync` works on the file, and asks the drive to empty its cache),
//! the blob files written since the last time, and the blobs directory. Every tree of a
//! node lives in the one store database, so every acknowledged write waits for this.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The files a flush makes durable.
struct Files {
    /// sled's log (`<store>/db`).
    log: File,
    /// sled's directory of large values.
    blobs: PathBuf,
    /// When the blobs were last made durable (a second's margin is taken off).
    blobs_synced: Mutex<SystemTime>,
}

impl Files {
    fn open(path: &Path) -> std::io::Result<Files> {
        Ok(Files {
            log: open_to_sync(&path.join("db"))?,
            blobs: path.join("blobs"),
            blobs_synced: Mutex::new(SystemTime::UNIX_EPOCH),
        })
    }

    fn sync(&self) -> std::io::Result<()> {
        self.log.sync_all()?;
        let mut synced = self
            .blobs_synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = SystemTime::now();
        let since = synced
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let Ok(entries) = std::fs::read_dir(&self.blobs) else {
            // No blob written yet.
            return Ok(());
        };
        let mut any = false;
        for entry in entries.flatten() {
            let new = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= since);
            if new {
                // A blob removed meanwhile (sled dropped it) needs nothing.
                if let Ok(file) = open_to_sync(&entry.path()) {
                    file.sync_all()?;
                    any = true;
                }
            }
        }
        if any {
            sync_directory(&self.blobs)?;
        }
        *synced = started;
        Ok(())
    }
}

/// Opens a file to `fsync` it: for writing too, since Windows flushes (`FlushFileBuffers`)
/// only through a handle that may write; nothing is written through it.
fn open_to_sync(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}

/// Makes a directory's entries durable (on Windows there is nothing to open a directory
/// with; its entries are the file system's own business there).
fn sync_directory(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(path)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

fn io(error: std::io::Error) -> sled::Error {
    sled::Error::Io(error)
}

/// A sled database whose [`Db::flush`] survives a power cut; everything else is sled's.
#[derive(Clone)]
pub struct Db {
    inner: sled::Db,
    files: Arc<Files>,
}

impl Db {
    /// Wraps `inner`, the database sled opened at `path`.
    pub fn new(inner: sled::Db, path: &Path) -> Result<Db, sled::Error> {
        Ok(Db {
            files: Arc::new(Files::open(path).map_err(io)?),
            inner,
        })
    }

    /// sled's flush, then the `fsync`s that make it survive a power cut.
    pub fn flush(&self) -> Result<usize, sled::Error> {
        let written = self.inner.flush()?;
        self.files.sync().map_err(io)?;
        Ok(written)
    }

    /// A tree of this database, whose `flush` is this one's.
    pub fn open_tree(&self, name: impl AsRef<[u8]>) -> Result<Tree, sled::Error> {
        Ok(Tree {
            inner: self.inner.open_tree(name)?,
            files: self.files.clone(),
        })
    }
}

impl std::ops::Deref for Db {
    type Target = sled::Db;

    fn deref(&self) -> &sled::Db {
        &self.inner
    }
}

/// A sled tree whose [`Tree::flush`] survives a power cut; everything else is sled's.
#[derive(Clone)]
pub struct Tree {
    inner: sled::Tree,
    files: Arc<Files>,
}

impl Tree {
    /// sled's flush, then the `fsync`s that make it survive a power cut.
    pub fn flush(&self) -> Result<usize, sled::Error> {
        let written = self.inner.flush()?;
        self.files.sync().map_err(io)?;
        Ok(written)
    }
}

impl std::ops::Deref for Tree {
    type Target = sled::Tree;

    fn deref(&self) -> &sled::Tree {
        &self.inner
    }
}
