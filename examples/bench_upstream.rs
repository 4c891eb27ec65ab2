//! The upstream for the side-by-side proxy benchmarks (`scripts/bench/run.sh`,
//! docs/benchmarks.md).
//!
//! It reads each request's body to its end (W8 posts 2 KB JSON) and answers
//! every request with a 1 KiB body (`text/plain`, `Cache-Control:
//! no-store`), except `GET /bulk?bytes=N`, which streams N bytes (for the CONNECT
//! bulk workload). It listens on `127.0.0.1:<--http-port>` for plain HTTP/1.1 (and
//! h2c with prior knowledge), and on `127.0.0.1:<--https-port>` for TLS with
//! HTTP/1.1 and HTTP/2 by ALPN. The TLS certificate is signed by a throwaway CA it
//! makes at start-up (ECDSA P-256) and covers `--names` (default `bench.test`,
//! `localhost`) and the address 127.0.0.1; the CA certificate (PEM) is written to
//! `--ca-out` so that proxies and load generators can trust it. With port 0 the
//! system picks one; the bound ports are written to `--port-file` (as
//! `http=PORT https=PORT`) once both listeners are up. It runs until killed.
//!
//! ```text
//! cargo run --release --example bench_upstream -- --http-port 18080 \
//!     --https-port 18443 --ca-out /tmp/bench-up-ca.pem
//! curl http://127.0.0.1:18080/
//! curl --cacert /tmp/bench-up-ca.pem https://127.0.0.1:18443/bulk?bytes=1048576 -o /dev/null
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::SanType;
use socialgate_testkit::ca::{self, TestCa};
use socialgate_testkit::script::{args_or_exit, flag_values, split_names, write_atomic};
use socialgate_testkit::upstream::accept_forever;
use tokio::net::TcpListener;

const USAGE: &str = "usage: bench_upstream [--http-port N] [--https-port N] \
     [--ca-out FILE] [--names a.test,b.test] [--port-file FILE]";

/// The size of an ordinary response.
const SMALL: usize = 1024;
/// The chunk size of a bulk response.
const CHUNK: usize = 64 * 1024;

struct Args {
    http_port: u16,
    https_port: u16,
    ca_out: String,
    names: Vec<String>,
    port_file: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        http_port: 0,
        https_port: 0,
        ca_out: "bench-upstream-ca.pem".into(),
        names: vec!["bench.test".into(), "localhost".into()],
        port_file: None,
    };
    for (flag, value) in flag_values(USAGE)? {
        let port = |v: &str| {
            v.parse::<u16>()
                .map_err(|e| format!("{flag} {v}: {e}\n{USAGE}"))
        };
        match flag.as_str() {
            "--http-port" => args.http_port = port(&value)?,
            "--https-port" => args.https_port = port(&value)?,
            "--ca-out" => args.ca_out = value,
            "--names" => args.names = split_names(&value),
            "--port-file" => args.port_file = Some(value),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if args.names.is_empty() {
        return Err(format!("--names must name at least one host\n{USAGE}"));
    }
    Ok(args)
}

/// A body of `remaining` bytes, sent as slices of one shared chunk.
struct Bulk {
    chunk: Bytes,
    remaining: u64,
}

impl Body for Bulk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= n;
        // `n` is at most CHUNK, so it fits a usize.
        let data = self.chunk.slice(..usize::try_from(n).unwrap_or(CHUNK));
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn bulk_bytes(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("bytes="))
        .and_then(|v| v.parse().ok())
}

async fn answer(
    req: Request<Incoming>,
    small: Bytes,
    chunk: Bytes,
) -> Result<Response<Bulk>, Infallible> {
    let body = if req.uri().path() == "/bulk" {
        Bulk {
            chunk,
            remaining: bulk_bytes(req.uri().query()).unwrap_or(0),
        }
    } else {
        Bulk {
            remaining: small.len() as u64,
            chunk: small,
        }
    };
    // A request body (W8's posts) is read to its end before the answer: over h2 an
    // answer sent first would end the stream with RST_STREAM while the client (the
    // proxy) may still be sending.
    if !req.body().is_end_stream() {
        let _ = req.into_body().collect().await;
    }
    let resp = Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap();
    Ok(resp)
}

/// A throwaway CA (its certificate written to `ca_out`) and a leaf it signs for
/// `names` and 127.0.0.1, sent with the CA after it.
fn tls_acceptor(names: &[String], ca_out: &str) -> tokio_rustls::TlsAcceptor {
    let ca = TestCa::new("socialgate bench upstream CA");
    let mut params = ca::site_params(names);
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let leaf = ca.sign(params);
    write_atomic(ca_out, &ca.pem());
    ca::acceptor(vec![leaf.der(), ca.der()], &leaf, ca::ALPN_H2_HTTP1)
}

/// Serves one connection (plain or TLS) with HTTP/1.1 or HTTP/2.
async fn serve<IO>(io: IO, small: Bytes, chunk: Bytes)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| answer(req, small.clone(), chunk.clone()));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

#[tokio::main]
async fn main() {
    let args = args_or_exit("bench_upstream", parse_args());
    let small = Bytes::from(vec![b'x'; SMALL]);
    let chunk = Bytes::from(vec![b'y'; CHUNK]);
    let acceptor = tls_acceptor(&args.names, &args.ca_out);

    let plain = TcpListener::bind(("127.0.0.1", args.http_port))
        .await
        .unwrap_or_else(|e| panic!("binding 127.0.0.1:{}: {e}", args.http_port));
    let tls = TcpListener::bind(("127.0.0.1", args.https_port))
        .await
        .unwrap_or_else(|e| panic!("binding 127.0.0.1:{}: {e}", args.https_port));
    let (http_port, https_port) = (
        plain.local_addr().unwrap().port(),
        tls.local_addr().unwrap().port(),
    );
    if let Some(f) = &args.port_file {
        write_atomic(f, &format!("http={http_port} https={https_port}\n"));
    }
    eprintln!(
        "bench_upstream: http://127.0.0.1:{http_port} https://127.0.0.1:{https_port} \
         for {} (CA in {})",
        args.names.join(", "),
        args.ca_out
    );

    let (s1, c1) = (small.clone(), chunk.clone());
    let plain_loop = tokio::spawn(accept_forever(plain, move |stream| {
        serve(stream, s1.clone(), c1.clone())
    }));
    let tls_loop = tokio::spawn(accept_forever(tls, move |stream| {
        let acceptor = acceptor.clone();
        let (small, chunk) = (small.clone(), chunk.clone());
        async move {
            if let Ok(s) = acceptor.accept(stream).await {
                serve(s, small, chunk).await;
            }
        }
    }));
    let _ = tokio::join!(plain_loop, tls_loop);
}
