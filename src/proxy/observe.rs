//! Accounting for one request: the audit record and the metrics, filled in as the
//! request is identified and decided, and completed once. A response the gateway
//! makes itself is recorded before it is sent; a forwarded response is recorded
//! when its body ends (or the client goes away), with the bytes counted on the way.
//! Which is which is told by the [`GatewayMade`] extension that `respond` sets,
//! never by a header an upstream could send. Called by `respond` (refusal
//! fields), the pipeline and the handlers.

use std::borrow::Cow;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::body::{BoxError, ProxyBody};
use super::gateway::Gateway;
use crate::audit::AuditRecord;
use crate::identity::Principal;
use crate::policy::Action;
use crate::verdict::Verdict;

/// Marks a response the gateway made itself (in its `http::Extensions`).
#[derive(Debug, Clone, Copy)]
pub struct GatewayMade;

/// The record of one request in progress.
#[derive(Debug)]
pub struct RequestLog {
    start: Instant,
    record: AuditRecord,
    /// First role, for the metric label (`none` until decided).
    role: Cow<'static, str>,
    /// The account's metric label (set name, `other`, `unknown`).
    account: Cow<'static, str>,
    /// The identified client's groups (for the roles of a record refused
    /// before any decision); `None` until the client is identified.
    groups: Option<Vec<String>>,
    decided: bool,
    done: bool,
    /// Missing credentials are counted, not audited.
    skip_audit: bool,
    /// Completed by a tunnel when it closes, not when the response is sent.
    deferred: bool,
}

/// Shared between the handler and the response body.
pub type SharedLog = Arc<Mutex<RequestLog>>;

impl RequestLog {
    pub fn new(
        reference: &str,
        arrived: chrono::DateTime<chrono::Utc>,
        client_ip: IpAddr,
        method: &http::Method,
        host: String,
        path: &str,
    ) -> SharedLog {
        Arc::new(Mutex::new(RequestLog {
            start: Instant::now(),
            record: AuditRecord {
                ts: arrived,
                reference: reference.to_string(),
                client_ip: match crate::net_guard::canonical(client_ip) {
                    IpAddr::V4(v4) => crate::policy::host::dotted_quad(v4),
                    ip => ip.to_string(),
                },
                method: method_name(method),
                host,
                path: path.to_string(),
                // `unlisted` unless a decision names the site (filled in by
                // `finish`, so most records never allocate it).
                site: String::new(),
                ..Default::default()
            },
            role: Cow::Borrowed("none"),
            account: Cow::Borrowed("unknown"),
            groups: None,
            decided: false,
            done: false,
            skip_audit: false,
            deferred: false,
        }))
    }
}

/// The method as the audit writes it: a standard one without an allocation.
fn method_name(method: &http::Method) -> Cow<'static, str> {
    use http::Method;
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::PATCH, "PATCH"),
        (Method::TRACE, "TRACE"),
    ];
    match STANDARD.iter().find(|(m, _)| m == method) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(method.as_str().to_string()),
    }
}

fn with<R>(log: &SharedLog, f: impl FnOnce(&mut RequestLog) -> R) -> R {
    match log.lock() {
        Ok(mut l) => f(&mut l),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// The client was identified.
pub fn identified(log: &SharedLog, principal: &Principal) {
    with(log, |l| {
        l.record.user = Some(principal.user.clone());
        l.groups = Some(principal.groups.clone());
    });
}

/// A record completed without a policy decision (a buffering-budget 503, an
/// acknowledgement, a guard refusal) still names the site its host belongs
/// to and, for an identified client, its roles, so the audit says who was
/// refused where.
fn fill_undecided(gw: &Gateway, record: &mut AuditRecord, groups: Option<&[String]>) {
    let policy = gw.policy();
    if record.site == "unlisted" {
        if let Some(site) =
            crate::policy::normalize_host(&record.host).and_then(|h| policy.site_for(&h))
        {
            record.site = site.name.clone();
        }
    }
    if let (Some(user), Some(groups), true) = (&record.user, groups, record.roles.is_empty()) {
        record.roles = policy.role_names(policy.role_mask(user, groups));
    }
}

/// The request was decided (and scanned): record it and count dry runs and findings.
pub fn decided(gw: &Gateway, log: &SharedLog, verdict: &Verdict) {
    let d = &verdict.decision;
    for dr in &d.dry_run {
        gw.metrics
            .dry_run
            .with_label_values(&[dr.rule.as_str(), dr.action])
            .inc();
    }
    for f in &verdict.findings {
        gw.metrics
            .dlp_findings
            .with_label_values(&[f.detector.as_str(), f.on_finding])
            .inc();
    }
    with(log, |l| {
        l.decided = true;
        l.role = Cow::Owned(d.first_role().to_string());
        l.record.roles = d.roles.clone();
        l.record.site = d.site.clone();
        l.record.activity = d.activity.clone();
        l.record.action = Cow::Borrowed(d.action.as_str());
        l.record.rule = d.rule.clone();
        l.record.dry_run = d.dry_run.clone();
        l.record.dlp = verdict.findings.clone();
        l.record.account = d.account.audit();
        l.account = match &d.account {
            crate::policy::AccountSeen::Unknown => Cow::Borrowed("unknown"),
            crate::policy::AccountSeen::Other => Cow::Borrowed("other"),
            seen => Cow::Owned(seen.label().to_string()),
        };
    });
}

/// Counts which catalogue matcher named the activity of a request decided on
/// `policy` (the drift metrics) and records it as the audit field `matched`.
pub fn matched(gw: &Gateway, log: &SharedLog, policy: &crate::policy::Policy, verdict: &Verdict) {
    let label = gw.drift().count(&gw.metrics, policy, &verdict.decision);
    if !label.is_empty() {
        with(log, |l| l.record.matched = label);
    }
}

/// A WebSocket message was scanned: count its findings and add them to the
/// upgrade's record (one entry per detector, the first masked sample kept).
pub fn message_scanned(gw: &Gateway, log: &SharedLog, findings: &[crate::verdict::DlpFinding]) {
    if findings.is_empty() {
        return;
    }
    for f in findings {
        gw.metrics
            .dlp_findings
            .with_label_values(&[f.detector.as_str(), f.on_finding])
            .inc();
    }
    with(log, |l| {
        for f in findings {
            match l.record.dlp.iter_mut().find(|d| d.detector == f.detector) {
                Some(seen) => seen.count += f.count,
                None => l.record.dlp.push(f.clone()),
            }
        }
    });
}

/// Records the path as the request view normalised it (what the site receives).
pub fn set_path(log: &SharedLog, path: &str) {
    with(log, |l| {
        if l.record.path != path {
            l.record.path = path.to_string();
        }
    });
}

/// Overrides the recorded action (a warn already acknowledged passes as allow).
pub fn set_action(log: &SharedLog, action: Action) {
    with(log, |l| l.record.action = Cow::Borrowed(action.as_str()));
}

/// Records an accepted warn acknowledgement: the site and the rule that asked
/// for it, action `warn` (what the user acknowledged).
pub fn acknowledged(log: &SharedLog, site: &str, rule: &str) {
    with(log, |l| {
        l.record.site = site.to_string();
        l.record.rule = rule.to_string();
        l.record.action = Cow::Borrowed(Action::Warn.as_str());
    });
}

/// Records a refusal made before any policy decision (guard, bad request): it is
/// audited, and counted by its own metric rather than as a policy decision.
pub fn refused(log: &SharedLog, rule: &str) {
    with(log, |l| {
        l.record.action = "deny".into();
        l.record.rule = rule.to_string();
    });
}

/// The record is completed later by whoever holds it (a tunnel, when it closes).
pub fn defer(log: &SharedLog) {
    with(log, |l| l.deferred = true);
}

/// The client sent no credentials: count it, do not audit it.
pub fn not_audited(log: &SharedLog) {
    with(log, |l| l.skip_audit = true);
}

/// Wrong credentials: audited, with the user name only when that user exists.
pub fn bad_credentials(log: &SharedLog, known_user: Option<&str>) {
    with(log, |l| {
        l.record.user = known_user.map(str::to_string);
        l.record.action = "deny".into();
        l.record.rule = "authentication".into();
    });
}

/// Adds to the bytes sent up to the site.
pub fn add_bytes_up(log: &SharedLog, n: u64) {
    with(log, |l| l.record.bytes_up += n);
}

/// Completes the record (once): audit line, request counter, duration, bytes.
pub fn finish(gw: &Gateway, log: &SharedLog, status: u16, bytes_down: u64) {
    let record = with(log, |l| {
        if l.done {
            return None;
        }
        l.done = true;
        l.record.status = status;
        l.record.bytes_down = bytes_down;
        l.record.duration_ms = l.start.elapsed().as_millis() as u64;
        let groups = l.groups.take();
        if l.record.site.is_empty() {
            l.record.site.push_str("unlisted");
        }
        if !l.decided {
            fill_undecided(gw, &mut l.record, groups.as_deref());
        }
        l.record.groups = groups.unwrap_or_default();
        // Finished once: the record can be moved out rather than copied.
        Some((
            std::mem::take(&mut l.record),
            std::mem::take(&mut l.role),
            std::mem::take(&mut l.account),
            l.decided,
            l.start.elapsed(),
            l.skip_audit,
        ))
    });
    let Some((record, role, account, decided, elapsed, skip_audit)) = record else {
        return;
    };
    let m = &gw.metrics;
    if decided {
        let listed = record.site != "unlisted";
        m.count_decided(
            crate::metrics::DecidedLabels {
                role: &role,
                site: &record.site,
                activity: &record.activity,
                action: &record.action,
                account: listed.then_some(&*account),
            },
            elapsed.as_secs_f64(),
        );
    }
    m.bytes_up.inc_by(record.bytes_up);
    m.bytes_down.inc_by(bytes_down);
    if skip_audit {
        return;
    }
    if !gw.audit.write(record) {
        m.audit_dropped.inc();
        tracing::warn!("the audit queue is full: a record was dropped (requests under a dlp rule are refused with 503 until it drains)");
    }
}

/// Records a response: at once when the gateway made it, else when its body ends.
pub fn respond(
    gw: &Arc<Gateway>,
    log: SharedLog,
    resp: http::Response<ProxyBody>,
) -> http::Response<ProxyBody> {
    let status = resp.status().as_u16();
    if with(&log, |l| l.deferred) {
        return resp;
    }
    let made_here = resp.extensions().get::<GatewayMade>().is_some();
    if made_here || status == 101 {
        let len = resp.body().size_hint().exact().unwrap_or(0);
        finish(gw, &log, status, len);
        return resp;
    }
    let gw = gw.clone();
    resp.map(move |body| {
        ObservedBody {
            inner: body,
            counted: 0,
            on_done: Some(Done::Finish { gw, log, status }),
        }
        .boxed_unsync_safe()
    })
}

/// What a counted body reports when it ends (an enum, not a boxed closure:
/// one allocation fewer per body).
enum Done {
    /// A request body: its bytes are added to `bytes_up`.
    Up(SharedLog),
    /// A response body: the record is completed with its status and bytes.
    Finish {
        gw: Arc<Gateway>,
        log: SharedLog,
        status: u16,
    },
}

/// A body that counts its bytes and reports when it ends or is dropped.
pub struct ObservedBody<B> {
    inner: B,
    counted: u64,
    on_done: Option<Done>,
}

impl<B> ObservedBody<B> {
    fn done(&mut self) {
        match self.on_done.take() {
            Some(Done::Up(log)) => add_bytes_up(&log, self.counted),
            Some(Done::Finish { gw, log, status }) => finish(&gw, &log, status, self.counted),
            None => {}
        }
    }
}

impl ObservedBody<ProxyBody> {
    fn boxed_unsync_safe(self) -> ProxyBody {
        http_body_util::BodyExt::boxed(self)
    }
}

/// Counts the bytes of a request body going up.
pub fn count_up(body: ProxyBody, log: SharedLog) -> ProxyBody {
    http_body_util::BodyExt::boxed(ObservedBody {
        inner: body,
        counted: 0,
        on_done: Some(Done::Up(log)),
    })
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        self.done();
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.counted += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.done();
                }
            }
            Poll::Ready(None) => this.done(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
