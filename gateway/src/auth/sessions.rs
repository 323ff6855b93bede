//! Sign-in sessions of the review page, and the throttle on failed sign-ins.
//!
//! The browser holds a random session id; the server keeps, under the id's SHA-256, which key
//! signed in (its digest, never the key), the session's CSRF token and its expiry. With a
//! `redis:` section both live there, so every replica knows every session and counts every
//! failure; without one, in this process. Each request re-checks the key, so revoking it
//! ends its sessions too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use redis::AsyncCommands;

use crate::kv::{Feature, Kv, KvError};

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed sign-ins one source address may make per [`THROTTLE_WINDOW`].
pub const MAX_FAILED_SIGNINS: u64 = 5;
/// The throttle's window, counted from the first failure in it.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(300);
/// Sessions kept in memory (without Redis); expired ones go first, then the oldest.
const MEMORY_SESSIONS: usize = 10_000;
/// Source addresses whose failures are remembered in memory.
const MEMORY_SOURCES: usize = 100_000;

/// What the server keeps of a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// SHA-256 of the admin key that signed in.
    pub key_digest: String,
    /// The token every state-changing form of the session must carry.
    pub csrf: String,
    /// Unix milliseconds after which the session is void.
    pub expires_at_ms: u64,
}

/// A new random token: 64 hex digits (two v4 UUIDs, 244 random bits from the OS).
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn now_ms() -> u64 {
    crate::audit::record::now_ms().max(0) as u64
}

/// Sessions and failed sign-ins, in Redis or in this process.
pub struct Sessions {
    kv: Option<Kv>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (u64, u64)>>,
}

impl Sessions {
    /// In `kv` when given, else in memory.
    pub fn new(kv: Option<Kv>) -> Self {
        Self {
            kv,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    fn session_key(kv: &Kv, id: &str) -> String {
        kv.key(&["session", &crate::auth::hash_key(id)])
    }

    /// Starts a session for the key with `key_digest`: its id (for the cookie) and record.
    pub async fn create(&self, key_digest: &str) -> Result<(String, Session), KvError> {
        let id = random_token();
        let session = Session {
            key_digest: key_digest.to_string(),
            csrf: random_token(),
            expires_at_ms: now_ms() + SESSION_TTL.as_millis() as u64,
        };
        match &self.kv {
            Some(kv) => {
                let k = Self::session_key(kv, &id);
                let json = serde_json::to_string(&session).expect("sessions serialize");
                kv.run(Feature::Sessions, |mut c| async move {
                    c.set_ex::<_, _, ()>(k, json, SESSION_TTL.as_secs()).await
                })
                .await?;
            }
            None => {
                let mut all = lock(&self.sessions);
                if all.len() >= MEMORY_SESSIONS {
                    let now = now_ms();
                    all.retain(|_, s| s.expires_at_ms > now);
                }
                if all.len() >= MEMORY_SESSIONS {
                    if let Some(oldest) = all
                        .iter()
                        .min_by_key(|(_, s)| s.expires_at_ms)
                        .map(|(k, _)| k.clone())
                    {
                        all.remove(&oldest);
                    }
                }
                all.insert(crate::auth::hash_key(&id), session.clone());
            }
        }
        Ok((id, session))
    }

    /// The live session with this id; `None` when unknown, ended or expired.
    pub async fn get(&self, id: &str) -> Result<Option<Session>, KvError> {
        let found = match &self.kv {
            Some(kv) => {
                let k = Self::session_key(kv, id);
                let key = k.clone();
                let raw: Option<String> = kv
                    .run(Feature::Sessions, |mut c| async move { c.get(key).await })
                    .await?;
                match raw.map(|r| serde_json::from_str::<Session>(&r)) {
                    None => None,
                    Some(Ok(s)) => Some(s),
                    Some(Err(e)) => {
                        let e = KvError::Corrupt {
                            key: k,
                            message: e.to_string(),
                        };
                        kv.failed(Feature::Sessions, &e);
                        return Err(e);
                    }
                }
            }
            None => lock(&self.sessions)
                .get(&crate::auth::hash_key(id))
                .cloned(),
        };
        Ok(found.filter(|s| s.expires_at_ms > now_ms()))
    }

    /// Ends the session with this id (nothing happens for an unknown one).
    pub async fn end(&self, id: &str) -> Result<(), KvError> {
        match &self.kv {
            Some(kv) => {
                let k = Self::session_key(kv, id);
                kv.run(
                    Feature::Sessions,
                    |mut c| async move { c.del::<_, ()>(k).await },
                )
                .await
            }
            None => {
                lock(&self.sessions).remove(&crate::auth::hash_key(id));
                Ok(())
            }
        }
    }

    fn failures_key(kv: &Kv, source: IpAddr) -> String {
        kv.key(&["signin-failures", &source.to_string()])
    }

    /// How long `source` must wait before signing in again; `None` when it may try now.
    pub async fn throttled(&self, source: IpAddr) -> Result<Option<Duration>, KvError> {
        match &self.kv {
            Some(kv) => {
                let k = Self::failures_key(kv, source);
                let (count, ttl_ms): (Option<u64>, i64) = kv
                    .run(Feature::Sessions, |mut c| async move {
                        redis::pipe().get(&k).pttl(&k).query_async(&mut c).await
                    })
                    .await?;
                Ok((count.unwrap_or(0) >= MAX_FAILED_SIGNINS)
                    .then(|| Duration::from_millis(ttl_ms.max(1000) as u64)))
            }
            None => {
                let now = now_ms();
                Ok(lock(&self.failures)
                    .get(&source)
                    .filter(|(n, until)| *n >= MAX_FAILED_SIGNINS && *until > now)
                    .map(|(_, until)| Duration::from_millis(until - now)))
            }
        }
    }

    /// Counts a failed sign-in from `source`.
    pub async fn failed(&self, source: IpAddr) -> Result<(), KvError> {
        let window = THROTTLE_WINDOW.as_millis() as u64;
        match &self.kv {
            Some(kv) => {
                let k = Self::failures_key(kv, source);
                // The window starts at the first failure: the counter is created with its
                // expiry, later failures only count.
                kv.run(Feature::Sessions, |mut c| async move {
                    redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg(&k)
                        .arg(0)
                        .arg("PX")
                        .arg(window)
                        .arg("NX")
                        .ignore()
                        .incr(&k, 1)
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
            }
            None => {
                let now = now_ms();
                let mut all = lock(&self.failures);
                if all.len() >= MEMORY_SOURCES {
                    all.retain(|_, (_, until)| *until > now);
                }
                let entry = all.entry(source).or_insert((0, now + window));
                if entry.1 <= now {
                    *entry = (0, now + window);
                }
                entry.0 += 1;
                Ok(())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sessions_behave(s: &Sessions) {
        let (id, made) = s.create("digest").await.unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(made.csrf, id);
        assert_eq!(s.get(&id).await.unwrap(), Some(made.clone()));
        assert_eq!(s.get(&random_token()).await.unwrap(), None);
        let (other, _) = s.create("digest").await.unwrap();
        assert_ne!(other, id, "each sign-in gets a fresh id");
        s.end(&id).await.unwrap();
        assert_eq!(s.get(&id).await.unwrap(), None);
        assert!(s.get(&other).await.unwrap().is_some());
        s.end(&id).await.unwrap();

        let source: IpAddr = format!("10.9.{}.{}", id.len(), first_byte(&id))
            .parse()
            .unwrap();
        for _ in 0..MAX_FAILED_SIGNINS - 1 {
            s.failed(source).await.unwrap();
            assert_eq!(s.throttled(source).await.unwrap(), None);
        }
        s.failed(source).await.unwrap();
        let wait = s.throttled(source).await.unwrap().expect("throttled");
        assert!(
            wait <= THROTTLE_WINDOW && wait > THROTTLE_WINDOW / 2,
            "{wait:?}"
        );
        let elsewhere: IpAddr = "10.8.0.1".parse().unwrap();
        assert_eq!(s.throttled(elsewhere).await.unwrap(), None);
    }

    /// A byte from a random token, so parallel runs against one Redis use distinct sources.
    fn first_byte(token: &str) -> u8 {
        u8::from_str_radix(&token[..2], 16).unwrap()
    }

    #[tokio::test]
    async fn sessions_in_memory_start_end_and_throttle() {
        sessions_behave(&Sessions::new(None)).await;
    }

    #[tokio::test]
    async fn sessions_in_redis_start_end_and_throttle_and_keep_only_digests() {
        let prefix = format!("gh-test-sessions-{}", random_token());
        let kv = Kv::local_for_tests(&prefix);
        let s = Sessions::new(Some(kv.clone()));
        sessions_behave(&s).await;
        let (id, _) = s.create("digest").await.unwrap();
        let stored: Vec<String> = kv
            .run(Feature::Sessions, |mut c| {
                let pattern = format!("{prefix}:session:*");
                async move { c.keys(pattern).await }
            })
            .await
            .unwrap();
        assert!(!stored.is_empty());
        assert!(
            stored.iter().all(|k| !k.contains(&id)),
            "Redis holds the id's digest, never the id"
        );
        let _: () = kv
            .run(Feature::Sessions, |mut c| {
                let pattern = format!("{prefix}:*");
                async move {
                    let all: Vec<String> = c.keys(pattern).await?;
                    if !all.is_empty() {
                        c.del::<_, ()>(all).await?;
                    }
                    Ok(())
                }
            })
            .await
            .unwrap();
    }
}
