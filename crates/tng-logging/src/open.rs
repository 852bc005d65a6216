//! Opening the log files at start-up, so that a path that cannot be written is an error
//! before anything else happens.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use crate::error::LogError;
use crate::settings::{FileSpec, Rolling};
use crate::writer::{Output, Target};

/// Opens (creating it if missing) the file of `spec` for appending. A path that exists and is
/// not a regular file (`/dev/null`, a terminal, a FIFO) is written as it is, never rotated: the
/// warning says so. A FIFO is opened by the writer thread, because opening one waits for a
/// reader.
pub(crate) fn open(
    spec: &FileSpec,
    rolling: Option<Rolling>,
    warnings: &mut Vec<String>,
) -> Result<Output, LogError> {
    let path = &spec.path;
    let existing = std::fs::metadata(path).ok();
    let mut rolling = rolling;
    if let Some(meta) = &existing {
        if !meta.is_file() && !meta.is_dir() && rolling.is_some() {
            warnings.push(format!(
                "--log-rolling ignored for {}: not a regular file; appending to it without rotation",
                path.display()
            ));
            rolling = None;
        }
        if meta.file_type().is_fifo() {
            return Ok(Output {
                target: Target::Unopened {
                    path: path.clone(),
                    create: false,
                },
                path: Some(path.clone()),
                size: 0,
                rolling,
            });
        }
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|cause| LogError::Open {
            origin: spec.origin,
            path: path.clone(),
            cause,
        })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Output {
        target: Target::File(file),
        path: Some(path.clone()),
        size,
        rolling,
    })
}

/// Refuses a main and an error file that are one regular file: two writers rotating one
/// file would lose lines.
pub(crate) fn check_distinct(
    main: Option<(&FileSpec, &Output)>,
    error: Option<(&FileSpec, &Output)>,
) -> Result<(), LogError> {
    let (Some((main_spec, main)), Some((error_spec, error))) = (main, error) else {
        return Ok(());
    };
    let identity = |out: &Output| match &out.target {
        Target::File(file) => file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino())),
        _ => None,
    };
    match (identity(main), identity(error)) {
        (Some(a), Some(b)) if a == b => Err(LogError::SameFile {
            origin: error_spec.origin,
            other: main_spec.origin,
            path: error_spec.path.clone(),
        }),
        _ => Ok(()),
    }
}
