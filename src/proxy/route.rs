//! Routes one request on the proxy port by method and form: CONNECT to
//! `connect`, absolute-form to `forward`, origin-form (the PAC file, the CA) to
//! `served`. Checks that hold for every form come first (the exact head size,
//! TRACE). Called by `server`; calls the handlers, which never call back.
//! [`check_head`] also by `transparent`.

use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::context::{ClientConn, RequestCtx};
use super::respond::{render, Refusal};
use super::{connect, forward, observe, pipeline, served};

/// The response for `req`; a refusal is rendered here.
pub(crate) async fn route(
    ctx: &RequestCtx,
    conn: Arc<ClientConn>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    dispatch(ctx, conn, req)
        .await
        .unwrap_or_else(|refusal| render(ctx, refusal))
}

async fn dispatch(
    ctx: &RequestCtx,
    conn: Arc<ClientConn>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Refusal> {
    check_head(ctx, &req)?;
    pipeline::check_method(req.method())?;
    if req.method() == Method::CONNECT {
        // Boxed: once per tunnel, and its state would otherwise size every
        // forwarded request's future.
        return Box::pin(connect::handle(ctx, conn, req)).await;
    }
    if req.uri().authority().is_none() {
        observe::not_audited(&ctx.log);
        return served::origin_form(&ctx.gw, &req);
    }
    forward::handle(ctx, &conn, req).await
}

/// `limits.max_header_bytes`, exactly (hyper's read buffer bounds the head
/// only roughly). Also for `transparent`'s plain HTTP port.
pub(crate) fn check_head<B>(ctx: &RequestCtx, req: &Request<B>) -> Result<(), Refusal> {
    let head_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + uri_len(req.uri());
    if head_bytes > ctx.gw.settings.limits.max_header_bytes {
        return Err(Refusal::HeadTooLarge);
    }
    Ok(())
}

/// The length of the request target as the client sent it, without formatting it.
fn uri_len(uri: &http::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len())
}
