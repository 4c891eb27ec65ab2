//! The proxy layer: all network I/O. It identifies the client, feeds the pure
//! policy and DLP engines with facts, and turns their verdict into a forwarded
//! request, a tunnel or a refusal rendered by `respond`.
//!
//! One pipeline, modules in dependency order (each uses only those above it):
//!
//! - leaves: `body` (bodies, bounded reads, the buffering budget), `headers`
//!   (hygiene, HTML preference), `dns`, `relay`, `idle` (idle connections),
//!   `parent` (the parent proxy's CONNECT and the upstream byte stream),
//!   `deferred` (notices of denied background requests), `coalesce` (fewer
//!   writes on an HTTP/2 connection while several requests are in flight);
//! - `upstream` (resolve, guard, dial; upstream failure kinds), `warn` (tokens);
//! - `original` (a transparent connection's original destination: the loop
//!   check, the Host/SNI agreement, the pinned dial), used by the legs;
//! - `gateway` (shared state), `observe` (audit and metrics of one request);
//! - `context` (the request context, the client connection), `respond` (typed
//!   refusals and their one renderer), `served` (the PAC file and the CA that
//!   the proxy port, and the admin listener, serve);
//! - `pipeline` (the per-request steps: admit, decide, verdict, acknowledge, the
//!   upstream request), called by the handlers;
//! - `websocket` (the relays after a 101: bytes, or messages scanned under `dlp`);
//! - handlers: `forward` (plain HTTP), `intercept` (inside a tunnel), `connect`
//!   (CONNECT: plain relay or `intercept`);
//! - `route` (by method and form), `server` (the listener);
//! - `transparent` (the `listen_transparent` listeners: redirected HTTP and
//!   TLS, handed to the same pipeline, `forward`'s leg and `intercept`).

pub(crate) mod body;
pub(crate) mod coalesce;
pub(crate) mod connect;
pub(crate) mod context;
pub(crate) mod deferred;
pub(crate) mod dns;
pub(crate) mod forward;
pub(crate) mod gateway;
pub(crate) mod headers;
pub(crate) mod idle;
pub(crate) mod intercept;
pub(crate) mod observe;
pub(crate) mod original;
pub(crate) mod parent;
pub(crate) mod pipeline;
pub(crate) mod relay;
pub(crate) mod respond;
pub(crate) mod route;
pub(crate) mod served;
pub(crate) mod server;
pub(crate) mod transparent;
pub(crate) mod upstream;
pub(crate) mod warn;
pub(crate) mod websocket;

// Nothing outside the crate uses the proxy's modules; the gateway state and
// the body type are named by `runtime`'s public `RunningGateway` and by `admin`.
pub use body::{BoxError, ProxyBody};
pub use gateway::Gateway;
