//! What the example servers started by scripts share: hand-off files and
//! command-line values.
//!
//! Job: write a file a script polls for (the CA certificate, the bound ports)
//! so that it never reads it half written, split a `--names a,b` value, and
//! exit 2 on bad arguments.
//!
//! Limits: `write_atomic` writes a sibling `<path>.tmp` and renames it, so the
//! directory must be writable; it panics, naming the file, when it cannot.
//!
//! Callers: `examples/bench_upstream.rs` (`scripts/bench/run.sh`) and
//! `examples/e2e_upstream.rs` (`tests/e2e/browser.sh`).

/// Writes `text` to `path` atomically (write a sibling, then rename), so a script
/// polling for the file never reads it half written.
pub fn write_atomic(path: &str, text: &str) {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {tmp}: {e}"));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("renaming {tmp} to {path}: {e}"));
}

/// The parsed arguments; or, for an error, `<program>: <error>` on stderr and
/// exit status 2.
pub fn args_or_exit<T>(program: &str, parsed: Result<T, String>) -> T {
    match parsed {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::exit(2);
        }
    }
}

/// The names of a comma-separated list, trimmed, empty ones left out.
pub fn split_names(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_empty_ones_dropped() {
        assert_eq!(split_names(" a.test, ,b.test,"), ["a.test", "b.test"]);
        assert!(split_names(",").is_empty());
    }

    #[test]
    fn write_atomic_leaves_no_sibling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("port").display().to_string();
        write_atomic(&path, "1234\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1234\n");
        assert!(!std::path::Path::new(&format!("{path}.tmp")).exists());
    }
}
