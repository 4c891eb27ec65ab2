//! `socialgate scan`: runs DLP detectors over a text or a raw request body
//! (a file or stdin), as the proxy would scan a request body.
//!
//! Limits: every built-in detector unless `--profile` names one of the
//! policy's DLP profiles; the proxy's default decoded-size cap applies. Exit 0
//! when clean, 3 when something was found, 1 on a problem. Called by
//! `cli::main`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::context;
use crate::dlp::{ScanInput, ScanLimits, Scanner};

#[derive(Args, Debug)]
pub(super) struct ScanArgs {
    /// A policy whose profile to use (default: as `run` would choose).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A DLP profile of the policy; without one, every built-in detector.
    #[arg(long, value_name = "P")]
    profile: Option<String>,
    #[arg(long, value_name = "T")]
    content_type: Option<String>,
    #[arg(long, value_name = "E")]
    content_encoding: Option<String>,
    #[arg(long)]
    json: bool,
    /// The file to scan; stdin when absent.
    file: Option<PathBuf>,
}

/// The scanner of `profile`, or every built-in detector without one.
fn scanner_for(policy: Option<PathBuf>, profile: Option<&str>) -> Result<Arc<Scanner>, ExitCode> {
    let Some(name) = profile else {
        return Ok(Arc::new(Scanner::all_builtins()));
    };
    let (policy, _failing_tests) = context::load_policy_for(policy, context::local_settings)?;
    match policy
        .dlp
        .profiles
        .get(name)
        .and_then(|p| p.scanner.clone())
    {
        Some(s) => Ok(s),
        None => {
            let known: Vec<&str> = policy.dlp.profiles.keys().map(String::as_str).collect();
            eprintln!(
                "socialgate: the policy has no DLP profile `{name}` (it has: {})",
                known.join(", ")
            );
            Err(ExitCode::from(1))
        }
    }
}

pub(super) fn run(a: ScanArgs) -> ExitCode {
    let scanner = match scanner_for(a.policy, a.profile.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut body = Vec::new();
    let read = match &a.file {
        Some(f) => std::fs::read(f).map(|b| body = b),
        None => std::io::stdin().read_to_end(&mut body).map(|_| ()),
    };
    if let Err(e) = read {
        eprintln!("socialgate: cannot read the input: {e}");
        return ExitCode::from(1);
    }
    let input = ScanInput {
        content_type: a.content_type.as_deref(),
        content_encoding: a.content_encoding.as_deref(),
        body: &body,
        query: None,
    };
    let findings = match scanner.scan_request(&input, &ScanLimits::default()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("socialgate: the input cannot be scanned: {e}");
            return ExitCode::from(1);
        }
    };
    if a.json {
        let list: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| serde_json::json!({"detector": f.detector, "count": f.count, "sample": f.sample}))
            .collect();
        println!("{}", serde_json::json!({ "findings": list }));
    } else if findings.is_empty() {
        println!("no findings");
    } else {
        for f in &findings {
            println!("{}\t{}\t{}", f.detector, f.count, f.sample);
        }
    }
    if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}
