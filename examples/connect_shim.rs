//! A CONNECT shim for load generators that cannot use a proxy (h2load), for the
//! HTTP/2 benchmark workloads W8 and W9 (`scripts/bench/h2_workloads.py`,
//! docs/benchmarks.md).
//!
//! It listens on `127.0.0.1:<--listen>` (default 0: the system picks a port, which
//! is written to `--port-file` once listening). For each accepted connection it
//! connects to the proxy at `--proxy 127.0.0.1:P`, sends `CONNECT <--target> HTTP/1.1`
//! with a `Host` header, reads the response head, requires status 200, and then
//! relays bytes both ways (`copy_bidirectional`) until either side closes. The
//! client's TLS handshake thus goes through the tunnel, so SNI and `:authority` are
//! whatever the client puts there (h2load `--connect-to 127.0.0.1:SHIM
//! https://www.linkedin.com:PORT/...`).
//!
//! Limits: one target for every connection; no proxy authentication; loopback
//! addresses only (`--proxy` must be 127.0.0.0/8 or ::1). A tunnel the proxy
//! refuses is closed at once and counted on stderr. It runs on a current-thread
//! runtime (one core, pinned beside the load generator by the bench) until killed.
//!
//! ```text
//! cargo run --release --example connect_shim -- --proxy 127.0.0.1:3128 \
//!     --target www.linkedin.com:18443 --port-file /tmp/shim.port
//! h2load --connect-to 127.0.0.1:$(cat /tmp/shim.port) https://www.linkedin.com:18443/
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socialgate_testkit::script::{args_or_exit, flag_values, write_atomic};
use socialgate_testkit::upstream::accept_forever;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: connect_shim --proxy 127.0.0.1:PORT --target HOST:PORT \
     [--listen PORT] [--port-file FILE]";

/// The largest CONNECT response head accepted.
const MAX_HEAD: usize = 16 * 1024;

struct Args {
    proxy: SocketAddr,
    target: String,
    listen: u16,
    port_file: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut proxy = None;
    let mut target = None;
    let mut listen = 0;
    let mut port_file = None;
    for (flag, value) in flag_values(USAGE)? {
        match flag.as_str() {
            "--proxy" => {
                let addr: SocketAddr = value
                    .parse()
                    .map_err(|e| format!("--proxy {value}: {e}\n{USAGE}"))?;
                if !addr.ip().is_loopback() {
                    return Err(format!("--proxy {value}: only loopback addresses\n{USAGE}"));
                }
                proxy = Some(addr);
            }
            "--target" => {
                if !value.contains(':') {
                    return Err(format!("--target {value}: needs HOST:PORT\n{USAGE}"));
                }
                target = Some(value);
            }
            "--listen" => {
                listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value}: {e}\n{USAGE}"))?;
            }
            "--port-file" => port_file = Some(value),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        proxy: proxy.ok_or_else(|| format!("--proxy is required\n{USAGE}"))?,
        target: target.ok_or_else(|| format!("--target is required\n{USAGE}"))?,
        listen,
        port_file,
    })
}

/// Opens a tunnel to `target` through the proxy: the proxy stream, and any bytes
/// the proxy sent after the response head (to be given to the client first).
async fn open_tunnel(proxy: SocketAddr, target: &str) -> Result<(TcpStream, Vec<u8>), String> {
    let mut up = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connecting to the proxy {proxy}: {e}"))?;
    let _ = up.set_nodelay(true);
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    up.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("sending CONNECT: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = up
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading the CONNECT response: {e}"))?;
        if n == 0 {
            return Err("the proxy closed before answering CONNECT".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > MAX_HEAD {
            return Err("CONNECT response head too long".into());
        }
    };
    let status_line = head
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim().to_string())
        .unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!("CONNECT refused: {status_line}"));
    }
    Ok((up, head.split_off(end)))
}

async fn relay(
    mut client: TcpStream,
    proxy: SocketAddr,
    target: Arc<str>,
    refused: Arc<AtomicU64>,
) {
    let (mut up, early) = match open_tunnel(proxy, &target).await {
        Ok(t) => t,
        Err(e) => {
            if refused.fetch_add(1, Ordering::Relaxed) < 10 {
                eprintln!("connect_shim: {e}");
            }
            return;
        }
    };
    if !early.is_empty() && client.write_all(&early).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
}

fn main() {
    let args = args_or_exit("connect_shim", parse_args());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", args.listen))
            .await
            .unwrap_or_else(|e| panic!("binding 127.0.0.1:{}: {e}", args.listen));
        let port = listener.local_addr().unwrap().port();
        if let Some(f) = &args.port_file {
            write_atomic(f, &format!("{port}\n"));
        }
        eprintln!(
            "connect_shim: 127.0.0.1:{port} -> CONNECT {} via {}",
            args.target, args.proxy
        );
        let target: Arc<str> = args.target.into();
        let refused = Arc::new(AtomicU64::new(0));
        let proxy = args.proxy;
        accept_forever(listener, move |client| {
            relay(client, proxy, target.clone(), refused.clone())
        })
        .await;
    });
}
