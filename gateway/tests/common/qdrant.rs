//! A real Qdrant server for tests. `QDRANT_URL` (gRPC, with `QDRANT_API_KEY` if it needs one)
//! selects a running server; otherwise the binary at `QDRANT_BIN`, by default
//! `../shared/qdrant/qdrant` next to the repository (`../shared/qdrant/README.md`), is started
//! on free ports with a temporary storage directory. Used by the store's unit tests (included
//! by path) and by the integration tests.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A Qdrant server: one this process started, or `QDRANT_URL`'s.
pub struct Qdrant {
    /// gRPC endpoint, what `store: qdrant` connects to.
    pub grpc_url: String,
    /// REST endpoint (readiness, and tests that look behind the store's back).
    pub http_url: String,
    /// The key the server requires, if any.
    pub api_key: Option<String>,
    own: Option<Own>,
}

/// What a server this process started needs to be stopped and started again.
struct Own {
    dir: PathBuf,
    shell_cleans: bool,
    http_port: u16,
    grpc_port: u16,
    running: Option<(Child, ChildStdin)>,
}

/// The Qdrant binary the tests start: `QDRANT_BIN`, else `shared/qdrant/qdrant` in the
/// nearest directory above the repository that has one (`../shared/` for a checkout next to
/// it, as on the development and CI machines).
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("QDRANT_BIN") {
        return PathBuf::from(bin);
    }
    // At run time, like `common::repo`: a shared target dir may hold a binary built elsewhere.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let repo = crate_dir.parent().unwrap_or(&crate_dir).to_path_buf();
    let beside = repo.join("../shared/qdrant/qdrant");
    repo.ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/qdrant/qdrant"))
        .find(|bin| bin.is_file())
        .unwrap_or(beside)
}

/// What `qdrant --version` prints, e.g. `qdrant 1.18.3` (for benchmark tables).
pub fn version() -> String {
    let out = Command::new(binary()).arg("--version").output();
    out.ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A loopback port free at the time of asking, for servers that cannot bind port 0 and report
/// it (another process may take it before they bind: callers retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Qdrant {
    /// The server every store test of this process shares: `QDRANT_URL`'s, or one started
    /// here (stopped, and its storage removed, when the process exits).
    pub fn shared() -> &'static Qdrant {
        static SHARED: OnceLock<Qdrant> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var("QDRANT_URL") {
            Ok(url) if !url.is_empty() => Qdrant {
                http_url: String::new(),
                grpc_url: url,
                api_key: std::env::var("QDRANT_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                own: None,
            },
            _ => Qdrant::launch(None, true),
        })
    }

    /// A new server of this test's own, ready; `api_key` makes it require that key.
    pub fn start(api_key: Option<&str>) -> Qdrant {
        Qdrant::launch(api_key, false)
    }

    /// `shell_cleans`: the wrapper shell removes the storage when it stops the server (for
    /// the shared server, which is never dropped).
    fn launch(api_key: Option<&str>, shell_cleans: bool) -> Qdrant {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gatehouse-qdrant-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for Qdrant");
        let (http_port, grpc_port) = (free_port(), free_port());
        let mut q = Qdrant {
            grpc_url: format!("http://127.0.0.1:{grpc_port}"),
            http_url: format!("http://127.0.0.1:{http_port}"),
            api_key: api_key.map(str::to_string),
            own: Some(Own {
                dir,
                shell_cleans,
                http_port,
                grpc_port,
                running: None,
            }),
        };
        q.restart();
        q
    }

    /// Stops the server (a server of this process only); its storage stays.
    pub fn stop(&mut self) {
        let own = self
            .own
            .as_mut()
            .expect("only a server this process started can be stopped");
        if let Some((mut child, stdin)) = own.running.take() {
            // Closing its stdin is what makes the wrapper shell stop the server.
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and storage, and waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        let api_key = self.api_key.clone();
        let own = self.own.as_mut().expect("a server this process started");
        let bin = binary();
        assert!(
            bin.is_file(),
            "no Qdrant server at {}: the Qdrant store tests start one (see \
             ../shared/qdrant/README.md); set QDRANT_BIN to the binary, or QDRANT_URL to a \
             running server's gRPC endpoint",
            bin.display()
        );
        let log = std::fs::File::create(own.dir.join("qdrant.log")).expect("Qdrant's log file");
        let mut cmd = Command::new("sh");
        // The shell stops the server when its stdin closes: when `stop` drops our end, or
        // when the test process exits in any way (a static is never dropped). Qdrant's
        // graceful shutdown waits for open gRPC connections, which a test blocked in `stop`
        // cannot close, so it gets 5 s before SIGKILL.
        cmd.arg("-c")
            .arg(concat!(
                r#""$0" & q=$!; read _; kill $q; (sleep 5; kill -9 $q 2>/dev/null) & k=$!; "#,
                r#"wait $q; kill $k 2>/dev/null; [ -n "$1" ] && rm -rf "$1""#
            ))
            .arg(&bin)
            .arg(if own.shell_cleans {
                own.dir.as_os_str()
            } else {
                "".as_ref()
            })
            .current_dir(&own.dir)
            .env("QDRANT__SERVICE__HTTP_PORT", own.http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", own.grpc_port.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", own.dir.join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", own.dir.join("snapshots"))
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        if let Some(k) = &api_key {
            cmd.env("QDRANT__SERVICE__API_KEY", k);
        }
        let mut child = cmd.spawn().expect("sh starts");
        let stdin = child.stdin.take().expect("piped stdin");
        own.running = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(60);
        // Qdrant answers readyz before its gRPC port listens.
        let grpc_listens = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
        while !(ready(own.http_port) && grpc_listens(own.grpc_port)) {
            if let Some((child, _)) = own.running.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log =
                        std::fs::read_to_string(own.dir.join("qdrant.log")).unwrap_or_default();
                    panic!("the Qdrant server exited at start ({status}):\n{log}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "Qdrant was not ready within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Qdrant {
    fn drop(&mut self) {
        if self.own.is_some() {
            self.stop();
            if let Some(own) = &self.own {
                let _ = std::fs::remove_dir_all(&own.dir);
            }
        }
    }
}

/// `GET /readyz` answers 200 (Qdrant's probes need no key).
fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}
