//! The command line: `run`, `check`, `explain`, `hash-password`.
//! Exit codes: 0 all well; 1 a problem (printed as `FILE:LINE:COL: message` where
//! it concerns a file); 2 bad usage (clap).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::policy::load_policy;
use crate::policy::selftest::TestRequest;
use crate::policy::sources::FsFiles;
use crate::runtime::{load_checked_policy, PolicySource};
use crate::settings::Settings;
use crate::verdict::run_tests;

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
    /// Parse and compile a policy and run its `tests:`; with --settings, check the
    /// gateway settings, the Kerberos keytab and the directory. Exit 0 only when all is well.
    Check {
        #[arg(value_name = "POLICY_FILE", required_unless_present = "settings")]
        policy: Option<PathBuf>,
        /// A settings file (socialgate.yaml) to check: its keys, the keytab, and
        /// whether the directory can be reached with the service account.
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
        /// With --settings: show the groups this user has (group_members and the directory).
        #[arg(long, value_name = "U", requires = "settings")]
        user: Option<String>,
    },
    /// Show how a request would be decided, and why.
    Explain {
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
        Command::Check {
            policy,
            settings,
            user,
        } => {
            let mut code = ExitCode::SUCCESS;
            if let Some(s) = &settings {
                code = cmd_check_settings(s, user.as_deref());
            }
            if let Some(p) = &policy {
                if settings.is_some() {
                    println!();
                }
                let c = cmd_check(p);
                if c != ExitCode::SUCCESS {
                    code = c;
                }
            }
            code
        }
        Command::Explain {
            policy,
            user,
            groups,
            settings,
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
            settings,
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
    // MIT Kerberos finds the keytab through the environment, which must be set
    // before the runtime starts threads.
    if let Some(k) = &settings.identity.kerberos {
        crate::identity::kerberos::prepare_environment(&k.keytab);
    }
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
    settings: Option<PathBuf>,
    at: Option<String>,
    headers: Vec<String>,
    body: Option<String>,
    body_file: Option<PathBuf>,
    json: bool,
    method: String,
    url: String,
}

fn cmd_explain(mut a: ExplainArgs) -> ExitCode {
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
            a.groups = configured_groups(s, &a.user);
        }
    }
    let source = match a.policy {
        Some(p) => PolicySource::File(p),
        None => PolicySource::for_settings(&settings.unwrap_or_else(local_settings)),
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
                None => PolicySource::for_settings(&local_settings()),
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

/// The settings `run` would use from this directory (`./socialgate.yaml`), so
/// `explain` and `scan` decide with the same policy; the built-in defaults when
/// there is none or it does not load.
fn local_settings() -> Settings {
    let path = PathBuf::from("socialgate.yaml");
    if !path.exists() {
        return Settings::default();
    }
    match Settings::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}\nsocialgate: ./socialgate.yaml has errors; using the built-in defaults to find the policy");
            Settings::default()
        }
    }
}

/// The groups `user` gets from `group_members` and, when configured and
/// reachable, the directory (a directory outage is reported on stderr and the
/// user is then in no directory group, as the gateway would treat them).
fn configured_groups(settings: &Settings, user: &str) -> Vec<String> {
    let mut identity = settings.identity.clone();
    identity.kerberos = None;
    identity.basic = None;
    let resolver = match crate::identity::IdentityResolver::build(
        identity,
        &settings.upstream.extra_roots,
        None,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("socialgate: {e}");
            return Vec::new();
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("socialgate: cannot start the runtime: {e}");
            return Vec::new();
        }
    };
    rt.block_on(async {
        if let Some(d) = resolver.directory() {
            if let Err(e) = d.lookup(user).await {
                eprintln!("socialgate: {e}; `{user}` is taken to be in no directory group");
            }
        }
        resolver.groups_for(user).await
    })
}

/// `socialgate check --settings FILE [--user U]`: the settings' keys, the
/// Kerberos keytab, the directory, and a user's groups.
fn cmd_check_settings(path: &std::path::Path, user: Option<&str>) -> ExitCode {
    let name = path.display().to_string();
    let settings = match Settings::load(path) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            println!(
                "{name}: {} error(s); the settings were not accepted",
                errors.0.len()
            );
            return ExitCode::from(1);
        }
    };
    println!("{name}: settings OK");
    let mut problems = 0;
    let identity = &settings.identity;
    if let Some(k) = &identity.kerberos {
        problems += check_kerberos(k);
    }
    if let Some(b) = &identity.basic {
        match crate::identity::Htpasswd::load(&b.htpasswd) {
            Ok(h) => println!("basic: OK {} ({} users)", b.htpasswd.display(), h.len()),
            Err(e) => {
                println!("basic: FAIL {e}");
                problems += 1;
            }
        }
    }
    if let Some(l) = &identity.ldap {
        problems += check_directory(l, &settings.upstream.extra_roots, user);
    }
    if let Some(u) = user {
        let groups = configured_groups(&settings, u);
        println!(
            "groups of {u}: {}",
            if groups.is_empty() {
                "(none)".to_string()
            } else {
                groups.join(", ")
            }
        );
    }
    if problems == 0 {
        println!("{name}: identity sources OK");
        ExitCode::SUCCESS
    } else {
        println!("{name}: {problems} problem(s) with the identity sources");
        ExitCode::from(1)
    }
}

/// Reports on the keytab; returns the number of problems.
fn check_kerberos(k: &crate::settings::KerberosSettings) -> usize {
    use crate::identity::kerberos;
    let entries = match kerberos::read_keytab(&k.keytab) {
        Err(e) => {
            println!("kerberos: FAIL {e}");
            return 1;
        }
        Ok(entries) => entries,
    };
    let mut problems = 0;
    println!(
        "kerberos: keytab {} holds {} key(s):",
        k.keytab.display(),
        entries.len()
    );
    for e in &entries {
        println!("  {} (kvno {}, {})", e.principal, e.kvno, e.enctype_name());
    }
    if entries.is_empty() {
        println!("kerberos: FAIL the keytab holds no keys");
        return 1;
    }
    if let Some(p) = &k.principal {
        if !entries.iter().any(|e| kerberos::entry_matches(e, p)) {
            println!("kerberos: FAIL no key for the configured principal {p}");
            problems += 1;
        }
    }
    if !entries.iter().any(|e| e.is_aes()) {
        println!("kerberos: WARNING no AES key: current Windows clients cannot sign in (ktpass -crypto AES256-SHA1)");
    }
    let mut hosts: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            let (name, _) = kerberos::split_principal(&e.principal);
            let (service, host) = name.split_once('/')?;
            service
                .eq_ignore_ascii_case("HTTP")
                .then(|| host.to_string())
        })
        .collect();
    hosts.dedup();
    if hosts.is_empty() {
        println!(
            "kerberos: WARNING no HTTP/<host> key: browsers ask for HTTP/<the proxy's DNS name>"
        );
    } else {
        println!(
            "kerberos: browsers must be configured with the proxy as {} (a DNS name, not an IP address or another alias) to sign in",
            hosts.join(" or ")
        );
    }
    // MIT Kerberos reads the keytab's name from the environment; no thread of
    // ours has started yet.
    kerberos::prepare_environment(&k.keytab);
    match kerberos::KerberosAcceptor::new(k.principal.as_deref()) {
        Ok(_) => println!("kerberos: OK the keytab is usable by GSSAPI"),
        Err(e) => {
            println!("kerberos: FAIL {e}");
            problems += 1;
        }
    }
    problems
}

/// Reports on the directory (and a user in it); returns the number of problems.
fn check_directory(
    l: &crate::settings::LdapSettings,
    extra_roots: &[PathBuf],
    user: Option<&str>,
) -> usize {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("ldap: FAIL cannot start the runtime: {e}");
            return 1;
        }
    };
    let d = match crate::identity::ldap::Directory::new(l.clone(), extra_roots, None) {
        Ok(d) => d,
        Err(e) => {
            println!("ldap: FAIL {e}");
            return 1;
        }
    };
    let as_whom = l
        .bind_dn
        .as_deref()
        .map(|dn| format!("bound as {dn}"))
        .unwrap_or_else(|| "anonymously".into());
    if let Err(e) = rt.block_on(d.probe()) {
        println!("ldap: FAIL {} ({as_whom}): {e}", l.url);
        return 1;
    }
    println!("ldap: OK connected to {} {as_whom}", l.url);
    let Some(u) = user else {
        return 0;
    };
    match rt.block_on(d.lookup(u)) {
        Ok(Some(entry)) => {
            println!("ldap: {u} is {}", entry.dn);
            println!(
                "ldap: directory groups of {u}: {}",
                if entry.groups.is_empty() {
                    "(none)".to_string()
                } else {
                    entry.groups.join(", ")
                }
            );
            0
        }
        Ok(None) => {
            println!(
                "ldap: WARNING no single entry under {} matches {}; {u} gets no directory groups",
                l.user_base,
                l.user_filter.replace("{user}", u)
            );
            0
        }
        Err(e) => {
            println!("ldap: FAIL looking up {u}: {e}");
            1
        }
    }
}
