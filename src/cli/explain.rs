//! `socialgate explain`: shows how one request would be decided, and why
//! (rule, site, activity, roles, account, dry runs, DLP findings), as text or JSON.
//!
//! Limits: the request is built from the command line (`METHOD URL`,
//! `--header`, `--body`/`--body-file`) and decided by the same verdict code as
//! the proxy and the policy tests (`verdict::evaluate_test_request`); the
//! user's groups come from `--group`, else from the settings' sources. A
//! policy whose own tests fail is still explained (the failures on stderr and
//! a `tests:` line). Exit 1 on a policy or file problem, 2 on bad input. Called by `cli::main`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::context;
use crate::identity::ldap::list_or_none;
use crate::policy::selftest::TestRequest;
use crate::settings::Settings;

#[derive(Args, Debug)]
pub(super) struct ExplainArgs {
    /// The policy (default: as `run` would choose).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[arg(long)]
    user: String,
    /// The user's groups. When none is given and --settings names a settings
    /// file, they come from its group_members and directory instead.
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// A settings file: its policy (unless --policy) and, without --group,
    /// the user's groups from group_members and the directory.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// The time to decide at (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    #[arg(long = "header", value_name = "'K: V'")]
    headers: Vec<String>,
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    #[arg(long, value_name = "F")]
    body_file: Option<PathBuf>,
    /// The signed-in social account's id (as the site's session shows it), or
    /// `unknown`; default: read from the --header lines by the site's `account:`.
    #[arg(long, value_name = "ID")]
    account: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    method: String,
    url: String,
}

pub(super) fn run(mut a: ExplainArgs) -> ExitCode {
    let settings = match &a.settings {
        None => None,
        Some(path) => match Settings::load(path) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        },
    };
    // Groups given on the command line win; else the settings' sources say.
    if a.groups.is_empty() {
        if let Some(s) = &settings {
            a.groups = context::configured_groups(s, &a.user);
        }
    }
    let (policy, failing_tests) = match context::load_policy_for(a.policy, || {
        settings.unwrap_or_else(context::local_settings)
    }) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let at = match &a.at {
        None => Some(chrono::Utc::now()),
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                eprintln!(
                    "socialgate: --at {s} is not an RFC 3339 time such as 2026-07-01T12:30:00Z"
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut headers = Vec::new();
    for h in &a.headers {
        match h.split_once(':') {
            Some((k, v)) => headers.push((k.trim().to_string(), v.trim().to_string())),
            None => {
                eprintln!("socialgate: --header '{h}' is not 'Name: value'");
                return ExitCode::from(2);
            }
        }
    }
    let body = match (a.body, a.body_file) {
        (Some(b), _) => Some(b.into_bytes()),
        (None, Some(f)) => match std::fs::read(&f) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("socialgate: cannot read {}: {e}", f.display());
                return ExitCode::from(1);
            }
        },
        (None, None) => None,
    };
    let line = format!("{} {}", a.method, a.url);
    let req = match TestRequest::parse(&line, &headers, body) {
        Ok(mut r) => {
            r.account = a.account.clone();
            r
        }
        Err(e) => {
            eprintln!("socialgate: {e}");
            return ExitCode::from(2);
        }
    };
    let verdict = crate::verdict::evaluate_test_request(&policy, &a.user, &a.groups, &req, at);
    let d = &verdict.decision;
    let title = policy.site_named(&d.site).and_then(|s| s.title.as_deref());
    if a.json {
        let out = serde_json::json!({
            "action": d.action.as_str(),
            "rule": d.rule,
            "site": d.site,
            "title": title,
            "activity": d.activity,
            "reason": d.reason,
            "roles": d.roles,
            "account": d.account.audit(),
            "dry_run": d.dry_run,
            "dlp": verdict.findings,
            "failing_tests": failing_tests,
        });
        println!("{out}");
    } else {
        println!("action:   {}", d.action.as_str());
        println!("rule:     {}", d.rule);
        println!("site:     {}", d.site);
        if let Some(title) = title {
            println!("title:    {title}");
        }
        println!("activity: {}", d.activity);
        println!("roles:    {}", list_or_none(&d.roles));
        println!("account:  {}", d.account.audit());
        for dr in &d.dry_run {
            println!("dry run:  would {} by {}", dr.action, dr.rule);
        }
        for f in &verdict.findings {
            println!(
                "dlp:      {} x{} ({}), {}",
                f.detector, f.count, f.sample, f.on_finding
            );
        }
        println!("why:      {}", d.reason);
        println!("policy:   {} (version {})", policy.source, policy.version);
        if failing_tests > 0 {
            println!(
                "tests:    {failing_tests} of {} of the policy's own tests FAIL (see stderr); `run` would refuse this policy",
                policy.tests.len()
            );
        }
    }
    ExitCode::SUCCESS
}
