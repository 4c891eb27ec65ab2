//! Tunnel byte relays. [`relay`] copies between any two streams through a buffer
//! that is small while the tunnel idles (memory per idle tunnel) and grows once
//! data flows (fewer system calls per byte). [`relay_tcp`] joins two TCP sockets
//! the same way and, on Linux, moves a busy direction to `splice(2)` through a
//! pipe, so bulk bytes never pass through the gateway's memory (W2 in
//! docs/benchmarks.md). The pipe is made only once a direction carries bulk data, so
//! an idle tunnel costs no extra file descriptors. Both end a tunnel after `idle`
//! without a byte either way (`idle::watchdog` over the tunnel's
//! `LastActivity`: one timer per tunnel, not one per read), also when a
//! direction is stuck writing to a peer that does not read, and pass a
//! half-close on (EOF one way shuts the other socket's write side; the other
//! direction keeps flowing).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::idle::{watchdog, LastActivity};

/// Buffer of a direction that has not yet carried a full buffer's worth.
const SMALL: usize = 2 * 1024;
/// Buffer (and splice chunk) of a busy direction.
const LARGE: usize = 64 * 1024;

/// Copies both ways until both sides close, or until neither side has sent a
/// byte for `idle` (then both write sides are shut). Returns the bytes copied
/// (a → b, b → a).
pub async fn relay<A, B>(a: A, b: B, idle: Duration) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = LastActivity::new();
    let (there, back) = (AtomicU64::new(0), AtomicU64::new(0));
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let idled = {
        let copied = async {
            tokio::try_join!(
                one_way(&mut ar, &mut bw, &activity, &there),
                one_way(&mut br, &mut aw, &activity, &back)
            )
        };
        tokio::select! {
            copied = copied => {
                copied?;
                false
            }
            () = watchdog(activity.clone(), idle) => true,
        }
    };
    if idled {
        let _ = aw.shutdown().await;
        let _ = bw.shutdown().await;
    }
    Ok((there.load(Ordering::Relaxed), back.load(Ordering::Relaxed)))
}

/// One direction of [`relay`], counting into `total`.
async fn one_way<R, W>(
    r: &mut R,
    w: &mut W,
    activity: &LastActivity,
    total: &AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; SMALL];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        // A TLS stream (the HTTPS proxy port, an https:// parent) may keep
        // encrypted bytes back when its socket was full; flushed now, or the
        // tail of a reply could wait for the next write.
        w.flush().await?;
        total.fetch_add(n as u64, Ordering::Relaxed);
        if n == buf.len() && buf.len() < LARGE {
            buf.resize(LARGE, 0);
        }
        activity.touch();
    }
}

/// [`relay`] for two TCP sockets, with `splice(2)` for busy directions on Linux.
/// Returns the bytes copied (a → b, b → a).
pub async fn relay_tcp(a: TcpStream, b: TcpStream, idle: Duration) -> io::Result<(u64, u64)> {
    let activity = LastActivity::new();
    let (there, back) = (AtomicU64::new(0), AtomicU64::new(0));
    let copied = async {
        tokio::try_join!(
            tcp_one_way(&a, &b, &activity, &there),
            tcp_one_way(&b, &a, &activity, &back)
        )
    };
    tokio::select! {
        copied = copied => {
            copied?;
        }
        () = watchdog(activity.clone(), idle) => {
            shut_write(&a);
            shut_write(&b);
        }
    }
    Ok((there.load(Ordering::Relaxed), back.load(Ordering::Relaxed)))
}

/// Waits until `r` is readable and runs `read` (a non-blocking read from `r`):
/// `Some(bytes read)`, or `None` once `r` has ended, in which case the end is
/// passed on to `w`.
async fn next_chunk(
    r: &TcpStream,
    w: &TcpStream,
    mut read: impl FnMut() -> io::Result<usize>,
) -> io::Result<Option<usize>> {
    loop {
        r.readable().await?;
        match read() {
            Ok(0) => {
                shut_write(w);
                return Ok(None);
            }
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// A non-blocking read from `r` into `buf`. A read that fills less than `buf`
/// has emptied the socket's receive queue (Linux, edge-triggered epoll), so the
/// socket's readiness is cleared then: without that, the next wait returns at
/// once and a read fails with EAGAIN, one wasted system call per message in
/// each direction (T3 in docs/benchmarks.md: 4 reads per request instead of
/// 2). tokio's own `poll_read` clears readiness the same way; clearing is
/// skipped by tokio when new readiness came in meanwhile, so no wake-up is lost.
fn read_draining(r: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let len = buf.len();
    let mut short = None;
    let read = r.try_io(tokio::io::Interest::READABLE, || {
        let n = r.try_read(buf)?;
        if cfg!(target_os = "linux") && 0 < n && n < len {
            short = Some(n);
            // Reported to try_io as WouldBlock, which clears the readiness.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match short {
        Some(n) => Ok(n),
        None => read,
    }
}

/// Shuts the write side of `w`, so its peer sees the end of this direction.
fn shut_write(w: &TcpStream) {
    let _ = socket2::SockRef::from(w).shutdown(std::net::Shutdown::Write);
}

async fn write_all(w: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        w.writable().await?;
        match w.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One direction of [`relay_tcp`].
async fn tcp_one_way(
    r: &TcpStream,
    w: &TcpStream,
    activity: &LastActivity,
    total: &AtomicU64,
) -> io::Result<()> {
    let mut buf = vec![0u8; SMALL];
    loop {
        let Some(n) = next_chunk(r, w, || read_draining(r, &mut buf)).await? else {
            return Ok(());
        };
        write_all(w, &buf[..n]).await?;
        total.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
        if n == buf.len() {
            // Bulk data: splice from now on where the system allows it.
            #[cfg(target_os = "linux")]
            if let Ok(pipe) = splice::Pipe::new() {
                drop(buf);
                return splice::one_way(r, w, activity, pipe, total).await;
            }
            if buf.len() < LARGE {
                buf.resize(LARGE, 0);
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod splice {
    //! `splice(2)` socket → pipe → socket: the bytes stay in the kernel.

    use std::io;
    use std::os::fd::OwnedFd;

    use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    use std::sync::atomic::{AtomicU64, Ordering};

    use super::{next_chunk, shut_write, LastActivity};

    /// A non-blocking pipe carrying one direction of a tunnel.
    pub struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Pipe {
        pub fn new() -> io::Result<Pipe> {
            let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
            // A larger pipe moves more per system call; the default (64 KiB) is
            // kept if the system refuses (fs.pipe-max-size, pipe-user-pages-soft).
            let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_BYTES);
            Ok(Pipe { read, write })
        }
    }

    /// Pipe capacity asked for a busy direction.
    const PIPE_BYTES: usize = 512 * 1024;

    const FLAGS: SpliceFlags = SpliceFlags::MOVE.union(SpliceFlags::NONBLOCK);

    pub async fn one_way(
        r: &TcpStream,
        w: &TcpStream,
        activity: &LastActivity,
        pipe: Pipe,
        total: &AtomicU64,
    ) -> io::Result<()> {
        loop {
            // The pipe is empty here, so EAGAIN can only mean the socket is.
            let fill = || {
                r.try_io(Interest::READABLE, || {
                    splice(r, None, &pipe.write, None, PIPE_BYTES, FLAGS).map_err(io::Error::from)
                })
            };
            let Some(n) = next_chunk(r, w, fill).await? else {
                return Ok(());
            };
            // The pipe holds `left` bytes, so EAGAIN can only mean the socket is full.
            let mut left = n;
            let mut ended = false;
            while left > 0 {
                w.writable().await?;
                let sent = w.try_io(Interest::WRITABLE, || {
                    splice(&pipe.read, None, w, None, left, FLAGS).map_err(io::Error::from)
                });
                match sent {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(m) => {
                        left -= m;
                        total.fetch_add(m as u64, Ordering::Relaxed);
                        activity.touch();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // While the receiver catches up, top the pipe up from the
                        // sender. Outside `try_io`: an EAGAIN here may mean a full
                        // pipe rather than an empty socket, so it must not clear
                        // the socket's readiness; errors show on the next read.
                        if !ended && left < PIPE_BYTES / 2 {
                            match splice(r, None, &pipe.write, None, PIPE_BYTES - left, FLAGS) {
                                Ok(0) => ended = true,
                                Ok(more) => left += more,
                                Err(_) => {}
                            }
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            if ended {
                shut_write(w);
                return Ok(());
            }
        }
    }
}
