//! `socialgate replay`: re-decides the requests an audit log recorded under a
//! draft policy and prints what would change, for review before a deploy and as
//! a CI gate (`--fail-on-change` exits 4).
//!
//! Job: read audit JSON lines (plain files, gzip files told by their magic
//! bytes, `-` for stdin), re-decide each record the policy decided with the
//! engine's [`Policy::replay`] (user, `groups`, method, host, path, `ts`, the
//! recorded site, activity, `account` and DLP findings), compare with the "before" (the
//! record's own action and rule, or `--current POLICY` re-decided the same
//! way), and print the changes grouped by (before → after, role, site,
//! activity) with up to five references each, as text or `--json`.
//!
//! Limits: the audit holds no query, headers or body, so some records are
//! re-decided only approximately (counted and named, never hidden: see
//! `policy::replay`). Records the policy never decided (guard refusals,
//! sign-in failures, acknowledgements, requests refused before a decision) are
//! skipped and counted. A line that is not an audit record is fatal (exit 1,
//! naming `FILE:LINE`): a gate must not pass on a log it could not read whole.
//! Called by `cli::main`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;

use super::context;
use crate::policy::replay::{Approximation, Recorded, Replayed};
use crate::policy::{AccountFact, Policy};
use crate::settings::Settings;

/// The exit code of `--fail-on-change` when something would change.
pub const CHANGED_EXIT: u8 = 4;

/// How many references each change lists.
const REFERENCES: usize = 5;

/// Rules the gateway names for refusals made before (or instead of) a policy
/// decision: such records are not replayed.
const NOT_POLICY_RULES: &[&str] = &["destination-guard", "authentication", "request-refused"];

#[derive(Args, Debug)]
pub(super) struct ReplayArgs {
    /// The draft policy to re-decide the recorded requests under.
    #[arg(long, value_name = "DRAFT")]
    policy: PathBuf,
    /// The policy in force when the log was written: "before" is then this
    /// policy's decision, re-decided exactly as the draft's. Without it,
    /// "before" is the action and rule the record names.
    #[arg(long, value_name = "POLICY")]
    current: Option<PathBuf>,
    /// Print `{"records":N,"changed":M,"changes":[...]}` (N: records re-decided).
    #[arg(long)]
    json: bool,
    /// Exit 4 when any re-decided record changes (a CI gate).
    #[arg(long)]
    fail_on_change: bool,
    /// Audit logs: JSON lines, plain or gzip (told by its first bytes); `-` reads
    /// stdin. A line that is not an audit record stops the command (exit 1,
    /// naming FILE:LINE); empty lines are ignored.
    #[arg(required = true, value_name = "AUDIT_FILE")]
    files: Vec<String>,
}

/// The fields of an audit record that replay reads; other fields are ignored,
/// and fields added later default, so older and newer logs both read.
#[derive(Debug, Deserialize)]
struct AuditLine {
    ts: String,
    reference: String,
    #[serde(default)]
    user: Option<String>,
    /// `None` in records written before the field existed.
    #[serde(default)]
    groups: Option<Vec<String>>,
    method: String,
    host: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    activity: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    dlp: Vec<AuditFinding>,
    #[serde(default)]
    bytes_up: u64,
    /// `SET:ID`, `other` or `unknown`; missing in older records (`unknown`).
    #[serde(default)]
    account: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AuditFinding {
    detector: String,
}

/// An action and the rule behind it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
struct Outcome {
    action: String,
    rule: String,
}

/// What a group of changes has in common.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ChangeKey {
    from: Outcome,
    to: Outcome,
    role: String,
    site: String,
    activity: String,
}

#[derive(Debug, Default)]
struct ChangeGroup {
    count: u64,
    approximate: u64,
    references: Vec<String>,
}

/// Everything counted over the logs.
#[derive(Debug, Default)]
struct Tally {
    records: u64,
    changed: u64,
    skipped: u64,
    approximate: BTreeMap<&'static str, u64>,
    approximate_records: u64,
    changes: BTreeMap<ChangeKey, ChangeGroup>,
}

/// A problem with the input, already worded with its place.
struct InputError(String);

pub(super) fn run(a: ReplayArgs) -> ExitCode {
    let Ok((draft, _)) = context::load_policy_for(Some(a.policy.clone()), Settings::default) else {
        return ExitCode::from(1);
    };
    let current = match &a.current {
        None => None,
        Some(p) => match context::load_policy_for(Some(p.clone()), Settings::default) {
            Ok((policy, _)) => Some(policy),
            Err(code) => return code,
        },
    };
    let mut tally = Tally::default();
    for file in &a.files {
        if let Err(InputError(e)) = read_file(file, &mut |line_no, text| {
            replay_line(&draft, current.as_ref(), &mut tally, file, line_no, text)
        }) {
            eprintln!("socialgate: {e}");
            return ExitCode::from(1);
        }
    }
    if a.json {
        print_json(&tally);
        if tally.skipped > 0 || tally.approximate_records > 0 {
            eprintln!("socialgate: replay: {}", summary(&tally));
        }
    } else {
        print_text(&tally, &draft, current.as_ref(), &a.files);
    }
    if a.fail_on_change && tally.changed > 0 {
        return ExitCode::from(CHANGED_EXIT);
    }
    ExitCode::SUCCESS
}

/// Calls `each` with every line of `file` (1-based numbers), gunzipping a gzip
/// file (any number of members, as logrotate and `cat a.gz b.gz` make).
fn read_file(
    file: &str,
    each: &mut dyn FnMut(usize, &str) -> Result<(), InputError>,
) -> Result<(), InputError> {
    let cannot = |e: std::io::Error| InputError(format!("cannot read {file}: {e}"));
    let raw: Box<dyn Read> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).map_err(cannot)?)
    };
    let mut reader = BufReader::new(raw);
    let gzip = reader
        .fill_buf()
        .map_err(cannot)?
        .starts_with(&[0x1f, 0x8b]);
    let lines: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    };
    for (i, line) in lines.lines().enumerate() {
        let line_no = i + 1;
        let line =
            line.map_err(|e| InputError(format!("{file}:{line_no}: cannot read this line: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        each(line_no, &line)?;
    }
    Ok(())
}

fn replay_line(
    draft: &Policy,
    current: Option<&Policy>,
    tally: &mut Tally,
    file: &str,
    line_no: usize,
    text: &str,
) -> Result<(), InputError> {
    let bad = |why: String| InputError(format!("{file}:{line_no}: not an audit record: {why}"));
    let line: AuditLine = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let at = chrono::DateTime::parse_from_rfc3339(&line.ts)
        .map_err(|e| bad(format!("`ts` {:?} is not an RFC 3339 time ({e})", line.ts)))?
        .with_timezone(&chrono::Utc);
    let Some(user) = line.user.as_deref() else {
        tally.skipped += 1;
        return Ok(());
    };
    if line.action.is_empty()
        || line.activity.is_empty()
        || NOT_POLICY_RULES.contains(&line.rule.as_str())
        || line.path.starts_with("/.socialgate/")
    {
        tally.skipped += 1;
        return Ok(());
    }
    let detectors: Vec<String> = line.dlp.iter().map(|f| f.detector.clone()).collect();
    let recorded = Recorded {
        user,
        groups: line.groups.as_deref().unwrap_or(&[]),
        method: &line.method,
        host: &line.host,
        path: &line.path,
        site: &line.site,
        activity: &line.activity,
        at: Some(at),
        dlp_detectors: &detectors,
        had_body: line.bytes_up > 0,
        account: match line.account.as_deref() {
            Some("other") => AccountFact::Other,
            None | Some("unknown") | Some("") => AccountFact::Unknown,
            // `SET:ID`: the draft places the id in its own sets again.
            Some(member) => match member.split_once(':') {
                Some((_, id)) if !id.is_empty() => AccountFact::Id(id),
                _ => {
                    return Err(bad(format!(
                        "`account` {member:?} is not SET:ID, other or unknown"
                    )))
                }
            },
        },
    };
    let not_replayable = |e: crate::policy::replay::NotReplayable| {
        bad(match e {
            crate::policy::replay::NotReplayable::Host => {
                format!("`host` {:?} is not a host name or address", line.host)
            }
            crate::policy::replay::NotReplayable::Path => {
                format!("`path` {:?} is not a path the gateway accepts", line.path)
            }
        })
    };
    let after = draft.replay(&recorded).map_err(not_replayable)?;
    let mut approximate = after.approximate.clone();
    if line.groups.is_none() {
        approximate.push(Approximation::Groups);
    }
    // A record written before `account` existed is `unknown`: exact only where
    // no rule looks at accounts.
    let looks_at_accounts = |p: &Policy| p.rules.iter().any(|r| r.accounts.is_some());
    if line.account.is_none()
        && (looks_at_accounts(draft) || current.is_some_and(looks_at_accounts))
    {
        approximate.push(Approximation::Account);
    }
    let to = outcome(&after);
    let from = match current {
        Some(policy) => {
            let before = policy.replay(&recorded).map_err(not_replayable)?;
            approximate.extend(before.approximate.iter().copied());
            outcome(&before)
        }
        None => {
            let recorded = Outcome {
                action: line.action.clone(),
                rule: line.rule.clone(),
            };
            // A warn the user had acknowledged is recorded as `allow` by the
            // warning rule: the same rule warning again is no change.
            if recorded.action == "allow" && to.action == "warn" && recorded.rule == to.rule {
                to.clone()
            } else {
                recorded
            }
        }
    };
    approximate.sort();
    approximate.dedup();
    tally.records += 1;
    if !approximate.is_empty() {
        tally.approximate_records += 1;
        for a in &approximate {
            *tally.approximate.entry(a.as_str()).or_default() += 1;
        }
    }
    if from == to {
        return Ok(());
    }
    tally.changed += 1;
    let d = &after.decision;
    let group = tally
        .changes
        .entry(ChangeKey {
            from,
            to,
            role: d.first_role().to_string(),
            site: d.site.clone(),
            activity: d.activity.clone(),
        })
        .or_default();
    group.count += 1;
    if !approximate.is_empty() {
        group.approximate += 1;
    }
    if group.references.len() < REFERENCES {
        group.references.push(line.reference);
    }
    Ok(())
}

fn outcome(r: &Replayed) -> Outcome {
    Outcome {
        action: r.decision.action.as_str().to_string(),
        rule: r.decision.rule.clone(),
    }
}

/// The groups of changes, the largest first (then in key order).
fn sorted(tally: &Tally) -> Vec<(&ChangeKey, &ChangeGroup)> {
    let mut v: Vec<_> = tally.changes.iter().collect();
    v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
    v
}

/// The `--json` output, fields in the documented order.
#[derive(serde::Serialize)]
struct JsonOut<'a> {
    records: u64,
    changed: u64,
    changes: Vec<JsonChange<'a>>,
}

#[derive(serde::Serialize)]
struct JsonChange<'a> {
    from: &'a Outcome,
    to: &'a Outcome,
    role: &'a str,
    site: &'a str,
    activity: &'a str,
    count: u64,
    references: &'a [String],
}

fn print_json(tally: &Tally) {
    let out = JsonOut {
        records: tally.records,
        changed: tally.changed,
        changes: sorted(tally)
            .into_iter()
            .map(|(k, g)| JsonChange {
                from: &k.from,
                to: &k.to,
                role: &k.role,
                site: &k.site,
                activity: &k.activity,
                count: g.count,
                references: &g.references,
            })
            .collect(),
    };
    match serde_json::to_string(&out) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("socialgate: cannot write JSON: {e}"),
    }
}

/// `N skipped ..., M approximate (...)`.
fn summary(tally: &Tally) -> String {
    let kinds: Vec<String> = tally
        .approximate
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    format!(
        "{} records re-decided, {} changed; {} approximate ({}); {} skipped (not decided by the policy: guard refusals, sign-in failures, acknowledgements, no user)",
        tally.records,
        tally.changed,
        tally.approximate_records,
        if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") },
        tally.skipped
    )
}

fn print_text(tally: &Tally, draft: &Policy, current: Option<&Policy>, files: &[String]) {
    println!("draft:   {} (version {})", draft.source, draft.version);
    match current {
        Some(p) => println!("before:  {} (version {}), re-decided", p.source, p.version),
        None => println!("before:  as recorded in the audit log"),
    }
    println!("logs:    {}", files.join(", "));
    println!("{}", summary(tally));
    if tally.changes.is_empty() {
        println!("no change");
        return;
    }
    println!();
    for (k, g) in sorted(tally) {
        let approx = if g.approximate > 0 {
            format!(" ({} approximate)", g.approximate)
        } else {
            String::new()
        };
        println!(
            "{:>6}{approx}  {} by {} -> {} by {}  role {}  site {}  activity {}",
            g.count, k.from.action, k.from.rule, k.to.action, k.to.rule, k.role, k.site, k.activity
        );
        println!("        references: {}", g.references.join(", "));
    }
    if tally.approximate_records > 0 {
        println!();
        println!("approximate: the audit holds no query, headers or body; `activity`: the activity was named from method and path only; `dlp`: the content was not scanned again (recorded findings judged by the draft's profile); `groups`: the record has no groups (roles from the user alone); `account`: the record has no account (taken as unknown). See docs/replay.md.");
    }
}
