//! Starting and stopping a gateway: load the policy, bind the listeners, serve,
//! reload the policy on SIGHUP or when its files change, reopen the audit log on
//! SIGUSR1, stop gracefully on SIGTERM. Integration tests use `start` with port 0
//! to run a real gateway in-process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::policy::sources::{EmbeddedFiles, FsFiles, BUILTIN_POLICY};
use crate::policy::{load_policy, Policy};
use crate::proxy::server::serve_proxy;
use crate::proxy::Gateway;
use crate::settings::Settings;
use crate::verdict::run_tests;

/// How long requests in flight may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Where the policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    File(PathBuf),
    BuiltIn,
}

impl PolicySource {
    /// The configured file; else `policies/default.yaml` when present; else built in.
    pub fn for_settings(settings: &Settings) -> PolicySource {
        match &settings.policy {
            Some(p) => PolicySource::File(p.clone()),
            None if Path::new(BUILTIN_POLICY).exists() => {
                PolicySource::File(PathBuf::from(BUILTIN_POLICY))
            }
            None => PolicySource::BuiltIn,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PolicySource::File(p) => p.display().to_string(),
            PolicySource::BuiltIn => format!("{BUILTIN_POLICY} (built in)"),
        }
    }
}

/// Loads and compiles a policy without running its `tests:` (for `explain`,
/// which must work exactly when the tests fail). Every problem is one line.
pub fn load_unchecked_policy(source: &PolicySource) -> Result<Policy, Vec<String>> {
    match source {
        PolicySource::File(p) => load_policy(&p.display().to_string(), &FsFiles),
        PolicySource::BuiltIn => load_policy(BUILTIN_POLICY, &EmbeddedFiles),
    }
    .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())
}

/// Loads, compiles and self-tests a policy. Every problem is one line of the error.
pub fn load_checked_policy(source: &PolicySource) -> Result<Policy, Vec<String>> {
    let policy = load_unchecked_policy(source)?;
    let failures = run_tests(&policy);
    if failures.is_empty() {
        Ok(policy)
    } else {
        Err(failures.iter().map(ToString::to_string).collect())
    }
}

/// One start-up check: what it looked at and what it found.
#[derive(Debug, Clone)]
pub struct StartupCheck {
    /// `policy`, `ca`, `audit`, `upstream`, `identity`, `listen_tls`.
    pub what: &'static str,
    /// `Ok(note)` or `Err(problem)`; a problem may span lines.
    pub outcome: Result<String, String>,
}

/// What `run` checks before it binds anything, in order, and the policy it
/// would serve. `check --settings` prints the same list, so the two cannot
/// drift: everything `run` refuses at start-up (apart from a port another
/// process holds) is refused here first.
#[derive(Debug)]
pub struct StartupReport {
    pub checks: Vec<StartupCheck>,
    pub policy: Option<Policy>,
    pub source: PolicySource,
}

impl StartupReport {
    /// The problems, each introduced by what it concerns.
    pub fn problems(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| c.outcome.as_ref().err().map(|e| format!("{}: {e}", c.what)))
            .collect()
    }
}

/// Runs every start-up check on `settings` (the settings file itself has
/// already parsed): the policy loads, compiles and passes its tests; the CA
/// files load (or may be created); the audit log can be opened for appending;
/// the upstream extra roots load; the identity sources (keytab, htpasswd,
/// directory settings) can be set up. Nothing is created or bound.
pub fn startup_checks(settings: &Settings) -> StartupReport {
    let source = PolicySource::for_settings(settings);
    let mut checks = Vec::new();
    let policy = match load_checked_policy(&source) {
        Ok(p) => {
            checks.push(StartupCheck {
                what: "policy",
                outcome: Ok(format!(
                    "{} (version {}, {} rules, {} tests passed)",
                    source.describe(),
                    p.version,
                    p.rules.len(),
                    p.tests.len()
                )),
            });
            Some(p)
        }
        Err(errs) => {
            checks.push(StartupCheck {
                what: "policy",
                outcome: Err(format!(
                    "{} cannot be used:\n{}",
                    source.describe(),
                    errs.join("\n")
                )),
            });
            None
        }
    };
    checks.push(StartupCheck {
        what: "ca",
        outcome: check_ca(settings),
    });
    checks.push(StartupCheck {
        what: "audit",
        outcome: check_audit_path(&settings.audit_path),
    });
    checks.push(StartupCheck {
        what: "upstream",
        outcome: crate::tls::client_tls_config(&settings.upstream.extra_roots).map(|_| {
            format!(
                "system roots and {} extra root file(s) load",
                settings.upstream.extra_roots.len()
            )
        }),
    });
    checks.push(StartupCheck {
        what: "identity",
        outcome: crate::identity::IdentityResolver::build(
            settings.identity.clone(),
            &settings.upstream.extra_roots,
            None,
        )
        .map(|_| "the identity sources can be set up".to_string()),
    });
    if let Some(t) = &settings.listen_tls {
        checks.push(StartupCheck {
            what: "listen_tls",
            outcome: crate::proxy::server::tls_port_config(t.certified.clone()).map(|_| {
                format!(
                    "HTTPS proxy port {} presents {} (certificate and key match)",
                    t.address,
                    t.cert.display()
                )
            }),
        });
    }
    StartupReport {
        checks,
        policy,
        source,
    }
}

/// The command that makes the CA files `settings` names, in backticks.
fn ca_init_command(settings: &Settings) -> String {
    let dir = settings.ca_cert.parent().unwrap_or(Path::new(""));
    let same_dir = settings.ca_key.parent() == Some(dir);
    let names_default = settings.ca_cert.file_name() == Some("ca.crt".as_ref())
        && settings.ca_key.file_name() == Some("ca.key".as_ref());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if same_dir && names_default {
        format!("`socialgate ca init --dir {}`", dir.display())
    } else {
        "`socialgate ca init --dir DIR`, then point `ca.cert` and `ca.key` at DIR/ca.crt and DIR/ca.key".to_string()
    }
}

/// Do the CA files load, or may they be created (`ca.create_if_missing`)?
fn check_ca(settings: &Settings) -> Result<String, String> {
    let (cert, key) = (&settings.ca_cert, &settings.ca_key);
    match (cert.exists(), key.exists()) {
        (true, true) => crate::tls::CertificateAuthority::load(cert, key)
            .map(|ca| {
                format!(
                    "{} loads (SHA-256 fingerprint {})",
                    cert.display(),
                    ca.sha256_fingerprint()
                )
            })
            .map_err(|e| format!("the interception CA: {e}")),
        (false, false) if settings.ca_create_if_missing => Ok(format!(
            "{} and {} are missing and will be created at start (`ca.create_if_missing`)",
            cert.display(),
            key.display()
        )),
        (false, false) => Err(format!(
            "the interception CA files {} and {} do not exist. Create them with {} (or copy this site's CA there: every replica must present the same CA), or set `ca.create_if_missing: true`",
            cert.display(),
            key.display(),
            ca_init_command(settings)
        )),
        (true, false) | (false, true) => {
            let (present, missing) = if cert.exists() { (cert, key) } else { (key, cert) };
            Err(format!(
                "the interception CA: {} exists but {} does not; restore the missing file from your backup (a new pair would have to be trusted by every client again)",
                present.display(),
                missing.display()
            ))
        }
    }
}

/// Could the audit log at `path` be opened for appending? Creates nothing
/// that stays: a missing file's directory is tried with a probe file that is
/// removed at once.
fn check_audit_path(path: &str) -> Result<String, String> {
    if path == "-" {
        return Ok("audit records go to stdout".into());
    }
    let p = Path::new(path);
    if p.is_dir() {
        return Err(format!(
            "`audit.path` {path} is a directory; name a file in it"
        ));
    }
    if p.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(p)
            .map(|_| format!("{path} can be appended to"))
            .map_err(|e| format!("cannot open the audit log {path} for appending: {e}"));
    }
    // The nearest existing ancestor must be a directory we can create files in.
    let mut dir = p.parent().unwrap_or(Path::new(""));
    while !dir.as_os_str().is_empty() && !dir.exists() {
        dir = dir.parent().unwrap_or(Path::new(""));
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if !dir.is_dir() {
        return Err(format!(
            "cannot create the audit log {path}: {} is not a directory",
            dir.display()
        ));
    }
    let probe = dir.join(format!(".socialgate-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(format!("{path} will be created"))
        }
        Err(e) => Err(format!(
            "cannot create the audit log {path}: cannot create files in {}: {e}",
            dir.display()
        )),
    }
}

/// A gateway running in this process.
pub struct RunningGateway {
    pub proxy_addrs: Vec<SocketAddr>,
    /// The HTTPS proxy port (`listen_tls`), when one is configured.
    pub tls_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    pub source: PolicySource,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    /// The first proxy address.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addrs[0]
    }

    /// Stops accepting, lets requests in flight finish (up to `grace`), flushes the
    /// audit log.
    pub async fn stop_within(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.gateway.metrics.connections_active.get() > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.gateway.audit.flush().await;
    }

    /// `stop_within(SHUTDOWN_GRACE)`.
    pub async fn stop(self) {
        self.stop_within(SHUTDOWN_GRACE).await;
    }

    /// Reloads the policy and the htpasswd file; on any error the old ones stay.
    pub fn reload(&self) -> bool {
        reload(&self.gateway, &self.source)
    }
}

/// Loads the CA, creating it when both of its files are missing and
/// `ca.create_if_missing` allows it; else missing files are an error naming
/// the command that makes them.
pub fn load_ca(settings: &Settings) -> Result<crate::tls::CertificateAuthority, String> {
    if !settings.ca_create_if_missing && !settings.ca_cert.exists() && !settings.ca_key.exists() {
        return Err(match check_ca(settings) {
            Err(e) => e,
            Ok(_) => "the interception CA files are missing".into(),
        });
    }
    let (ca, created) =
        crate::tls::CertificateAuthority::load_or_create(&settings.ca_cert, &settings.ca_key)
            .map_err(|e| format!("the interception CA: {e}"))?;
    if created {
        tracing::warn!(
            cert = %settings.ca_cert.display(),
            fingerprint = %ca.sha256_fingerprint(),
            "created a NEW interception CA. Staff browsers must trust {} (served at /ca.crt) before social sites open; see docs/operations.md",
            settings.ca_cert.display()
        );
    } else {
        tracing::info!(cert = %settings.ca_cert.display(), fingerprint = %ca.sha256_fingerprint(), "interception CA loaded; browsers must trust this certificate");
    }
    Ok(ca)
}

/// Binds the listeners and starts serving with `policy` (loaded from `source`).
pub async fn start_with_source(
    mut settings: Settings,
    policy: Policy,
    source: PolicySource,
) -> Result<RunningGateway, String> {
    let mut listeners = Vec::new();
    for addr in &settings.listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e} (is another proxy running there? change `listen` in socialgate.yaml)"))?;
        listeners.push(l);
    }
    // `listen_tls`: the HTTPS proxy port, served like the plain one after TLS.
    let tls_port = match &settings.listen_tls {
        Some(t) => Some((
            TcpListener::bind(t.address).await.map_err(|e| {
                format!("cannot listen on {} for the HTTPS proxy port: {e} (change `listen_tls.address`)", t.address)
            })?,
            crate::proxy::server::tls_port_config(t.certified.clone())?,
        )),
        None => None,
    };
    let tls_addr = tls_port.as_ref().and_then(|(l, _)| l.local_addr().ok());
    if let (Some(t), Some(a)) = (settings.listen_tls.as_mut(), tls_addr) {
        t.address = a; // the bound port, for the PAC file (port 0 in tests)
    }
    let admin = match settings.admin_listen {
        Some(a) => Some(TcpListener::bind(a).await.map_err(|e| {
            format!("cannot listen on {a} for the admin port: {e} (change `admin_listen`)")
        })?),
        None => None,
    };
    let proxy_addrs: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    let mut own = proxy_addrs.clone();
    own.extend(admin_addr);
    own.extend(tls_addr);
    // `listen_transparent`: redirected connections (`proxy::transparent`).
    let transparent = crate::proxy::transparent::bind(&settings.listen_transparent)?;
    own.extend(transparent.iter().filter_map(|(l, _)| l.local_addr().ok()));
    let issuer = Arc::new(crate::tls::LeafIssuer::new(
        Arc::new(load_ca(&settings)?),
        crate::tls::issuer::DEFAULT_CAPACITY,
    ));
    let syslog = match &settings.audit_syslog {
        Some(t) => {
            tracing::info!(receiver = %t, "audit records also go to syslog (RFC 5424)");
            Some(crate::syslog::SyslogSender::start(
                t.clone(),
                &settings.upstream.extra_roots,
            )?)
        }
        None => None,
    };
    let (audit, _writer) = crate::audit::AuditLog::start_with_syslog(
        &settings.audit_path,
        syslog,
        &settings.instance,
    )?;
    let gateway = Arc::new(Gateway::new(settings, policy, own, issuer, audit)?);
    gateway.metrics.record_policy_load(true);
    let expiry = gateway
        .issuer
        .ca()
        .not_after()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    gateway.metrics.ca_expiry.set(expiry);
    gateway.set_proxy_addrs(proxy_addrs.clone());
    let (tx, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(serve_proxy(gateway.clone(), l, rx.clone())));
    }
    if let Some((l, config)) = tls_port {
        tasks.push(tokio::spawn(crate::proxy::server::serve_proxy_tls(
            gateway.clone(),
            l,
            config,
            rx.clone(),
        )));
    }
    for (l, kind) in transparent {
        if let Ok(a) = l.local_addr() {
            tracing::info!(address = %a, kind = ?kind, "transparent listener: takes connections redirected here (docs/transparent.md)");
        }
        tasks.push(tokio::spawn(crate::proxy::transparent::serve(
            gateway.clone(),
            l,
            kind,
            rx.clone(),
        )));
    }
    if let Some(l) = admin {
        tasks.push(tokio::spawn(crate::admin::serve_admin(
            gateway.clone(),
            l,
            rx.clone(),
        )));
    }
    if let PolicySource::File(_) = &source {
        tokio::spawn(watch_policy_files(
            gateway.clone(),
            source.clone(),
            rx.clone(),
        ));
    }
    Ok(RunningGateway {
        proxy_addrs,
        tls_addr,
        admin_addr,
        gateway,
        source,
        shutdown: tx,
        tasks,
    })
}

/// Binds the listeners and starts serving with `policy` (from `settings.policy`).
pub async fn start(settings: Settings, policy: Policy) -> Result<RunningGateway, String> {
    let source = PolicySource::for_settings(&settings);
    start_with_source(settings, policy, source).await
}

/// A loud line when nobody signs in: every client is whoever its network says
/// (the built-in and container defaults), so the audit log cannot tell people
/// apart and a role follows a desk, not a person.
fn warn_if_identified_by_network_only(settings: &Settings) {
    let id = &settings.identity;
    if id.basic.is_some() || id.kerberos.is_some() || id.trusted_header.is_some() {
        return;
    }
    for n in &id.networks {
        tracing::warn!(
            network = %n.cidr,
            user = %n.user,
            groups = ?n.groups,
            "every client in this network is identified as this one user: nobody signs in, so the audit log cannot tell people apart. Configure `identity:` (kerberos, basic or trusted_header; docs/operations.md, identity) before real use"
        );
    }
}

/// `socialgate run`: serve until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> Result<(), String> {
    let report = startup_checks(&settings);
    let problems = report.problems();
    let (Some(policy), true) = (report.policy, problems.is_empty()) else {
        return Err(format!(
            "nothing was started:\n{}\n(`socialgate check --settings FILE` runs these checks without starting)",
            problems.join("\n")
        ));
    };
    let source = report.source;
    tracing::info!(policy = %source.describe(), version = %policy.version, rules = policy.rules.len(), sites = policy.sites.len(), "policy loaded");
    for w in &policy.warnings {
        tracing::warn!("{w}");
    }
    warn_if_identified_by_network_only(&settings);
    settings.pages.warn_untranslated();
    let running = start_with_source(settings, policy, source).await?;
    for a in &running.proxy_addrs {
        tracing::info!(address = %a, "proxy listening; point browsers at it, e.g. curl -x http://{a} http://example.com/");
    }
    if let Some(a) = running.admin_addr {
        tracing::info!(address = %a, "admin listening: /metrics /healthz /readyz /proxy.pac /ca.crt");
    }
    wait_for_signals(&running).await;
    tracing::info!(
        "stopping: no new connections; requests in flight have {}s to finish",
        SHUTDOWN_GRACE.as_secs()
    );
    running.stop().await;
    tracing::info!("stopped; the audit log is flushed");
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signals(running: &RunningGateway) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut term), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::user_defined1()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => { running.reload(); }
            _ = usr1.recv() => running.gateway.audit.reopen(),
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_running: &RunningGateway) {
    let _ = tokio::signal::ctrl_c().await;
}

/// Reloads the policy and the htpasswd file; on any error the old ones stay.
/// Returns whether the policy files were accepted. Each is logged and counted
/// as itself: a policy whose version did not change is "unchanged" (not a
/// policy reload), and the htpasswd file has its own log line and counter.
pub fn reload(gw: &Gateway, source: &PolicySource) -> bool {
    let ok = reload_policy(gw, source);
    reload_htpasswd(gw);
    ok
}

/// The policy half of [`reload`].
fn reload_policy(gw: &Gateway, source: &PolicySource) -> bool {
    match load_checked_policy(source) {
        Ok(p) => {
            let before = gw.policy().version.clone();
            gw.metrics.record_policy_load(true);
            if let Ok(mut f) = gw.reload_failure.write() {
                *f = None;
            }
            for w in &p.warnings {
                tracing::warn!("{w}");
            }
            if p.version == before {
                tracing::info!(version = %p.version, "policy files read again: unchanged");
            } else {
                tracing::info!(version = %p.version, previous = %before, "policy reloaded");
                gw.set_policy(p);
                gw.metrics.policy_reloads.with_label_values(&["ok"]).inc();
            }
            true
        }
        Err(errs) => {
            for e in &errs {
                tracing::error!("{e}");
            }
            tracing::error!("the new policy was not loaded; the previous one stays in force. Fix the errors above; the file is watched (or send SIGHUP).");
            gw.metrics.record_policy_load(false);
            gw.metrics
                .policy_reloads
                .with_label_values(&["error"])
                .inc();
            if let Ok(mut f) = gw.reload_failure.write() {
                let since = f.as_ref().map_or_else(chrono::Utc::now, |old| old.since);
                *f = Some(crate::proxy::gateway::ReloadFailure {
                    since,
                    error: errs.join("\n"),
                });
            }
            false
        }
    }
}

/// The htpasswd half of [`reload`] (nothing without `identity.basic`).
fn reload_htpasswd(gw: &Gateway) {
    let Some(b) = &gw.settings.identity.basic else {
        return;
    };
    match gw.identity.reload_htpasswd() {
        Ok(()) => {
            tracing::info!(file = %b.htpasswd.display(), "htpasswd file reloaded");
            gw.metrics.htpasswd_reloads.with_label_values(&["ok"]).inc();
        }
        Err(e) => {
            tracing::error!("{e}; the previous htpasswd file stays in force");
            gw.metrics
                .htpasswd_reloads
                .with_label_values(&["error"])
                .inc();
        }
    }
}

/// What the watcher compares: the modification time and length of each file
/// the policy was built from, and what each `include` pattern matches now (so
/// a file added to `include: [sites/*.yaml]` is noticed, and a removed one).
#[derive(PartialEq, Eq)]
struct PolicyFilesState {
    files: Vec<Option<(SystemTime, u64)>>,
    matches: Vec<Vec<String>>,
}

impl PolicyFilesState {
    fn of(policy: &Policy) -> PolicyFilesState {
        use crate::policy::sources::PolicyFiles;
        PolicyFilesState {
            files: policy
                .files
                .iter()
                .map(|f| {
                    std::fs::metadata(f)
                        .ok()
                        .and_then(|m| m.modified().ok().map(|t| (t, m.len())))
                })
                .collect(),
            matches: policy
                .include_patterns
                .iter()
                .map(|p| FsFiles.expand(p).unwrap_or_default())
                .collect(),
        }
    }
}

/// Polls the policy's files and include patterns every second; reloads when
/// one changes.
async fn watch_policy_files(
    gw: Arc<Gateway>,
    source: PolicySource,
    mut shutdown: watch::Receiver<bool>,
) {
    // After a failed reload the policy in force is still the old one, so this
    // compares against the files as they were when last read.
    let mut seen = PolicyFilesState::of(&gw.policy());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
        let now = PolicyFilesState::of(&gw.policy());
        if now != seen {
            tracing::info!(
                "a policy file changed (or an include pattern matches other files); reloading"
            );
            reload(&gw, &source);
            // After a failed reload this is the broken state: nothing is retried
            // until a file changes again.
            seen = PolicyFilesState::of(&gw.policy());
        }
    }
}
