//! What the example servers started by scripts share: hand-off files and
//! command-line values.
//!
//! Job: write a file a script polls for (the CA certificate, the bound ports)
//! so that it never reads it half written, read `--flag value` pairs, split a
//! `--names a,b` value, and exit 2 on bad arguments.
//!
//! Limits: `write_atomic` writes a sibling `<path>.tmp` and renames it, so the
//! directory must be writable; it panics, naming the file, when it cannot.
//!
//! Callers: `examples/bench_upstream.rs` and `examples/connect_shim.rs`
//! (`scripts/bench/run.sh`), `examples/e2e_upstream.rs` (`tests/e2e/browser.sh`).

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

/// The program's arguments as `(--flag, value)` pairs, in order. `--help` or
/// `-h` anywhere, or a flag without a value, is an error carrying `usage`.
pub fn flag_values(usage: &str) -> Result<Vec<(String, String)>, String> {
    pairs(std::env::args().skip(1), usage)
}

fn pairs(args: impl Iterator<Item = String>, usage: &str) -> Result<Vec<(String, String)>, String> {
    let mut it = args;
    let mut out = Vec::new();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage.to_string());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
        out.push((flag, value));
    }
    Ok(out)
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
    fn flags_pair_with_their_values_and_help_or_a_missing_value_is_an_error() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pairs(args(&["--a", "1", "--b", "x"]).into_iter(), "U").unwrap(),
            [
                ("--a".to_string(), "1".to_string()),
                ("--b".into(), "x".into())
            ]
        );
        assert_eq!(
            pairs(args(&["--a", "1", "-h"]).into_iter(), "U"),
            Err("U".into())
        );
        assert_eq!(
            pairs(args(&["--a"]).into_iter(), "U"),
            Err("--a needs a value\nU".into())
        );
    }

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
