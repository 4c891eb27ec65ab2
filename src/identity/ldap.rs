//! Directory groups over LDAP (Active Directory or OpenLDAP), for users from any
//! identity source; optionally Basic passwords checked by binding as the user.
//!
//! - A user's groups come from an attribute on the user entry naming groups by
//!   DN (`groups_from: memberOf`, Active Directory), from a group search
//!   (`group_filter: "(member={dn})"` under `group_base`, default `user_base`;
//!   OpenLDAP), or both.
//! - Answers are cached per user for `cache_for`. Concurrent lookups of one user
//!   share one query (single flight).
//! - When the directory cannot be reached, cached groups keep being served
//!   whatever their age, and a user with nothing cached is in no directory group.
//!   After a failure the directory is not asked again for [`RETRY_AFTER`], so an
//!   outage does not make every request wait for a time-out.
//! - One connection, bound as the service account, is shared by all lookups
//!   (LDAP multiplexes operations); password checks bind on a connection of
//!   their own that is closed straight after.
//! - `ldaps://` trusts the system roots plus `upstream.extra_roots`; plain
//!   `ldap://` is accepted by the settings only to a loopback address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{
    ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions,
};

use crate::metrics::Metrics;
use crate::settings::LdapSettings;

/// How long one lookup (connect, bind and searches) may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the directory is left alone after a failure.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_CACHED: usize = 100_000;

/// A user found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub dn: String,
    /// Group names (the `group_name` attribute), sorted, without duplicates.
    pub groups: Vec<String>,
}

/// A directory failure; `kind` labels `socialgate_directory_errors_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryError {
    Connect(String),
    Tls(String),
    Bind(String),
    Search(String),
    Timeout,
}

impl DirectoryError {
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::Connect(_) => "connect",
            DirectoryError::Tls(_) => "tls",
            DirectoryError::Bind(_) => "bind",
            DirectoryError::Search(_) => "search",
            DirectoryError::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectoryError::Connect(e) => write!(f, "cannot connect to the directory: {e}"),
            DirectoryError::Tls(e) => write!(f, "TLS with the directory failed: {e}"),
            DirectoryError::Bind(e) => {
                write!(f, "the directory refused the service account's bind: {e}")
            }
            DirectoryError::Search(e) => write!(f, "a directory search failed: {e}"),
            DirectoryError::Timeout => write!(
                f,
                "the directory did not answer within {} s",
                LOOKUP_TIMEOUT.as_secs()
            ),
        }
    }
}

/// The outcome of checking a password by binding as the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordCheck {
    Good(UserEntry),
    Wrong,
    UnknownUser,
}

#[derive(Debug, Clone)]
struct Cached {
    entry: Option<UserEntry>,
    at: Instant,
}

type Flight = Arc<tokio::sync::OnceCell<Result<Option<UserEntry>, DirectoryError>>>;

/// The directory client with its group cache.
pub struct Directory {
    settings: LdapSettings,
    password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: tokio::sync::Mutex<Option<Ldap>>,
    cache: Mutex<HashMap<String, Cached>>,
    inflight: Mutex<HashMap<String, Flight>>,
    down_until: Mutex<Option<Instant>>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Reads the service password and prepares TLS; does not connect (the first
    /// lookup does, and an outage at start-up must not stop the gateway).
    pub fn new(
        settings: LdapSettings,
        extra_roots: &[std::path::PathBuf],
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Directory, String> {
        let password = match &settings.bind_password_file {
            None => None,
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    format!(
                        "identity.ldap.bind_password_file: cannot read {}: {e}",
                        p.display()
                    )
                })?;
                let pw = text.trim_end_matches(['\r', '\n']).to_string();
                if pw.is_empty() {
                    return Err(format!(
                        "identity.ldap.bind_password_file: {} is empty",
                        p.display()
                    ));
                }
                Some(pw)
            }
        };
        let tls = if settings.url.to_ascii_lowercase().starts_with("ldaps:") {
            let mut config = crate::tls::client_tls_config(extra_roots)
                .map_err(|e| format!("identity.ldap: {e}"))?;
            config.alpn_protocols.clear();
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Directory {
            settings,
            password,
            tls,
            conn: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            down_until: Mutex::new(None),
            metrics,
        })
    }

    pub fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    fn count(&self, result: &str) {
        if let Some(m) = &self.metrics {
            m.directory_lookups.with_label_values(&[result]).inc();
        }
    }

    fn count_error(&self, e: &DirectoryError) {
        if let Some(m) = &self.metrics {
            m.directory_errors.with_label_values(&[e.kind()]).inc();
        }
    }

    fn observe(&self, operation: &str, started: Instant) {
        if let Some(m) = &self.metrics {
            m.directory_duration
                .with_label_values(&[operation])
                .observe(started.elapsed().as_secs_f64());
        }
    }

    fn is_down(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .map(|d| d.is_some_and(|until| until > now))
            .unwrap_or(false)
    }

    fn mark_down(&self, e: &DirectoryError) {
        let now = Instant::now();
        if let Ok(mut d) = self.down_until.lock() {
            let was_up = d.is_none_or(|until| until <= now);
            *d = Some(now + RETRY_AFTER);
            if was_up {
                tracing::warn!(url = %self.settings.url, error = %e, "directory unavailable: serving cached groups; users with none cached are in no directory group; retrying in {} s", RETRY_AFTER.as_secs());
            }
        }
    }

    fn mark_up(&self) {
        if let Ok(mut d) = self.down_until.lock() {
            if d.take().is_some() {
                tracing::info!(url = %self.settings.url, "directory reachable again");
            }
        }
    }

    fn cached(&self, user: &str) -> Option<Cached> {
        self.cache.lock().ok().and_then(|c| c.get(user).cloned())
    }

    fn store(&self, user: &str, entry: Option<UserEntry>) {
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= MAX_CACHED {
                let keep = self.settings.cache_for;
                c.retain(|_, v| v.at.elapsed() < keep);
            }
            c.insert(
                user.to_string(),
                Cached {
                    entry,
                    at: Instant::now(),
                },
            );
        }
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// The user's directory groups: cached, fetched, or (directory down) the
    /// last known ones, else none.
    pub async fn groups(&self, user: &str) -> Vec<String> {
        let now = Instant::now();
        let cached = self.cached(user);
        if let Some(c) = &cached {
            if now.duration_since(c.at) < self.settings.cache_for {
                self.count("cached");
                return groups_of(&c.entry);
            }
        }
        let fallback = |this: &Directory| match &cached {
            Some(c) => {
                this.count("stale");
                groups_of(&c.entry)
            }
            None => {
                this.count("unavailable");
                Vec::new()
            }
        };
        if self.is_down(now) {
            return fallback(self);
        }
        // Boxed: the directory round trip is the cold path; inline, its state
        // would size every request's future.
        match Box::pin(self.fetch_single_flight(user)).await {
            Ok(entry) => {
                self.count("fetched");
                groups_of(&entry)
            }
            Err(_) => fallback(self),
        }
    }

    /// One query per user at a time; the answer is cached by whoever ran it.
    async fn fetch_single_flight(&self, user: &str) -> Result<Option<UserEntry>, DirectoryError> {
        let flight: Flight = match self.inflight.lock() {
            Ok(mut m) => m.entry(user.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let result = flight
            .get_or_init(|| async {
                let started = Instant::now();
                let r = self.lookup(user).await;
                self.observe("groups", started);
                match &r {
                    Ok(entry) => {
                        self.mark_up();
                        self.store(user, entry.clone());
                    }
                    Err(e) => {
                        self.count_error(e);
                        self.mark_down(e);
                    }
                }
                r
            })
            .await
            .clone();
        if let Ok(mut m) = self.inflight.lock() {
            if m.get(user).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                m.remove(user);
            }
        }
        result
    }

    /// Looks a user up now, without the cache (for `socialgate check`, and the
    /// single flight above).
    pub async fn lookup(&self, user: &str) -> Result<Option<UserEntry>, DirectoryError> {
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup_inner(user)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.reset().await;
                Err(e)
            }
            Err(_) => {
                self.reset().await;
                Err(DirectoryError::Timeout)
            }
        }
    }

    /// Connects and binds as the service account (for `socialgate check`).
    pub async fn probe(&self) -> Result<(), DirectoryError> {
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.connection()).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(DirectoryError::Timeout),
        }
    }

    async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    async fn open(&self) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(CONNECT_TIMEOUT);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.settings.url)
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("rustls") || text.to_ascii_lowercase().contains("certificate") {
                    DirectoryError::Tls(text)
                } else {
                    DirectoryError::Connect(text)
                }
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "directory connection ended");
            }
        });
        Ok(ldap)
    }

    /// The shared service connection, (re)opened and bound when needed.
    async fn connection(&self) -> Result<Ldap, DirectoryError> {
        let mut guard = self.conn.lock().await;
        if let Some(l) = guard.as_mut() {
            if !l.is_closed() {
                return Ok(l.clone());
            }
        }
        let mut ldap = self.open().await?;
        if let (Some(dn), Some(pw)) = (&self.settings.bind_dn, &self.password) {
            let r = ldap
                .simple_bind(dn, pw)
                .await
                .map_err(|e| DirectoryError::Bind(e.to_string()))?;
            if r.rc != 0 {
                return Err(DirectoryError::Bind(describe_rc(r.rc, &r.text)));
            }
        }
        *guard = Some(ldap.clone());
        Ok(ldap)
    }

    async fn lookup_inner(&self, user: &str) -> Result<Option<UserEntry>, DirectoryError> {
        let mut ldap = self.connection().await?;
        let s = &self.settings;
        let filter = s.user_filter.replace("{user}", &ldap_escape(user));
        let attrs: Vec<&str> = match &s.groups_from {
            Some(a) => vec![a.as_str()],
            None => vec!["1.1"],
        };
        let result = ldap
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(&s.user_base, Scope::Subtree, &filter, attrs)
            .await
            .map_err(|e| DirectoryError::Search(e.to_string()))?;
        let entries = match result.1.rc {
            0 | 10 => entries_of(result.0),
            4 => {
                tracing::warn!(filter = %filter, "more than one directory entry matches the user filter; the user gets no directory groups (make user_filter unique)");
                return Ok(None);
            }
            rc => {
                return Err(DirectoryError::Search(describe_rc(rc, &result.1.text)));
            }
        };
        let entry = match entries.len() {
            0 => return Ok(None),
            1 => entries.into_iter().next(),
            _ => {
                tracing::warn!(filter = %filter, "more than one directory entry matches the user filter; the user gets no directory groups (make user_filter unique)");
                return Ok(None);
            }
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        let mut groups = Vec::new();
        if let Some(attr) = &s.groups_from {
            for dn in values(&entry, attr) {
                match first_rdn(&dn) {
                    Some((t, v)) if t.eq_ignore_ascii_case(&s.group_name) => groups.push(v),
                    _ => {
                        // The RDN is not the naming attribute: read it from the group.
                        let r = ldap
                            .search(
                                &dn,
                                Scope::Base,
                                "(objectClass=*)",
                                vec![s.group_name.as_str()],
                            )
                            .await
                            .map_err(|e| DirectoryError::Search(e.to_string()))?;
                        if r.1.rc == 0 {
                            for g in entries_of(r.0) {
                                groups.extend(values(&g, &s.group_name));
                            }
                        }
                    }
                }
            }
        }
        if let Some(template) = &s.group_filter {
            let filter = template
                .replace("{dn}", &ldap_escape(entry.dn.as_str()))
                .replace("{user}", &ldap_escape(user));
            let r = ldap
                .search(
                    &s.group_base,
                    Scope::Subtree,
                    &filter,
                    vec![s.group_name.as_str()],
                )
                .await
                .map_err(|e| DirectoryError::Search(e.to_string()))?;
            match r.1.rc {
                0 | 10 => {
                    for g in entries_of(r.0) {
                        groups.extend(values(&g, &s.group_name));
                    }
                }
                rc => return Err(DirectoryError::Search(describe_rc(rc, &r.1.text))),
            }
        }
        groups.sort();
        groups.dedup();
        Ok(Some(UserEntry {
            dn: entry.dn,
            groups,
        }))
    }

    /// Checks a password by binding as the user on a connection of its own.
    /// An empty password is always wrong (an LDAP bind with one is anonymous).
    pub async fn verify_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<PasswordCheck, DirectoryError> {
        let started = Instant::now();
        let r = tokio::time::timeout(LOOKUP_TIMEOUT, self.verify_inner(user, password)).await;
        self.observe("password", started);
        let r = r.unwrap_or(Err(DirectoryError::Timeout));
        if let Err(e) = &r {
            self.count_error(e);
        }
        r
    }

    async fn verify_inner(
        &self,
        user: &str,
        password: &str,
    ) -> Result<PasswordCheck, DirectoryError> {
        let entry = match self.lookup_inner(user).await {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(PasswordCheck::UnknownUser),
            Err(e) => {
                self.reset().await;
                return Err(e);
            }
        };
        if password.is_empty() {
            return Ok(PasswordCheck::Wrong);
        }
        let mut ldap = self.open().await?;
        let r = ldap.simple_bind(&entry.dn, password).await;
        let _ = ldap.unbind().await;
        let r = r.map_err(|e| DirectoryError::Bind(e.to_string()))?;
        match r.rc {
            0 => {
                self.store(user, Some(entry.clone()));
                Ok(PasswordCheck::Good(entry))
            }
            // invalidCredentials; AD adds data 52e/532/533/701/773/775 in the text.
            49 => Ok(PasswordCheck::Wrong),
            rc => Err(DirectoryError::Bind(describe_rc(rc, &r.text))),
        }
    }
}

fn groups_of(entry: &Option<UserEntry>) -> Vec<String> {
    entry.as_ref().map(|e| e.groups.clone()).unwrap_or_default()
}

/// Search entries, skipping referrals; an entry ldap3 cannot decode is skipped
/// rather than allowed to panic the request.
fn entries_of(raw: Vec<ldap3::ResultEntry>) -> Vec<SearchEntry> {
    raw.into_iter()
        .filter(|e| !e.is_ref() && !e.is_intermediate())
        .filter_map(|e| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(e)))
                .ok()
        })
        .collect()
}

/// An attribute's values, its name compared case-insensitively.
fn values(entry: &SearchEntry, attr: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect()
}

fn describe_rc(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        10 => "referral",
        32 => "noSuchObject (is user_base right?)",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        87 => "filterError (check user_filter / group_filter)",
        _ => "error",
    };
    if text.is_empty() {
        format!("LDAP result {rc} {name}")
    } else {
        format!("LDAP result {rc} {name}: {text}")
    }
}

/// The first RDN of a DN as (attribute type, unescaped value):
/// `CN=Press Office\, North,OU=Groups,...` → (`CN`, `Press Office, North`).
pub fn first_rdn(dn: &str) -> Option<(String, String)> {
    let (t, rest) = dn.split_once('=')?;
    let mut value = Vec::new();
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                match hex {
                    Some(b) => {
                        value.push(b);
                        i += 3;
                    }
                    None => {
                        value.push(*bytes.get(i + 1)?);
                        i += 2;
                    }
                }
            }
            b',' | b'+' => break,
            b => {
                value.push(b);
                i += 1;
            }
        }
    }
    let value = String::from_utf8(value).ok()?;
    let value = value.trim().to_string();
    if value.is_empty() {
        return None;
    }
    Some((t.trim().to_string(), value))
}

/// `socialgate check --settings`: connects to the directory as configured and,
/// given a `user`, looks them up; reports on stdout and returns the number of
/// problems (a user not found is a warning, not a problem).
pub(crate) fn check_directory(
    l: &LdapSettings,
    extra_roots: &[std::path::PathBuf],
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
    let d = match Directory::new(l.clone(), extra_roots, None) {
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
                list_or_none(&entry.groups)
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

/// `a, b, c`, or `(none)` for an empty list: how `socialgate check` and
/// `explain` print groups and roles.
pub(crate) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdns() {
        assert_eq!(
            first_rdn("CN=Press Office\\, North,OU=Groups,DC=council,DC=example"),
            Some(("CN".into(), "Press Office, North".into()))
        );
        assert_eq!(
            first_rdn("cn=all-staff,ou=groups,dc=x"),
            Some(("cn".into(), "all-staff".into()))
        );
        assert_eq!(
            first_rdn("cn=caf\\c3\\a9,dc=x").map(|r| r.1),
            Some("café".into())
        );
        assert_eq!(first_rdn("nonsense"), None);
        assert_eq!(first_rdn("cn=,dc=x"), None);
    }

    fn settings(url: &str) -> LdapSettings {
        LdapSettings {
            url: url.into(),
            bind_dn: None,
            bind_password_file: None,
            user_base: "dc=x".into(),
            group_base: "dc=x".into(),
            user_filter: "(uid={user})".into(),
            groups_from: Some("memberOf".into()),
            group_filter: None,
            group_name: "cn".into(),
            cache_for: Duration::from_secs(60),
            verify_basic_passwords: false,
        }
    }

    #[tokio::test]
    async fn outage_serves_nothing_and_fails_fast() {
        // A port nothing listens on: connection refused.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let d = Directory::new(settings(&format!("ldap://127.0.0.1:{port}")), &[], None).unwrap();
        assert!(d.groups("alice").await.is_empty());
        assert!(d.is_down(Instant::now()));
        // While down, no connection is tried: the answer is immediate.
        let t = Instant::now();
        assert!(d.groups("bob").await.is_empty());
        assert!(t.elapsed() < Duration::from_millis(100));
        // Cached groups are served whatever their age while the directory is down.
        d.store(
            "carol",
            Some(UserEntry {
                dn: "uid=carol".into(),
                groups: vec!["g".into()],
            }),
        );
        if let Ok(mut c) = d.cache.lock() {
            if let Some(e) = c.get_mut("carol") {
                e.at = Instant::now()
                    .checked_sub(Duration::from_secs(120))
                    .unwrap_or(e.at);
            }
        }
        assert_eq!(d.groups("carol").await, vec!["g".to_string()]);
    }
}
