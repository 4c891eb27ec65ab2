//! Starting and stopping a gateway: load the policy, bind the listeners, serve,
//! reload the policy on SIGHUP, stop on SIGTERM. Integration tests use `start`
//! with port 0 to run a real gateway in-process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::policy::selftest::run_tests;
use crate::policy::sources::{EmbeddedFiles, FsFiles, BUILTIN_POLICY};
use crate::policy::{load_policy, Policy};
use crate::proxy::server::serve_proxy;
use crate::proxy::Gateway;
use crate::settings::Settings;

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

/// Loads, compiles and self-tests a policy. Every problem is one line of the error.
pub fn load_checked_policy(source: &PolicySource) -> Result<Policy, Vec<String>> {
    let policy = match source {
        PolicySource::File(p) => load_policy(&p.display().to_string(), &FsFiles),
        PolicySource::BuiltIn => load_policy(BUILTIN_POLICY, &EmbeddedFiles),
    }
    .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let failures = run_tests(&policy);
    if failures.is_empty() {
        Ok(policy)
    } else {
        Err(failures.iter().map(ToString::to_string).collect())
    }
}

/// A gateway running in this process.
pub struct RunningGateway {
    pub proxy_addrs: Vec<SocketAddr>,
    pub gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    /// The first proxy address.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addrs[0]
    }

    /// Stops accepting and waits for the accept loops to end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds the listeners and starts serving with `policy`.
pub async fn start(settings: Settings, policy: Policy) -> Result<RunningGateway, String> {
    let mut listeners = Vec::new();
    for addr in &settings.listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e} (is another proxy running there? change `listen` in socialgate.yaml)"))?;
        listeners.push(l);
    }
    let mut own: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let proxy_addrs = own.clone();
    if let Some(a) = settings.admin_listen {
        own.push(a);
    }
    let issuer = Arc::new(crate::tls::LeafIssuer::new(
        Arc::new(load_ca(&settings)?),
        crate::tls::issuer::DEFAULT_CAPACITY,
    ));
    let gateway = Arc::new(Gateway::new(settings, policy, own, issuer)?);
    let (tx, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(serve_proxy(gateway.clone(), l, rx.clone())));
    }
    Ok(RunningGateway {
        proxy_addrs,
        gateway,
        shutdown: tx,
        tasks,
    })
}

/// Loads the CA, creating it when both of its files are missing.
pub fn load_ca(settings: &Settings) -> Result<crate::tls::CertificateAuthority, String> {
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

/// `socialgate run`: serve until SIGTERM or Ctrl-C; reload on SIGHUP.
pub async fn run(settings: Settings) -> Result<(), String> {
    let source = PolicySource::for_settings(&settings);
    let policy = load_checked_policy(&source).map_err(|errs| {
        format!(
            "the policy {} cannot be used:\n{}",
            source.describe(),
            errs.join("\n")
        )
    })?;
    tracing::info!(policy = %source.describe(), version = %policy.version, rules = policy.rules.len(), sites = policy.sites.len(), "policy loaded");
    let running = start(settings, policy).await?;
    for a in &running.proxy_addrs {
        tracing::info!(address = %a, "proxy listening; point browsers at it, e.g. curl -x http://{a} http://example.com/");
    }
    wait_for_signals(&running, &source).await;
    tracing::info!("stopping: no new connections; requests in flight finish");
    running.stop().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signals(running: &RunningGateway, source: &PolicySource) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut term)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => reload(running, source),
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_running: &RunningGateway, _source: &PolicySource) {
    let _ = tokio::signal::ctrl_c().await;
}

/// Reloads the policy and the htpasswd file; on any error the old ones stay.
pub fn reload(running: &RunningGateway, source: &PolicySource) {
    match load_checked_policy(source) {
        Ok(p) => {
            tracing::info!(version = %p.version, "policy reloaded");
            running.gateway.set_policy(p);
        }
        Err(errs) => {
            for e in errs {
                tracing::error!("{e}");
            }
            tracing::error!("the new policy was not loaded; the previous one stays in force. Fix the errors above and send SIGHUP again.");
        }
    }
    if let Err(e) = running.gateway.identity.reload_htpasswd() {
        tracing::error!("{e}; the previous htpasswd file stays in force");
    }
}
