//! The WebSocket relays of an intercepted tunnel, after the site's 101.
//!
//! Under a rule without `dlp:`, bytes are copied both ways ([`relay_bytes`]).
//! Under a rule with `dlp:` ([`relay_scanned`]), both upgraded connections are
//! framed by tungstenite (server role towards the client, client role towards
//! the site): every client-to-site message (text or binary, fragments joined by
//! the codec, at most `limits.max_scan_bytes`) is scanned whole before it is
//! sent; site-to-client messages and control frames (ping, pong, close) pass
//! as they are. A blocking finding, a message that cannot be scanned or one
//! over the limit closes both sockets (1008 policy violation, 1009 message too
//! big to the client) and nothing of that message reaches the site. The audit
//! record of the upgrade is completed when the socket ends: its findings
//! (masked samples), and the close code as its status when the gateway closed.
//!
//! permessage-deflate: tungstenite does not implement it and refuses frames
//! with reserved bits, so under a `dlp` rule the pipeline strips the client's
//! `Sec-WebSocket-Extensions` offer and [`scanned_handshake`] refuses a 101 that
//! names an extension anyway (fail closed: no compressed message can pass).
//!
//! Limits: one task per socket; a message being read is held in memory up to
//! the scan limit. A whole client message counts against the buffering budget
//! and the user's share of it while it is scanned and sent (1013 when none is
//! left); the frames of a message still being assembled by the codec do not. Called by `intercept`; uses `observe`, `body`, `gateway`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{header, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::body::{self, ProxyBody};
use super::gateway::Gateway;
use super::observe::{self, SharedLog};
use crate::policy::{Action, Decision, Policy};
use crate::verdict::{apply_dlp, Content, DlpFinding, ScanRefusal};

/// How long a close handshake may take once the relay has ended.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What a scanned relay needs: the deciding rule (with its DLP profile) and the
/// audit record of the upgrade, completed when the socket ends.
pub(crate) struct MessageScan {
    pub gw: Arc<Gateway>,
    /// The policy the upgrade was decided on: a reload during the socket does
    /// not change how its messages are scanned (nor drop the profile).
    pub policy: Arc<Policy>,
    pub decision: Decision,
    pub log: SharedLog,
    /// The signed-in user: a message held for its scan counts against this
    /// user's share of `limits.max_buffered_bytes`.
    pub user: String,
}

/// The client's 101: the site's, with its WebSocket headers (and only those).
fn switching(upstream_resp: &Response<Incoming>, extensions: bool) -> Response<ProxyBody> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for name in [
        header::UPGRADE,
        header::CONNECTION,
        header::SEC_WEBSOCKET_ACCEPT,
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
    ] {
        if name == header::SEC_WEBSOCKET_EXTENSIONS && !extensions {
            continue;
        }
        if let Some(v) = upstream_resp.headers().get(&name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    resp
}

/// Does the site's 101 name an extension (which a scanned relay cannot undo)?
pub(crate) fn names_extension(upstream_resp: &Response<Incoming>) -> bool {
    upstream_resp
        .headers()
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .any(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// Answers the client's upgrade with the site's 101 and copies bytes both ways.
pub(crate) fn relay_bytes(
    client: OnUpgrade,
    upstream_resp: Response<Incoming>,
) -> Response<ProxyBody> {
    let resp = switching(&upstream_resp, true);
    let server = hyper::upgrade::on(upstream_resp);
    tokio::spawn(async move {
        if let (Ok(c), Ok(s)) = (client.await, server.await) {
            let mut c = TokioIo::new(c);
            let mut s = TokioIo::new(s);
            let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
        }
    });
    resp
}

/// Answers the client's upgrade with the site's 101 and relays messages,
/// scanning each one the client sends. The caller has checked that the site
/// named no extension. The audit record is deferred to the end of the socket.
pub(crate) fn relay_scanned(
    client: OnUpgrade,
    upstream_resp: Response<Incoming>,
    scan: MessageScan,
) -> Response<ProxyBody> {
    let resp = switching(&upstream_resp, false);
    let server = hyper::upgrade::on(upstream_resp);
    observe::defer(&scan.log);
    tokio::spawn(async move {
        let (ended, bytes_down) = match (client.await, server.await) {
            (Ok(c), Ok(s)) => relay_messages(TokioIo::new(c), TokioIo::new(s), &scan).await,
            _ => (Ended::Clean, 0),
        };
        let status = match &ended {
            Ended::Clean => 101,
            Ended::Closed(code, _) => u16::from(*code),
        };
        if let Ended::Closed(_, why) = &ended {
            tracing::info!(rule = %scan.decision.rule, site = %scan.decision.site, status, "WebSocket closed by the gateway: {why}");
        }
        observe::finish(&scan.gw, &scan.log, status, bytes_down);
    });
    resp
}

/// How a scanned socket ended.
enum Ended {
    /// Either side closed or went away.
    Clean,
    /// The gateway closed it with this code (and why, for the log).
    Closed(CloseCode, String),
}

/// What became of one client message.
enum Judged {
    Forward,
    Refuse(CloseCode, &'static str, String),
}

/// Scans one client message under the rule's profile and records what it found.
fn judge(scan: &MessageScan, data: &[u8], text: bool) -> Judged {
    let gw = &scan.gw;
    let policy = &scan.policy;
    let max = gw.settings.limits.max_scan_bytes;
    if data.len() > max {
        return refuse_too_big(scan);
    }
    let content = Content {
        content_type: Some(if text {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        }),
        content_encoding: None,
        body: data,
        query: None,
    };
    let verdict = apply_dlp(policy, scan.decision.clone(), Some(content), max);
    observe::message_scanned(gw, &scan.log, &verdict.findings);
    if verdict.decision.action != Action::Deny {
        return Judged::Forward;
    }
    observe::set_action(&scan.log, Action::Deny);
    match verdict.refusal {
        Some(ScanRefusal::TooLarge) => refuse_too_big(scan),
        Some(ScanRefusal::Undecodable(why)) => Judged::Refuse(
            CloseCode::Policy,
            "message cannot be scanned",
            format!("a message could not be scanned ({why})"),
        ),
        None => Judged::Refuse(
            CloseCode::Policy,
            "blocked by policy",
            format!(
                "DLP found {} in a message",
                blocking(&verdict.findings).join(", ")
            ),
        ),
    }
}

fn refuse_too_big(scan: &MessageScan) -> Judged {
    observe::set_action(&scan.log, Action::Deny);
    Judged::Refuse(
        CloseCode::Size,
        "message too big to scan",
        format!(
            "a message is larger than the scan limit ({} bytes)",
            scan.gw.settings.limits.max_scan_bytes
        ),
    )
}

fn blocking(findings: &[DlpFinding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.on_finding == "block")
        .map(|f| f.detector.clone())
        .collect()
}

/// Relays messages until either side ends or a client message is refused;
/// returns how it ended and the payload bytes sent to the client.
async fn relay_messages<C, S>(client: C, site: S, scan: &MessageScan) -> (Ended, u64)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let max = scan.gw.settings.limits.max_scan_bytes;
    // The codec joins fragments and stops a message (or frame) past the limit
    // before it is whole: nothing of it has been sent by then.
    let from_client = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let client = WebSocketStream::from_raw_socket(client, Role::Server, Some(from_client)).await;
    let site = WebSocketStream::from_raw_socket(site, Role::Client, None).await;
    let (mut client_tx, mut client_rx) = client.split();
    let (mut site_tx, mut site_rx) = site.split();

    let upward = async {
        while let Some(msg) = client_rx.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(WsError::Capacity(_)) => return Some(refuse_too_big(scan)),
                // The client went away without a close: nothing to refuse.
                Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => return None,
                Err(WsError::Utf8(_)) => {
                    return Some(Judged::Refuse(
                        CloseCode::Invalid,
                        "invalid text",
                        "the client sent a text message that is not UTF-8".to_string(),
                    ))
                }
                Err(WsError::Protocol(e)) => {
                    return Some(Judged::Refuse(
                        CloseCode::Protocol,
                        "protocol error",
                        format!("the client broke the WebSocket protocol ({e})"),
                    ))
                }
                Err(_) => return None,
            };
            // A message is held whole while it is scanned and sent: it takes
            // its size from the buffering budget (and the user's share) until
            // then; with none left the socket is closed 1013 (try again later).
            let held = match &msg {
                Message::Text(t) => Some(t.len()),
                Message::Binary(b) => Some(b.len()),
                _ => None,
            };
            let _reservation = match held {
                Some(n) => match scan.gw.buffer_budget.reserve(&scan.user, n) {
                    Some(r) => Some(r),
                    None => {
                        return Some(Judged::Refuse(
                            CloseCode::Again,
                            "gateway busy, try again",
                            "the buffering budget (limits.max_buffered_bytes or the user's share) is used up".to_string(),
                        ))
                    }
                },
                None => None,
            };
            let judged = match &msg {
                Message::Text(t) => judge(scan, t.as_bytes(), true),
                Message::Binary(b) => judge(scan, b, false),
                _ => Judged::Forward,
            };
            if let Judged::Refuse(..) = judged {
                return Some(judged);
            }
            let closing = matches!(msg, Message::Close(_));
            let len = data_len(&msg);
            if site_tx.send(msg).await.is_err() || closing {
                return None;
            }
            observe::add_bytes_up(&scan.log, len);
        }
        None
    };
    let mut bytes_down = 0u64;
    let downward = async {
        while let Some(Ok(msg)) = site_rx.next().await {
            let closing = matches!(msg, Message::Close(_));
            let len = data_len(&msg);
            if client_tx.send(msg).await.is_err() || closing {
                return;
            }
            bytes_down += len;
        }
    };
    let refused = tokio::select! {
        r = upward => r,
        () = downward => None,
    };
    let ended = match refused {
        Some(Judged::Refuse(code, reason, why)) => {
            let close = |code, reason: &'static str| {
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }))
            };
            // The client is told why; the site only that the gateway went away.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = client_tx.send(close(code, reason)).await;
                let _ = site_tx.send(close(CloseCode::Away, "")).await;
            })
            .await;
            Ended::Closed(code, why)
        }
        _ => Ended::Clean,
    };
    // Finish the close handshakes (best effort), then let both connections go.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = client_tx.close().await;
        let _ = site_tx.close().await;
    })
    .await;
    (ended, bytes_down)
}

/// The payload bytes of a data message (control frames are not counted).
fn data_len(msg: &Message) -> u64 {
    match msg {
        Message::Text(t) => t.len() as u64,
        Message::Binary(b) => b.len() as u64,
        _ => 0,
    }
}
