//! Which build runs: `socialgate --version` names the version, the commit and
//! the build day, and the admin `/metrics` exports `socialgate_build_info` with
//! the same version and commit, so an operator can tell replicas' builds apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_socialgate");

/// The commit this checkout is at, as the build script records it (None outside git).
fn head_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

#[test]
fn version_names_the_commit_and_the_build_day() {
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.trim();
    let rest = line
        .strip_prefix(concat!(
            "socialgate ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .unwrap_or_else(|| panic!("unexpected --version output: {line}"));
    let (commit, built) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once(", built "))
        .unwrap_or_else(|| panic!("unexpected --version output: {line}"));
    assert!(
        built.len() == 10 && chrono::NaiveDate::parse_from_str(built, "%Y-%m-%d").is_ok(),
        "{line}"
    );
    match head_commit() {
        // The binary may be a commit behind a dirty tree, never another commit.
        Some(head) => assert_eq!(commit, head, "{line}"),
        None => assert!(!commit.is_empty(), "{line}"),
    }
}

#[tokio::test]
async fn metrics_export_the_build() {
    let fx = Fixture::new();
    let gw = gateway(
        &fx,
        "admin_listen: 127.0.0.1:0\n",
        socialgate_testkit::gateway::IDENTITY_POLICY,
    )
    .await;
    let text = admin_metrics(&gw).await;
    let line = text
        .lines()
        .find(|l| l.starts_with("socialgate_build_info{"))
        .unwrap_or_else(|| panic!("no socialgate_build_info in:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(
        line.contains(concat!("version=\"", env!("CARGO_PKG_VERSION"), "\"")),
        "{line}"
    );
    if let Some(head) = head_commit() {
        assert!(line.contains(&format!("commit=\"{head}\"")), "{line}");
    }
}
