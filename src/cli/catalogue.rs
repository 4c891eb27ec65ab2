//! `socialgate catalogue check FILE.har...`: decides every request of a HAR file (as
//! a browser's developer tools save it) the way the gateway would, and prints one
//! line per request (method, host, path, site, activity, decision), then the
//! requests on a listed site that no catalogue matcher named: the fallback `write`
//! (a non-GET nobody named, or one whose fields were ambiguous) and the fallback
//! `read` (a GET/HEAD/OPTIONS no `read` matcher named), grouped by endpoint
//! template (ids as `{id}`, by the rule of `cli::catalogue_report`). `--json`
//! prints the same as one object. `catalogue report` (audit logs) is in
//! `catalogue_report.rs`.
//!
//! Limits: each entry is rebuilt from the HAR's method, URL, headers (HTTP/2
//! pseudo-headers dropped) and `postData` (its `text`, else its `params` as a form);
//! bodies a browser left out of the HAR are missing here too. `ws://`/`wss://`
//! entries are decided as the WebSocket upgrades they were. Decided by the same
//! verdict code as `explain` and the policy tests (`verdict::evaluate_test_request`),
//! for `--user`/`--group` (default: a user with no groups, so most requests show
//! `deny` by the last rule: the site and activity are the point). Header values and
//! bodies are never printed. Exit 1 on a policy or file problem, 2 on bad input.
//! Called by `cli::main`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::catalogue_report::template;
use super::context;
use crate::policy::selftest::TestRequest;
use crate::policy::Policy;

#[derive(Subcommand, Debug)]
pub(super) enum CatalogueCommand {
    /// Decide every request of HAR files (saved from the browser's developer tools)
    /// and list those no catalogue matcher named.
    Check(CheckArgs),
    /// From audit logs (plain or gzip): per site, the mix of activities, the
    /// endpoints that fell to the fallback `write`, and the matchers that matched nothing.
    Report(super::catalogue_report::ReportArgs),
}

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    /// The policy (default: as `run` would choose).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The user to decide for (default: `catalogue-check`, with no groups).
    #[arg(long, default_value = "catalogue-check")]
    user: String,
    /// The user's groups.
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// HAR files.
    #[arg(required = true, value_name = "FILE.har")]
    files: Vec<PathBuf>,
}

pub(super) fn run(command: CatalogueCommand) -> ExitCode {
    match command {
        CatalogueCommand::Check(a) => check(a),
        CatalogueCommand::Report(a) => super::catalogue_report::run(a),
    }
}

/// One HAR entry, decided.
struct Row {
    file: String,
    entry: usize,
    method: String,
    host: String,
    path: String,
    site: String,
    activity: String,
    action: String,
    rule: String,
    /// The matcher that named the activity (`site/activity#N`), or empty.
    matched: String,
    /// `read` / `write` when the request is on a listed site and no matcher named it.
    fallback: Option<&'static str>,
}

impl Row {
    /// `Some("write" | "read")` when no catalogue matcher named the request.
    fn fallback(&self) -> Option<&'static str> {
        self.fallback
    }
}

fn check(a: CheckArgs) -> ExitCode {
    // A policy whose own tests fail still classifies (the failures are on
    // stderr): that is when one needs to see what a HAR would do.
    let (policy, _failing_tests) =
        match context::load_policy_for(a.policy.clone(), context::local_settings) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let mut rows = Vec::new();
    for file in &a.files {
        match decide_file(&policy, &a, file) {
            Ok(mut r) => rows.append(&mut r),
            Err((code, msg)) => {
                eprintln!("{msg}");
                return code;
            }
        }
    }
    let templates = fallback_templates(&rows);
    let api_hosts = api_path_hosts(&rows, &policy);
    if a.json {
        print_json(&rows, &templates, &api_hosts, &policy);
    } else {
        print_text(&rows, &templates, &policy);
        print_api_hosts(&api_hosts);
    }
    ExitCode::SUCCESS
}

fn decide_file(
    policy: &Policy,
    a: &CheckArgs,
    file: &PathBuf,
) -> Result<Vec<Row>, (ExitCode, String)> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| (ExitCode::from(1), format!("{name}: cannot read: {e}")))?;
    let har: Value = serde_json::from_str(&text).map_err(|e| {
        (
            ExitCode::from(1),
            format!(
                "{name}:{}:{}: not a HAR file (JSON): {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let entries = har
        .pointer("/log/entries")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            (
                ExitCode::from(1),
                format!("{name}: not a HAR file: no `log.entries` list (save it from the browser's Network tab with \"Save all as HAR\")"),
            )
        })?;
    let mut rows = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let req = entry.get("request").ok_or_else(|| {
            (
                ExitCode::from(2),
                format!("{name}: entry {}: no `request`", i + 1),
            )
        })?;
        let (line, headers, body, host, path) = rebuild(req)
            .map_err(|e| (ExitCode::from(2), format!("{name}: entry {}: {e}", i + 1)))?;
        let test = TestRequest::parse(&line, &headers, body)
            .map_err(|e| (ExitCode::from(2), format!("{name}: entry {}: {e}", i + 1)))?;
        let v = crate::verdict::evaluate_test_request(policy, &a.user, &a.groups, &test, None);
        let d = v.decision;
        let fallback = match d.matched {
            crate::policy::Matched::Fallback { .. } if d.activity == "read" => Some("read"),
            crate::policy::Matched::Fallback { .. } => Some("write"),
            _ => None,
        };
        rows.push(Row {
            matched: policy.matched_label(d.matched),
            fallback,
            file: name.clone(),
            entry: i + 1,
            method: line.split(' ').next().unwrap_or_default().to_string(),
            host,
            path,
            site: d.site,
            activity: d.activity,
            action: d.action.as_str().to_string(),
            rule: d.rule,
        });
    }
    Ok(rows)
}

type Rebuilt = (
    String,
    Vec<(String, String)>,
    Option<Vec<u8>>,
    String,
    String,
);

/// The `METHOD URL` line, headers and body of a HAR request, and its host and path.
fn rebuild(req: &Value) -> Result<Rebuilt, String> {
    let method = req
        .get("method")
        .and_then(Value::as_str)
        .ok_or("no `method`")?
        .to_ascii_uppercase();
    let mut url = req
        .get("url")
        .and_then(Value::as_str)
        .ok_or("no `url`")?
        .to_string();
    let mut headers = Vec::new();
    let mut websocket = false;
    if let Some(rest) = url.strip_prefix("wss://") {
        url = format!("https://{rest}");
        websocket = true;
    } else if let Some(rest) = url.strip_prefix("ws://") {
        url = format!("http://{rest}");
        websocket = true;
    }
    for h in req
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(k), Some(v)) = (
            h.get("name").and_then(Value::as_str),
            h.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        // HTTP/2 pseudo-headers, and what hyper would not send, are not headers here.
        if k.starts_with(':') || http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            continue;
        }
        if http::HeaderValue::from_str(v).is_err() {
            continue;
        }
        headers.push((k.to_ascii_lowercase(), v.to_string()));
    }
    if websocket && !headers.iter().any(|(k, _)| k == "upgrade") {
        for (k, v) in [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ] {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let body = req.get("postData").and_then(|pd| {
        if !headers.iter().any(|(k, _)| k == "content-type") {
            if let Some(m) = pd.get("mimeType").and_then(Value::as_str) {
                if !m.is_empty() {
                    headers.push(("content-type".to_string(), m.to_string()));
                }
            }
        }
        if let Some(t) = pd.get("text").and_then(Value::as_str) {
            return Some(t.as_bytes().to_vec());
        }
        let params = pd.get("params").and_then(Value::as_array)?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for p in params {
            let n = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let v = p.get("value").and_then(Value::as_str).unwrap_or_default();
            form.append_pair(n, v);
        }
        Some(form.finish().into_bytes())
    });
    let parsed = url::Url::parse(&url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let path = parsed.path().to_string();
    Ok((format!("{method} {url}"), headers, body, host, path))
}

/// (host, site) -> count: requests to hosts of no site on a site's `api_paths`
/// (a Mastodon instance or Bluesky PDS not in `domains`).
type ApiHosts = BTreeMap<(String, String), usize>;

fn api_path_hosts(rows: &[Row], policy: &Policy) -> ApiHosts {
    let mut out = ApiHosts::new();
    for r in rows.iter().filter(|r| r.site == "unlisted") {
        if let Some(site) = policy.site_by_api_path(&r.path) {
            *out.entry((r.host.clone(), site.name.clone())).or_default() += 1;
        }
    }
    out
}

fn print_api_hosts(hosts: &ApiHosts) {
    if hosts.is_empty() {
        return;
    }
    println!();
    println!("hosts of no site that use a site's API paths (add them to that site's `domains` to govern them over HTTPS):");
    for ((host, site), n) in hosts {
        println!("  {host}  looks like {site}  ({n} request(s))");
    }
}

/// (site, kind, method, host, template) -> count, for the fallback requests.
type Templates = BTreeMap<(String, &'static str, String, String, String), usize>;

fn fallback_templates(rows: &[Row]) -> Templates {
    let mut out = Templates::new();
    for r in rows {
        if let Some(kind) = r.fallback() {
            *out.entry((
                r.site.clone(),
                kind,
                r.method.clone(),
                r.host.clone(),
                template(&r.path),
            ))
            .or_default() += 1;
        }
    }
    out
}

fn print_text(rows: &[Row], templates: &Templates, policy: &Policy) {
    let w_method = rows
        .iter()
        .map(|r| r.method.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let w_host = rows.iter().map(|r| r.host.len()).max().unwrap_or(4).max(4);
    let w_site = rows.iter().map(|r| r.site.len()).max().unwrap_or(4).max(4);
    let w_act = rows
        .iter()
        .map(|r| r.activity.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let decision = |r: &Row| format!("{} ({})", r.action, r.rule);
    let w_dec = rows
        .iter()
        .map(|r| decision(r).len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:>4}  {:<w_method$}  {:<w_host$}  {:<w_site$}  {:<w_act$}  {:<w_dec$}  PATH",
        "#", "METHOD", "HOST", "SITE", "ACTIVITY", "DECISION"
    );
    let mut last_file = "";
    for r in rows {
        if r.file != last_file {
            println!("-- {}", r.file);
            last_file = &r.file;
        }
        println!(
            "{:>4}  {:<w_method$}  {:<w_host$}  {:<w_site$}  {:<w_act$}  {:<w_dec$}  {}",
            r.entry,
            r.method,
            r.host,
            r.site,
            r.activity,
            decision(r),
            r.path
        );
    }
    let mut per_site: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in rows {
        *per_site.entry((&r.site, &r.activity)).or_default() += 1;
    }
    println!();
    println!("requests by site and activity:");
    for ((site, activity), n) in &per_site {
        println!("  {site:<w_site$}  {activity:<w_act$}  {n}");
    }
    println!();
    if templates.is_empty() {
        println!("no request on a listed site fell to the fallback read/write");
    } else {
        println!("named by no catalogue matcher (fallback), by endpoint:");
        for ((site, kind, method, host, tpl), n) in templates {
            println!("  {site:<w_site$}  {kind:<5}  {n:>4}  {method} {host}{tpl}");
        }
    }
    println!(
        "{} request(s); policy {} (version {})",
        rows.len(),
        policy.source,
        policy.version
    );
}

fn print_json(rows: &[Row], templates: &Templates, api_hosts: &ApiHosts, policy: &Policy) {
    let requests: Vec<Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "file": r.file,
                "entry": r.entry,
                "method": r.method,
                "host": r.host,
                "path": r.path,
                "site": r.site,
                "activity": r.activity,
                "action": r.action,
                "rule": r.rule,
                "matched": r.matched,
                "fallback": r.fallback(),
            })
        })
        .collect();
    let fallback: Vec<Value> = templates
        .iter()
        .map(|((site, kind, method, host, tpl), n)| {
            serde_json::json!({
                "site": site,
                "kind": kind,
                "method": method,
                "host": host,
                "template": tpl,
                "count": n,
            })
        })
        .collect();
    let out = serde_json::json!({
        "policy": { "source": policy.source, "version": policy.version },
        "requests": requests,
        "fallback": fallback,
        "api_path_hosts": api_hosts.iter().map(|((host, site), n)| serde_json::json!({
            "host": host, "looks_like": site, "count": n,
        })).collect::<Vec<_>>(),
    });
    println!("{out}");
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn templates_replace_ids() {
        assert_eq!(
            template("/2/users/1072250532645998596/likes"),
            "/2/users/{id}/likes"
        );
        assert_eq!(
            template("/i/api/graphql/SoVnbfCycZ7fERGCwpZkYA1/CreateTweet"),
            "/i/api/graphql/{id}/CreateTweet"
        );
        assert_eq!(template("/api/submit/"), "/api/submit/");
        assert_eq!(template("/2/tweets/1456012973835788293"), "/2/tweets/{id}");
    }
}
