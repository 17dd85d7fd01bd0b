//! Overwrite-then-delete for the files of a destroyed project.
//!
//! On journalling, copy-on-write or flash storage an overwrite may land in fresh blocks and leave
//! the old ones behind, so overwriting is a second line only. The first line is crypto-shredding:
//! everything secret of a project (the pseudonym map, the key itself) is stored encrypted, and
//! destroying the key makes any surviving copy unreadable.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::{PseudoError, io_error};

/// What a shred removed: counts for the audit log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shredded {
    pub files: u64,
    pub bytes: u64,
}

/// Overwrites a file with zeros, flushes it to disk and deletes it.
pub fn shred_file(path: &Path) -> Result<Shredded, PseudoError> {
    let len = fs::symlink_metadata(path).map_err(io_error(path))?.len();
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    let zeros = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n]).map_err(io_error(path))?;
        left -= n as u64;
    }
    file.sync_all().map_err(io_error(path))?;
    drop(file);
    fs::remove_file(path).map_err(io_error(path))?;
    Ok(Shredded {
        files: 1,
        bytes: len,
    })
}

/// Shreds every file under a directory (or a single file) and removes the directories.
/// Symbolic links are removed, never followed.
pub fn shred_tree(path: &Path) -> Result<Shredded, PseudoError> {
    let meta = fs::symlink_metadata(path).map_err(io_error(path))?;
    if meta.file_type().is_symlink() {
        fs::remove_file(path).map_err(io_error(path))?;
        return Ok(Shredded::default());
    }
    if !meta.is_dir() {
        return shred_file(path);
    }
    let mut total = Shredded::default();
    for entry in fs::read_dir(path).map_err(io_error(path))? {
        let done = shred_tree(&entry.map_err(io_error(path))?.path())?;
        total.files += done.files;
        total.bytes += done.bytes;
    }
    fs::remove_dir(path).map_err(io_error(path))?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_removed_with_its_counts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        fs::create_dir_all(root.join("extracts/one")).unwrap();
        fs::write(root.join("extracts/one/a.parquet"), vec![1u8; 100_000]).unwrap();
        fs::write(root.join("pseudonyms.map"), b"secret").unwrap();
        let outside = dir.path().join("outside.txt");
        fs::write(&outside, b"keep").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

        let done = shred_tree(&root).unwrap();
        assert_eq!(
            done,
            Shredded {
                files: 2,
                bytes: 100_006
            }
        );
        assert!(!root.exists());
        assert_eq!(
            fs::read(&outside).unwrap(),
            b"keep",
            "links are not followed"
        );
    }
}
