//! The accept loop of the HTTP and gRPC listeners, in place of `axum::serve`, which runs hyper
//! without a timer (so hyper's header timeout never fires) and without a connection cap:
//! a client that sends its headers a byte at a time, or thousands that connect and say
//! nothing, would hold their sockets for ever. Here each connection gets the header timeout
//! (for HTTP/1 it also ends idle keep-alive connections), a bound on header size, HTTP/2
//! keep-alive pings, a slot among `max_connections`, and the peer's address
//! ([`axum::extract::ConnectInfo`]); shutdown drains every connection gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::ConnectionLimits;

/// HTTP/2 pings an idle connection this often, and drops it if the ping is not answered
/// within [`PING_TIMEOUT`] (a peer that vanished without closing).
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

fn builder(limits: ConnectionLimits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's floor for the read buffer is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT);
    b
}

/// What an HTTP/2 client sends first; hyper-util reads up to this much to tell the versions
/// apart.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the client sends enough to tell HTTP/1 from HTTP/2 within `limit`. hyper's header
/// timeout only starts once hyper-util has told them apart, and that wait has no timeout of
/// its own: a client that connects and says nothing would hold its socket for ever.
async fn speaks_in_time(stream: &tokio::net::TcpStream, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return false,
        };
        if n == 0 {
            return false;
        }
        if n == buf.len() || buf[..n] != H2_PREFACE[..n] {
            return true;
        }
        // Part of the HTTP/2 preface: peek answers at once until more arrives.
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits
/// for the open connections to finish their requests. The caller bounds that wait.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(builder(limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin; a
                    // connection that closes frees one.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Streamed answers are many small writes (and gRPC writes headers, messages and
        // trailers apart): without TCP_NODELAY, Nagle meets delayed ACKs and waits 40 ms.
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        );
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_bytes = limits.header_read_timeout;
        tokio::spawn(async move {
            if !speaks_in_time(&stream, first_bytes).await {
                drop(permit);
                return;
            }
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn server(limits: ConnectionLimits) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(|ConnectInfo(p): ConnectInfo<SocketAddr>| async move {
                p.ip().to_string()
            }),
        );
        tokio::spawn(serve(l, router, limits, std::future::pending()));
        addr
    }

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        max_header_bytes: 16 * 1024,
        max_connections: 4,
    };

    async fn get(addr: SocketAddr) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn slow_headers_and_idle_connections_are_dropped_and_slots_come_back() {
        let addr = server(LIMITS).await;
        assert!(get(addr).await.ends_with("127.0.0.1"));
        // Four clients take every slot: one idle, three trickling a header.
        let mut held = Vec::new();
        for i in 0..4 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            if i > 0 {
                s.write_all(b"GET / HTTP/1.1\r\nx-slow: ").await.unwrap();
            }
            held.push(s);
        }
        // The fifth waits for a slot; within the header timeout the others are dropped.
        let t = std::time::Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(5), get(addr))
            .await
            .expect("a slot frees once the header timeout drops the slow clients");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        for mut s in held {
            let mut buf = [0u8; 256];
            // Closed by the server: EOF (or a 408 first, as hyper may answer).
            let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                .await
                .expect("the server closed the connection")
                .unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            assert!(n == 0 || head.starts_with("HTTP/1.1 408"), "{head}");
        }
    }

    #[tokio::test]
    async fn oversized_headers_are_refused() {
        let addr = server(LIMITS).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let big = "a".repeat(64 * 1024);
        let req = format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
        let _ = s.write_all(req.as_bytes()).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        let head = String::from_utf8_lossy(&out);
        assert!(
            head.is_empty() || head.starts_with("HTTP/1.1 431"),
            "{head}"
        );
        assert!(get(addr).await.ends_with("127.0.0.1"), "the server goes on");
    }
}
