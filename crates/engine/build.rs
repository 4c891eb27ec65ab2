//! Embeds `policies/default.yaml` and the site catalogue into the binary, so the
//! gateway runs on its built-in policy when no policy file is at hand.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // The policies live at the top of the repository, two levels above this crate.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest).join("../..");
    println!("cargo:rerun-if-changed={}", root.join("policies").display());
    let mut files = Vec::new();
    collect(&root, Path::new("policies"), &mut files);
    files.sort();
    let mut out = String::from("/// Built-in policy files: (path relative to the repository, contents).\npub static EMBEDDED: &[(&str, &str)] = &[\n");
    for rel in files {
        let abs = root.join(&rel);
        let _ = writeln!(
            out,
            "    ({:?}, include_str!({:?})),",
            rel.to_string_lossy().replace('\\', "/"),
            abs.to_string_lossy()
        );
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("embedded_policies.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
    }
}

fn collect(root: &Path, rel: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = rel.join(entry.file_name());
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &name, files);
        } else if name.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(name);
        }
    }
}
