//! Where segment files live: the real file system, or (in tests) a fault-injecting model of one.
//!
//! The store only appends to files, reads them at offsets, truncates a failed tail, syncs and
//! deletes whole files, so this is all the interface it needs.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A directory of numbered segment files.
pub(crate) trait Storage: Send + Sync {
    /// The ids of the segment files present, in no particular order.
    fn list(&self) -> io::Result<Vec<u32>>;
    /// Creates an empty segment file (failing if it exists).
    fn create(&self, id: u32) -> io::Result<Arc<dyn SegmentFile>>;
    /// Opens an existing segment file for reading and appending.
    fn open(&self, id: u32) -> io::Result<Arc<dyn SegmentFile>>;
    /// Deletes a segment file.
    fn remove(&self, id: u32) -> io::Result<()>;
    /// Makes creations and deletions durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// The path of a segment file, for error messages.
    fn path(&self, id: u32) -> PathBuf;
}

/// One segment file.
pub(crate) trait SegmentFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Truncates the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
pub(crate) fn read_exact_at(file: &dyn SegmentFile, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => done += n,
        }
    }
    Ok(())
}

/// Segment files `NNNNNNNN.seg` in a directory, guarded by an exclusive lock on `LOCK`.
pub(crate) struct FsStorage {
    dir: PathBuf,
    /// Held for the store's lifetime: the `flock` refuses a second opener, in this process or
    /// another, and is released by the kernel if the process dies.
    _lock: File,
}

impl FsStorage {
    /// Opens (creating if needed) `dir` and takes its lock.
    pub(crate) fn open(dir: &Path) -> Result<Self, OpenError> {
        fs::create_dir_all(dir).map_err(OpenError::Io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(OpenError::Io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(OpenError::Locked),
            Err(fs::TryLockError::Error(e)) => return Err(OpenError::Io(e)),
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }
}

/// Why [`FsStorage::open`] failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    Io(io::Error),
    Locked,
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<u32>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name
                .strip_suffix(".seg")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn create(&self, id: u32) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(id))?;
        Ok(Arc::new(FsFile(file)))
    }

    fn open(&self, id: u32) -> io::Result<Arc<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(id))?;
        Ok(Arc::new(FsFile(file)))
    }

    fn remove(&self, id: u32) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn path(&self, id: u32) -> PathBuf {
        self.dir.join(format!("{id:08x}.seg"))
    }
}

struct FsFile(File);

impl SegmentFile for FsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}
