//! Files only this user may read: the data dir (0700), the node key, the API token and the
//! keystore (0600).

use std::io::Write as _;
use std::path::Path;

/// Creates `dir` (and missing parents) readable by this user only.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Writes `bytes` to `path` with mode 0600, durably and atomically (a temporary file renamed
/// into place), creating the directory (0700) when needed.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = write_tmp(path, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// [`write_file`], but fails with `AlreadyExists` (writing nothing) when `path` exists, even
/// when another process creates it at the same moment.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = write_tmp(path, bytes)?;
    // A hard link never replaces its target: the one atomic "create with these contents".
    let linked = std::fs::hard_link(&tmp, path);
    let removed = std::fs::remove_file(&tmp);
    linked?;
    removed?;
    sync_parent(path)
}

/// Writes `bytes` durably to a new file beside `path` (mode 0600, a random name created
/// exclusively, never through a symlink), creating the directory; returns its path.
fn write_tmp(path: &Path, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", hex::encode(suffix)));
    let tmp = std::path::PathBuf::from(tmp);
    let mut o = std::fs::OpenOptions::new();
    // create_new: O_EXCL, which also refuses a symlink planted at that name.
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp)?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Makes a rename or link in `path`'s directory survive a crash.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        #[cfg(unix)]
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
