//! Whole-file writes that either happen completely or not at all.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Fails unless `path` can be written as a file: its folder exists and it is not a folder
/// itself. Commands call it before long work, so a mistyped `-o` costs nothing.
pub fn check_destination(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::file(path, "is a folder; give the path of the file to write"));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::file(path, format!("the folder {} does not exist", dir.display())));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    check_destination(path)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| Error::file(path, "is not a file path"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::file(path, format!("cannot write: {e}"))
    })
}

/// Whether `name` is one of `write_atomic`'s temporary names: `.<file>.tmp-<pid>`.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.rsplit_once(".tmp-").is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the temporary files that writers killed mid-write (`kill -9`, power loss) left in
/// `dir`; the files they were replacing are intact. Only call where no other process writes.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_str().is_some_and(is_temporary) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporaries_are_removed() {
        let dir = std::env::temp_dir().join(format!("fovea-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [".last.safetensors.tmp-123", "last.safetensors", ".hidden", "notes.tmp-1", ".x.tmp-", ".y.tmp-12a"] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        write_atomic(&dir.join("last.safetensors"), b"new").unwrap();
        remove_stale_temporaries(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [".hidden", ".x.tmp-", ".y.tmp-12a", "last.safetensors", "notes.tmp-1"]);
        assert_eq!(std::fs::read(dir.join("last.safetensors")).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_destination_in_a_missing_folder_or_on_a_folder_is_named() {
        let dir = std::env::temp_dir().join(format!("fovea-destination-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("no-such-folder").join("out.png");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(e.contains("no-such-folder") && e.contains("does not exist"), "{e}");
        let e = write_atomic(&dir, b"x").unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        assert!(check_destination(&dir.join("fine.png")).is_ok());
        assert!(!dir.join("no-such-folder").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
