//! Debian-style rotation: `FILE` → `FILE.1` (newest) … `FILE.N` (oldest); what would become
//! `FILE.N+1` is overwritten by the rename, so exactly N backups remain.

use std::io;
use std::path::{Path, PathBuf};

/// `FILE.n`.
pub(crate) fn backup_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts the backups up by one and moves `path` to `path.1`. A missing backup is not an
/// error (the first rotations have fewer). The caller opens a fresh `path` afterwards.
pub(crate) fn rotate(path: &Path, max_backups: u32) -> io::Result<()> {
    for n in (1..max_backups).rev() {
        match std::fs::rename(backup_path(path, n), backup_path(path, n + 1)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    std::fs::rename(path, backup_path(path, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_exactly_n_backups() {
        let dir = std::env::temp_dir().join(format!("tng-logging-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
        for generation in 0..6 {
            std::fs::write(&path, format!("{generation}")).unwrap();
            rotate(&path, 3).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a.log.1", "a.log.2", "a.log.3"]);
        for (n, generation) in [(1, "5"), (2, "4"), (3, "3")] {
            assert_eq!(
                std::fs::read_to_string(backup_path(&path, n)).unwrap(),
                generation
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
