//! A real Redis Cluster for the tests: three masters and three replicas of Debian's
//! `redis-server` on free loopback ports, node files in a temporary directory, joined by
//! `redis-cli --cluster create`. Every node is killed when the cluster is dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct RedisCluster {
    nodes: Vec<(u16, Child)>,
    dir: PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_port_pair() -> u16 {
    loop {
        let port = super::free_port();
        if port > 55000 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli (Debian's redis-tools) is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl RedisCluster {
    /// Starts six nodes and makes them a cluster of three masters with a replica each;
    /// returns once every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let dir = super::temp_dir("gatehouse-redis-cluster");
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir: dir.clone(),
        };
        for _ in 0..6 {
            let port = free_port_pair();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{port}.conf")))
                // Failover within a couple of seconds of a master going silent.
                .args(["--cluster-node-timeout", "1000"])
                // A replica may take over however long its link was down (the default
                // refuses when its data looks stale, e.g. right after the cluster formed).
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (Debian's redis-server) is installed");
            cluster.nodes.push((port, child));
        }
        for (port, _) in &cluster.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while cli(*port, &["ping"]).trim() != "PONG" {
                assert!(Instant::now() < deadline, "redis node {port} did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok(Duration::from_secs(30));
        // Replicas have their data: a failover from here on loses nothing acknowledged.
        let deadline = Instant::now() + Duration::from_secs(30);
        for (port, _) in &cluster.nodes {
            loop {
                let info = cli(*port, &["info", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {port} never synced: {info}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
    }

    /// Waits until every live node says `cluster_state:ok`.
    pub fn wait_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        for (port, _) in &self.nodes {
            loop {
                let info = cli(*port, &["cluster", "info"]);
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "node {port}: {info}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Seed URLs for `redis.urls`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// Ports of the current masters.
    pub fn masters(&self) -> Vec<u16> {
        let nodes = cli(self.nodes[0].0, &["cluster", "nodes"]);
        nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                addr.split([':', '@']).nth(1)?.parse().ok()
            })
            .collect()
    }

    /// Kills (SIGKILL) the node on `port`: its replica takes over after the node timeout.
    pub fn kill(&mut self, port: u16) {
        let i = self.nodes.iter().position(|(p, _)| *p == port).unwrap();
        let (_, mut child) = self.nodes.remove(i);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
