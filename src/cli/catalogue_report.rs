//! `socialgate catalogue report [--policy P] [--json] AUDIT_FILE...`: what the
//! site catalogue did with real traffic over the period of some audit logs. Per
//! listed site: the mix of activities, the endpoint templates that fell to the
//! fallback `write` (so a matcher can be written for them), and the catalogue
//! matchers that matched nothing in the period although their site had traffic
//! (a site that changed its web app: see the drift section of docs/catalogue.md).
//!
//! Input: audit files as the gateway writes them (JSON lines), plain or gzip
//! (told by the magic bytes, not the name, so rotated `audit.jsonl.1` files work),
//! `-` for stdin. Each line needs `site` and `activity`; `method`, `host`,
//! `path`, `matched`, `rule` and `ts` are read when present (records written
//! before the `matched` field existed count their activities but match no
//! matcher). Records refused before classification (`request-refused`), of
//! unlisted hosts and tunnels (`connect`) are counted in `records` only.
//!
//! Endpoint templates ([`template`]): a path segment becomes `{id}` when it is
//! (1) all digits and at least 4 long (so `/2/` and `/v1` stay), (2) at least 8
//! hex digits with a digit among them, or (3) at least 12 letters, digits, `-`
//! or `_` holding at least one digit and one letter (base62/base64url ids,
//! GraphQL query ids, UUIDs, Bluesky record keys). A `.ext` suffix is kept
//! (`{id}.json`). Templates never show the ids themselves.
//!
//! Limits: the period is what the files hold; the policy is the one given (the
//! matchers are those of this policy, by their `site/activity#N` label, so a
//! policy changed since the period may list renumbered matchers). Reads its own
//! files (a small reader; `replay` has its own). Exit 1 on a file or policy
//! problem, naming `FILE:LINE`. Called by `cli::catalogue`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};

use super::context;
use crate::policy::Policy;

#[derive(Args, Debug)]
pub(super) struct ReportArgs {
    /// The policy whose catalogue is reported on (default: as `run` would choose).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Audit log files (plain or gzip); `-` reads stdin.
    #[arg(required = true, value_name = "AUDIT_FILE")]
    files: Vec<PathBuf>,
}

/// The fields of an audit record the report reads.
#[derive(Deserialize)]
struct Line {
    site: String,
    activity: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    matched: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    ts: String,
}

/// What one listed site saw in the period.
#[derive(Default)]
struct SiteReport {
    requests: usize,
    activities: BTreeMap<String, usize>,
    /// (method, host, template) -> count, of fallback `write` requests.
    fallback_write: BTreeMap<(String, String, String), usize>,
    /// `site/activity#N` labels seen.
    matched: BTreeSet<String>,
}

#[derive(Default)]
struct Totals {
    records: usize,
    from: Option<String>,
    to: Option<String>,
    sites: BTreeMap<String, SiteReport>,
}

pub(super) fn run(a: ReportArgs) -> ExitCode {
    let (policy, _failing_tests) =
        match context::load_policy_for(a.policy.clone(), context::local_settings) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let mut totals = Totals::default();
    for file in &a.files {
        if let Err(msg) = read_file(file, &mut totals) {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    }
    let out = report(&policy, &totals);
    if a.json {
        println!("{out}");
    } else {
        print_text(&out);
    }
    ExitCode::SUCCESS
}

/// The file, or stdin for `-`, with gzip undone when it starts with gzip's magic bytes.
fn open(file: &PathBuf) -> Result<Box<dyn BufRead>, String> {
    let name = file.display().to_string();
    let raw: Box<dyn Read> = if name == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).map_err(|e| format!("{name}: cannot read: {e}"))?)
    };
    let mut reader = std::io::BufReader::new(raw);
    let head = reader
        .fill_buf()
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(std::io::BufReader::new(
            flate2::bufread::MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

fn read_file(file: &PathBuf, totals: &mut Totals) -> Result<(), String> {
    let name = file.display().to_string();
    let reader = open(file)?;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{name}:{}: cannot read: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Line = serde_json::from_str(&line).map_err(|e| {
            format!(
                "{name}:{}:{}: not an audit record (one JSON object per line with `site` and `activity`): {e}",
                i + 1,
                e.column()
            )
        })?;
        add(totals, rec);
    }
    Ok(())
}

fn add(totals: &mut Totals, rec: Line) {
    totals.records += 1;
    if !rec.ts.is_empty() {
        if totals.from.as_ref().is_none_or(|f| rec.ts < *f) {
            totals.from = Some(rec.ts.clone());
        }
        if totals.to.as_ref().is_none_or(|t| rec.ts > *t) {
            totals.to = Some(rec.ts.clone());
        }
    }
    let classified = !rec.activity.is_empty()
        && rec.activity != "connect"
        && rec.site != "unlisted"
        && rec.rule != crate::verdict::REQUEST_REFUSED;
    if !classified {
        return;
    }
    let site = totals.sites.entry(rec.site).or_default();
    site.requests += 1;
    *site.activities.entry(rec.activity.clone()).or_default() += 1;
    if rec.activity == "write" && rec.matched.is_empty() {
        *site
            .fallback_write
            .entry((rec.method, rec.host, template(&rec.path)))
            .or_default() += 1;
    }
    if !rec.matched.is_empty() {
        site.matched.insert(rec.matched);
    }
}

/// The report as JSON (the text output is printed from it too).
fn report(policy: &Policy, totals: &Totals) -> Value {
    let mut sites = Vec::new();
    for (name, s) in &totals.sites {
        let mut unmatched = Vec::new();
        if let Some(site) = policy.site_named(name) {
            for (activity, matchers) in &site.activities {
                for i in 0..matchers.len() {
                    let label = format!("{}/{}#{}", name, policy.activity_name(*activity), i);
                    if !s.matched.contains(&label) {
                        unmatched.push(label);
                    }
                }
            }
        }
        let mut fallback: Vec<(&(String, String, String), &usize)> =
            s.fallback_write.iter().collect();
        // Most frequent first, then by endpoint.
        fallback.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        sites.push(json!({
            "site": name,
            "listed": policy.site_named(name).is_some(),
            "requests": s.requests,
            "activities": s.activities,
            "fallback_write": fallback.iter().map(|((method, host, tpl), n)| json!({
                "method": method, "host": host, "template": tpl, "count": n,
            })).collect::<Vec<_>>(),
            "unmatched": unmatched,
        }));
    }
    let quiet: Vec<&str> = policy
        .sites
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !totals.sites.contains_key(*n))
        .collect();
    json!({
        "policy": { "source": policy.source, "version": policy.version },
        "records": totals.records,
        "from": totals.from,
        "to": totals.to,
        "sites": sites,
        "sites_without_traffic": quiet,
    })
}

fn print_text(out: &Value) {
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let empty = Vec::new();
    for site in out["sites"].as_array().unwrap_or(&empty) {
        let listed = if site["listed"].as_bool().unwrap_or(false) {
            ""
        } else {
            " (not in this policy)"
        };
        println!(
            "{}{listed}: {} request(s)",
            str_of(&site["site"]),
            site["requests"]
        );
        if let Some(mix) = site["activities"].as_object() {
            let mix: Vec<String> = mix.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("  activities: {}", mix.join(", "));
        }
        let fallback = site["fallback_write"].as_array().unwrap_or(&empty);
        if fallback.is_empty() {
            println!("  fallback write: none");
        } else {
            println!("  fallback write, by endpoint:");
            for f in fallback {
                println!(
                    "    {:>6}  {} {}{}",
                    f["count"],
                    str_of(&f["method"]),
                    str_of(&f["host"]),
                    str_of(&f["template"])
                );
            }
        }
        let unmatched = site["unmatched"].as_array().unwrap_or(&empty);
        if unmatched.is_empty() {
            println!("  every matcher matched something");
        } else {
            println!("  matchers that matched nothing:");
            for u in unmatched {
                println!("    {}", str_of(u));
            }
        }
    }
    let quiet = out["sites_without_traffic"].as_array().unwrap_or(&empty);
    if !quiet.is_empty() {
        let names: Vec<String> = quiet.iter().map(str_of).collect();
        println!("no traffic: {}", names.join(", "));
    }
    let period = match (out["from"].as_str(), out["to"].as_str()) {
        (Some(f), Some(t)) => format!(" from {f} to {t}"),
        _ => String::new(),
    };
    println!(
        "{} record(s){period}; policy {} (version {})",
        out["records"],
        str_of(&out["policy"]["source"]),
        str_of(&out["policy"]["version"])
    );
}

/// A path with its ids as `{id}` (the rule is in the module header).
pub(super) fn template(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let (stem, ext) = match seg.find('.') {
                Some(i) if i > 0 => seg.split_at(i),
                _ => (seg, ""),
            };
            if is_id(stem) {
                format!("{{id}}{ext}")
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    let digit = b.iter().any(u8::is_ascii_digit);
    let numeric = b.len() >= 4 && b.iter().all(u8::is_ascii_digit);
    let hex = b.len() >= 8 && digit && b.iter().all(u8::is_ascii_hexdigit);
    let base62 = b.len() >= 12
        && digit
        && b.iter().any(u8::is_ascii_alphabetic)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_');
    numeric || hex || base62
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn templates_replace_ids_and_keep_words() {
        for (path, want) in [
            ("/2/users/1072250532645998596/likes", "/2/users/{id}/likes"),
            (
                "/i/api/graphql/SoVnbfCycZ7fERGCwpZkYA/CreateTweet",
                "/i/api/graphql/{id}/CreateTweet",
            ),
            ("/api/submit/", "/api/submit/"),
            (
                "/1.1/statuses/show/12345.json",
                "/1.1/statuses/show/{id}.json",
            ),
            ("/api/v1/statuses/109", "/api/v1/statuses/109"),
            ("/objects/deadbeef01", "/objects/{id}"),
            ("/u/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/u/{id}"),
            (
                "/xrpc/app.bsky.feed.getTimeline",
                "/xrpc/app.bsky.feed.getTimeline",
            ),
            ("/profile/3jzfcijpj2z2a", "/profile/{id}"),
            (
                "/voyager/api/voyagerSocialDashNormComments",
                "/voyager/api/voyagerSocialDashNormComments",
            ),
        ] {
            assert_eq!(template(path), want, "{path}");
        }
    }
}
