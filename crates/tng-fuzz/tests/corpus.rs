//! Replays the checked-in fuzz corpus and every saved crash input through the fuzz entry
//! points, so `cargo test` catches a decoder regression on a machine without a fuzzer.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The regular files of `dir`, sorted; none when the directory does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8]), dir: &Path) -> usize {
    let inputs = files(dir);
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
    inputs.len()
}

#[test]
fn every_target_has_a_corpus_and_survives_it() {
    let root = fuzz_dir();
    let mut empty = Vec::new();
    for (target, run) in tng_fuzz::TARGETS {
        let seeds = replay(target, run, &root.join("corpus").join(target));
        replay(target, run, &root.join("regressions").join(target));
        if seeds == 0 {
            empty.push(target);
        }
    }
    assert!(
        empty.is_empty(),
        "no corpus files for {empty:?} under {}",
        root.join("corpus").display()
    );
}

/// Every corpus or regression directory belongs to a target, so a renamed target cannot
/// silently stop being replayed.
#[test]
fn no_directory_without_a_target() {
    let root = fuzz_dir();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                tng_fuzz::TARGETS.iter().any(|(target, _)| *target == name),
                "{kind}/{name} matches no fuzz target"
            );
        }
    }
}

/// The seed recorder is itself a round trip of the multiplexed framing: every stream echoes
/// byte-exact, a `GET` gets `400` (asserted inside), and each session leaves frames both ways.
#[test]
fn connect_stream_sessions_round_trip() {
    let sessions = tng_fuzz::connect_stream::recorded_sessions();
    assert_eq!(sessions.len(), 4);
    for session in &sessions {
        // Both sides speak first: the client preface and the server's SETTINGS.
        assert!(
            session
                .to_egress
                .starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            "{}",
            session.name
        );
        assert!(!session.to_ingress.is_empty(), "{}", session.name);
        tng_fuzz::connect_stream(
            &[
                &[0, 0, u8::from(session.refused) * 2][..],
                &session.to_egress,
            ]
            .concat(),
        );
        tng_fuzz::connect_stream(&[&[0, 0, 1][..], &session.to_ingress].concat());
    }
}
