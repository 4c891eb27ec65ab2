//! The command line: `run`, `check`, `explain`, `hash-password`.
//! Exit codes: 0 all well; 1 a problem (printed as `FILE:LINE:COL: message` where
//! it concerns a file); 2 bad usage (clap).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::policy::load_policy;
use crate::policy::selftest::{run_tests, TestRequest};
use crate::policy::sources::FsFiles;
use crate::runtime::{load_checked_policy, PolicySource};
use crate::settings::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "socialgate",
    version,
    about = "An HTTPS forward proxy that opens social media safely."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve. Without --config, uses ./socialgate.yaml if present, else built-in defaults.
    Run {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Parse and compile a policy and run its `tests:`. Exit 0 only when all is well.
    Check {
        #[arg(value_name = "POLICY_FILE")]
        policy: PathBuf,
    },
    /// Show how a request would be decided, and why.
    Explain {
        /// The policy (default: as `run` would choose).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        #[arg(long)]
        user: String,
        #[arg(long = "group", value_name = "G")]
        groups: Vec<String>,
        /// The time to decide at (RFC 3339); default now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        #[arg(long = "header", value_name = "'K: V'")]
        headers: Vec<String>,
        #[arg(long, conflicts_with = "body_file")]
        body: Option<String>,
        #[arg(long, value_name = "F")]
        body_file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        method: String,
        url: String,
    },
    /// Run DLP detectors over a text or a raw request body. Exit 0 when clean, 3 when something was found.
    Scan {
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
    },
    /// Manage the interception CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Read a password on stdin and print a bcrypt hash for the htpasswd file.
    HashPassword {
        #[arg(long, default_value_t = 10)]
        cost: u32,
    },
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Create a CA (ECDSA P-256, name-constrained; key file mode 0600). Refuses to overwrite.
    Init {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => cmd_run(config),
        Command::Check { policy } => cmd_check(&policy),
        Command::Explain {
            policy,
            user,
            groups,
            at,
            headers,
            body,
            body_file,
            json,
            method,
            url,
        } => cmd_explain(ExplainArgs {
            policy,
            user,
            groups,
            at,
            headers,
            body,
            body_file,
            json,
            method,
            url,
        }),
        Command::HashPassword { cost } => cmd_hash_password(cost),
        Command::Scan {
            policy,
            profile,
            content_type,
            content_encoding,
            json,
            file,
        } => cmd_scan(policy, profile, content_type, content_encoding, json, file),
        Command::Ca {
            command: CaCommand::Init { dir },
        } => cmd_ca_init(&dir),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn cmd_run(config: Option<PathBuf>) -> ExitCode {
    init_logging();
    let settings = match config.or_else(|| {
        let p = PathBuf::from("socialgate.yaml");
        p.exists().then_some(p)
    }) {
        Some(path) => match Settings::load(&path) {
            Ok(s) => {
                tracing::info!(settings = %path.display(), "settings loaded");
                s
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("socialgate: the settings have errors; nothing was started.");
                return ExitCode::from(1);
            }
        },
        None => {
            tracing::info!("no socialgate.yaml: running on built-in defaults (proxy 127.0.0.1:3128, clients from 127.0.0.0/8 are user `local` in group `all-staff`)");
            Settings::default()
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("socialgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(crate::runtime::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("socialgate: {e}");
            ExitCode::from(1)
        }
    }
}

fn cmd_check(path: &std::path::Path) -> ExitCode {
    let name = path.display().to_string();
    let policy = match load_policy(&name, &FsFiles) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            println!(
                "{name}: {} error(s); the policy was not accepted",
                errors.0.len()
            );
            return ExitCode::from(1);
        }
    };
    let failures = run_tests(&policy);
    for f in &failures {
        println!("{f}");
    }
    let total = policy.tests.len();
    if failures.is_empty() {
        println!(
            "{name}: OK (version {}, {} roles, {} sites, {} rules, {total} tests passed)",
            policy.version,
            policy.roles.len(),
            policy.sites.len(),
            policy.rules.len()
        );
        ExitCode::SUCCESS
    } else {
        println!("{name}: {} of {total} tests failed", failures.len());
        ExitCode::from(1)
    }
}

struct ExplainArgs {
    policy: Option<PathBuf>,
    user: String,
    groups: Vec<String>,
    at: Option<String>,
    headers: Vec<String>,
    body: Option<String>,
    body_file: Option<PathBuf>,
    json: bool,
    method: String,
    url: String,
}

fn cmd_explain(a: ExplainArgs) -> ExitCode {
    let source = match a.policy {
        Some(p) => PolicySource::File(p),
        None => PolicySource::for_settings(&Settings::default()),
    };
    let policy = match load_checked_policy(&source) {
        Ok(p) => p,
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            return ExitCode::from(1);
        }
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
        Ok(r) => r,
        Err(e) => {
            eprintln!("socialgate: {e}");
            return ExitCode::from(2);
        }
    };
    let verdict = crate::verdict::evaluate_test_request(&policy, &a.user, &a.groups, &req, at);
    let d = &verdict.decision;
    if a.json {
        let out = serde_json::json!({
            "action": d.action.as_str(),
            "rule": d.rule,
            "site": d.site,
            "activity": d.activity,
            "reason": d.reason,
            "roles": d.roles,
            "dry_run": d.dry_run,
            "dlp": verdict.findings,
        });
        println!("{out}");
    } else {
        println!("action:   {}", d.action.as_str());
        println!("rule:     {}", d.rule);
        println!("site:     {}", d.site);
        println!("activity: {}", d.activity);
        println!(
            "roles:    {}",
            if d.roles.is_empty() {
                "(none)".to_string()
            } else {
                d.roles.join(", ")
            }
        );
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
    }
    ExitCode::SUCCESS
}

fn cmd_hash_password(cost: u32) -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("socialgate: cannot read the password from stdin: {e}");
        return ExitCode::from(1);
    }
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("socialgate: the password is empty");
        return ExitCode::from(1);
    }
    match bcrypt::hash(password, cost) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("socialgate: {e}");
            ExitCode::from(1)
        }
    }
}

fn cmd_scan(
    policy: Option<PathBuf>,
    profile: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    json: bool,
    file: Option<PathBuf>,
) -> ExitCode {
    let scanner = match &profile {
        None => std::sync::Arc::new(crate::dlp::Scanner::all_builtins()),
        Some(name) => {
            let source = match policy {
                Some(p) => PolicySource::File(p),
                None => PolicySource::for_settings(&Settings::default()),
            };
            let policy = match load_checked_policy(&source) {
                Ok(p) => p,
                Err(errs) => {
                    for e in errs {
                        eprintln!("{e}");
                    }
                    return ExitCode::from(1);
                }
            };
            match policy
                .dlp
                .profiles
                .get(name)
                .and_then(|p| p.scanner.clone())
            {
                Some(s) => s,
                None => {
                    let known: Vec<&str> = policy.dlp.profiles.keys().map(String::as_str).collect();
                    eprintln!(
                        "socialgate: the policy has no DLP profile `{name}` (it has: {})",
                        known.join(", ")
                    );
                    return ExitCode::from(1);
                }
            }
        }
    };
    let mut body = Vec::new();
    let read = match &file {
        Some(f) => std::fs::read(f).map(|b| body = b),
        None => std::io::stdin().read_to_end(&mut body).map(|_| ()),
    };
    if let Err(e) = read {
        eprintln!("socialgate: cannot read the input: {e}");
        return ExitCode::from(1);
    }
    let input = crate::dlp::ScanInput {
        content_type: content_type.as_deref(),
        content_encoding: content_encoding.as_deref(),
        body: &body,
        query: None,
    };
    let findings = match scanner.scan_request(&input, &crate::dlp::ScanLimits::default()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("socialgate: the input cannot be scanned: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
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

fn cmd_ca_init(dir: &std::path::Path) -> ExitCode {
    let cert = dir.join("ca.crt");
    let key = dir.join("ca.key");
    if cert.exists() || key.exists() {
        eprintln!(
            "socialgate: {} or {} already exists; remove both first if you really want a new CA (every client must then trust the new one)",
            cert.display(),
            key.display()
        );
        return ExitCode::from(1);
    }
    match crate::tls::CertificateAuthority::load_or_create(&cert, &key) {
        Ok((ca, _)) => {
            println!(
                "created {} and {} (key mode 0600)",
                cert.display(),
                key.display()
            );
            println!("SHA-256 fingerprint: {}", ca.sha256_fingerprint());
            println!(
                "Distribute {} to staff browsers as a trusted root; see docs/operations.md.",
                cert.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("socialgate: {e}");
            ExitCode::from(1)
        }
    }
}
