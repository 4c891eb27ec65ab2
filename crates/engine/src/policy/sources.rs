//! Where policy files come from: the file system, or the copies built into the
//! binary (`policies/default.yaml` and the site catalogue) for the built-in default.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded_policies.rs"));

/// The path under which the built-in default policy is known.
pub const BUILTIN_POLICY: &str = "policies/default.yaml";

/// Reads policy files and expands `include` patterns.
pub trait PolicyFiles {
    fn read(&self, path: &str) -> Result<String, String>;
    /// Expands a glob into matching paths, sorted.
    fn expand(&self, pattern: &str) -> Result<Vec<String>, String>;
    /// Where a relative include is resolved from.
    fn join(&self, base_file: &str, relative: &str) -> String {
        if Path::new(relative).is_absolute() {
            return relative.to_string();
        }
        let dir = Path::new(base_file).parent().unwrap_or(Path::new(""));
        dir.join(relative).to_string_lossy().into_owned()
    }
}

/// Files on disk.
pub struct FsFiles;

impl PolicyFiles for FsFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }

    fn expand(&self, pattern: &str) -> Result<Vec<String>, String> {
        let paths = glob::glob(pattern).map_err(|e| e.to_string())?;
        let mut out: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        out.sort();
        Ok(out
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect())
    }
}

/// The files built into the binary.
pub struct EmbeddedFiles;

impl PolicyFiles for EmbeddedFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        let want = clean(path);
        EMBEDDED
            .iter()
            .find(|(p, _)| *p == want)
            .map(|(_, text)| (*text).to_string())
            .ok_or_else(|| format!("no built-in file `{path}`"))
    }

    fn expand(&self, pattern: &str) -> Result<Vec<String>, String> {
        let pat = glob::Pattern::new(&clean(pattern)).map_err(|e| e.to_string())?;
        Ok(EMBEDDED
            .iter()
            .filter(|(p, _)| pat.matches(p))
            .map(|(p, _)| (*p).to_string())
            .collect())
    }
}

/// Removes `./` and `dir/..` segments so embedded names compare equal (also
/// used by the fuzz harness's in-memory files, so both name files alike).
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}
