//! Replays the committed fuzz corpora as regression inputs.
//!
//! Job: run every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`
//! through the matching `socialgate::fuzz_harness` function (the same one the
//! cargo-fuzz target in `fuzz/fuzz_targets/` calls), each under `catch_unwind`,
//! and fail naming every input that panicked. Every target must have a
//! non-empty corpus, and every corpus directory must name a known target.
//!
//! Limits: a stack overflow or an abort is not catchable and ends the test
//! binary (the input is then the last one named on stderr with
//! `--nocapture`). Inputs still crashing before their fix belong in
//! `fuzz/crashes-unfixed/`, which is not replayed. Fuzzing itself is in
//! `fuzz/README.md`.
//!
//! `socialgate::fuzz_harness` exists only with the `fuzzing` feature. The
//! root package dev-depends on itself with that feature, so every test build
//! (the README's plain `cargo test --locked` included) has it: this file
//! cannot be skipped for want of a flag, and without the feature it would not
//! compile rather than pass unseen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use socialgate::fuzz_harness;

type Harness = fn(&[u8]);

const TARGETS: &[(&str, Harness)] = &[
    ("policy_loader", fuzz_harness::policy_loader),
    ("settings_loader", fuzz_harness::settings_loader),
    ("request_decision", fuzz_harness::request_decision),
    ("dlp_extract", fuzz_harness::dlp_extract),
    ("dlp_normalize", fuzz_harness::dlp_normalize),
    ("dlp_charset", fuzz_harness::dlp_charset),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn harness_for(name: &str) -> Option<Harness> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// Files directly inside `dir`, sorted (hidden files such as `.gitkeep` skipped).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Runs every input of `root/<target>/`; returns (inputs run, failures).
fn replay(root: &Path, require_every_target: bool) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut run = 0;
    if !root.is_dir() {
        assert!(!require_every_target, "{} is missing", root.display());
        return (0, failures);
    }
    if require_every_target {
        for (name, _) in TARGETS {
            let dir = root.join(name);
            assert!(
                dir.is_dir() && !inputs(&dir).is_empty(),
                "the corpus of fuzz target `{name}` ({}) is missing or empty",
                dir.display()
            );
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(harness) = harness_for(&name) else {
            failures.push(format!(
                "{}: no fuzz target of that name (known: {:?})",
                dir.display(),
                TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>()
            ));
            continue;
        };
        for file in inputs(&dir) {
            let data = std::fs::read(&file).unwrap();
            eprintln!("replaying {}", file.display());
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| harness(&data))) {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_else(|| "(non-string panic payload)".to_string());
                failures.push(format!("{}: panicked: {message}", file.display()));
            }
            run += 1;
        }
    }
    (run, failures)
}

#[test]
fn corpora_replay_without_panics() {
    let (run, failures) = replay(&fuzz_dir().join("corpus"), true);
    assert!(run > 0, "no corpus inputs were replayed");
    assert!(
        failures.is_empty(),
        "{} of {run} corpus inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn regressions_replay_without_panics() {
    let (run, failures) = replay(&fuzz_dir().join("regressions"), false);
    assert!(
        failures.is_empty(),
        "{} of {run} regression inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
