//! Prefix-affinity routing among the backends of one model: requests whose prompts start the
//! same go to the same backend, so its prefix (KV) cache is warm.
//!
//! The prefix is what requests of one application or conversation share: the messages before
//! the first user message (system prompt, few-shot examples) when there are any, else the
//! first user message (so a growing chat keeps its backend); cut at [`PREFIX_BYTES`]. Backends are ranked by
//! rendezvous hashing of that prefix, so every replica with the same backend list prefers the
//! same one; the prefix→backend map (in Redis when configured) keeps a prefix where it was
//! first served even when the list changes. Consistent hashing with bounded loads: a backend
//! above `(1 + LOAD_SLACK) ×` the mean load (counting this request) is skipped, as is one
//! marked down, and the next in rank order takes the request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sha2::Digest;

use crate::domain::ChatRequest;

/// Bytes of the conversation's opening that decide its backend.
pub const PREFIX_BYTES: usize = 4096;
/// How far above the mean load a preferred backend may go before requests spill.
pub const LOAD_SLACK: f64 = 0.25;
/// How long a prefix→backend entry lives without use.
pub const MAP_TTL: Duration = Duration::from_secs(600);
/// Entries of the in-process map (without Redis) before it starts over.
const MAP_ENTRIES: usize = 100_000;

/// Why a backend was chosen, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The prefix's own backend (mapped, or first in rank).
    Affinity,
    /// The preferred backend was saturated or down.
    Spill,
    /// Round robin or least loaded.
    Balance,
}

impl Reason {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Affinity => "affinity",
            Reason::Spill => "spill",
            Reason::Balance => "balance",
        }
    }
}

/// Hex SHA-256 of the request's shared prefix (see the module docs).
pub fn prefix_hash(req: &ChatRequest) -> String {
    use crate::domain::Role;
    let first_user = req
        .messages
        .iter()
        .position(|m| m.role == Role::User)
        .unwrap_or(req.messages.len());
    let shared = match first_user {
        0 => &req.messages[..req.messages.len().min(1)],
        n => &req.messages[..n],
    };
    let mut h = sha2::Sha256::new();
    h.update(req.model.as_bytes());
    let mut left = PREFIX_BYTES;
    for m in shared {
        for part in [m.role.as_str(), "\n", m.content.as_str(), "\n"] {
            let take = floor_char_boundary(part, left);
            h.update(&part.as_bytes()[..take]);
            left -= take;
        }
    }
    hex::encode(h.finalize())
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// Backend indices, most preferred first, for `prefix` (rendezvous hashing over `ids`).
pub fn rank(prefix: &str, ids: &[&str]) -> Vec<usize> {
    let score = |id: &str| {
        let d = sha2::Sha256::new()
            .chain_update(prefix.as_bytes())
            .chain_update([0])
            .chain_update(id.as_bytes())
            .finalize();
        u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
    };
    let mut order: Vec<(u64, usize)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (score(id), i))
        .collect();
    order.sort_unstable_by(|a, b| b.cmp(a));
    order.into_iter().map(|(_, i)| i).collect()
}

/// What the chooser knows of one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Requests in flight.
    pub in_flight: usize,
    /// Marked down after a connection failure.
    pub down: bool,
}

/// The most requests one backend may hold under bounded loads, counting the new request.
pub fn capacity(loads: &[Load]) -> usize {
    let up: Vec<&Load> = loads.iter().filter(|l| !l.down).collect();
    if up.is_empty() {
        return 0;
    }
    let total: usize = up.iter().map(|l| l.in_flight).sum::<usize>() + 1;
    ((1.0 + LOAD_SLACK) * total as f64 / up.len() as f64).ceil() as usize
}

/// The backend for a prefix: `preferred` (the mapped one) if up and under capacity, else
/// the first such in `order`; when every backend is at capacity, the least loaded one up.
/// `None` when all are down.
pub fn choose(
    order: &[usize],
    preferred: Option<usize>,
    loads: &[Load],
) -> Option<(usize, Reason)> {
    let cap = capacity(loads);
    let fits = |i: usize| loads.get(i).is_some_and(|l| !l.down && l.in_flight < cap);
    let first = preferred.or_else(|| order.first().copied());
    if let Some(p) = first.filter(|&p| fits(p)) {
        return Some((p, Reason::Affinity));
    }
    if let Some(&i) = order.iter().find(|&&i| fits(i)) {
        return Some((i, Reason::Spill));
    }
    least_loaded(loads).map(|i| (i, Reason::Spill))
}

/// The backend up with the fewest requests in flight (the lowest index on ties).
pub fn least_loaded(loads: &[Load]) -> Option<usize> {
    loads
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.down)
        .min_by_key(|(i, l)| (l.in_flight, *i))
        .map(|(i, _)| i)
}

/// The prefix→backend map of one process (used without Redis).
#[derive(Default)]
pub struct LocalMap(Mutex<HashMap<String, (String, std::time::Instant)>>);

impl LocalMap {
    /// The backend id mapped to `key`, if fresh.
    pub fn get(&self, key: &str) -> Option<String> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(key)
            .filter(|(_, at)| at.elapsed() < MAP_TTL)
            .map(|(id, _)| id.clone())
    }

    /// Maps `key` to `id` (or refreshes it).
    pub fn set(&self, key: &str, id: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAP_ENTRIES && !m.contains_key(key) {
            m.clear();
        }
        m.insert(key.to_string(), (id.to_string(), std::time::Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChatMessage, Role};
    use proptest::prelude::*;

    fn up(n: usize) -> Load {
        Load {
            in_flight: n,
            down: false,
        }
    }

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }

    fn hash(messages: Vec<ChatMessage>) -> String {
        prefix_hash(&ChatRequest {
            model: "m".into(),
            messages,
            ..Default::default()
        })
    }

    #[test]
    fn requests_sharing_a_system_prompt_share_a_prefix() {
        let sys = |s: &str, q: &str| hash(vec![msg(Role::System, s), msg(Role::User, q)]);
        assert_eq!(sys("handbook", "q1"), sys("handbook", "q2"));
        assert_ne!(sys("handbook", "q1"), sys("other handbook", "q1"));
        // Past PREFIX_BYTES only the opening counts.
        let long = "x".repeat(PREFIX_BYTES + 10);
        assert_eq!(sys(&long, "q"), sys(&format!("{long}y"), "q"));
    }

    #[test]
    fn a_chat_without_system_prompt_keeps_its_first_question() {
        let turn1 = hash(vec![msg(Role::User, "q1")]);
        let turn2 = hash(vec![
            msg(Role::User, "q1"),
            msg(Role::Assistant, "a1"),
            msg(Role::User, "q2"),
        ]);
        assert_eq!(turn1, turn2);
        assert_ne!(turn1, hash(vec![msg(Role::User, "q2")]));
    }

    #[test]
    fn the_preferred_backend_takes_requests_until_it_is_saturated() {
        let order = [1, 0, 2];
        assert_eq!(
            choose(&order, None, &[up(0), up(0), up(0)]),
            Some((1, Reason::Affinity))
        );
        // Capacity with 6 in flight over 3: ceil(1.25 * 7 / 3) = 3.
        assert_eq!(
            choose(&order, None, &[up(1), up(3), up(2)]),
            Some((0, Reason::Spill))
        );
        let down = Load {
            in_flight: 0,
            down: true,
        };
        assert_eq!(
            choose(&order, None, &[up(0), down, up(0)]),
            Some((0, Reason::Spill))
        );
        assert_eq!(
            choose(&order, Some(2), &[up(0), up(0), up(0)]),
            Some((2, Reason::Affinity))
        );
        assert_eq!(choose(&order, None, &[down, down, down]), None);
    }

    proptest! {
        /// Rank is a permutation, deterministic, and removing a backend keeps the relative
        /// order of the others (what makes the hashing consistent).
        #[test]
        fn rendezvous_ranking_is_consistent(prefix in "[a-z]{1,12}", n in 1usize..8, drop in 0usize..8) {
            let ids: Vec<String> = (0..n).map(|i| format!("http://10.0.0.{i}:8080/v1")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let order = rank(&prefix, &refs);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            prop_assert_eq!(&order, &rank(&prefix, &refs));
            let drop = drop % n;
            let fewer: Vec<&str> = refs.iter().enumerate().filter(|(i, _)| *i != drop).map(|(_, s)| *s).collect();
            let expect: Vec<&str> = order.iter().filter(|&&i| i != drop).map(|&i| refs[i]).collect();
            let got: Vec<&str> = rank(&prefix, &fewer).into_iter().map(|i| fewer[i]).collect();
            prop_assert_eq!(got, expect);
        }

        /// Under bounded loads no backend up goes above capacity while another has room.
        #[test]
        fn chosen_backends_stay_within_capacity(loads in proptest::collection::vec((0usize..20, any::<bool>()), 1..6), pref in 0usize..6) {
            let loads: Vec<Load> = loads.into_iter().map(|(n, down)| Load { in_flight: n, down }).collect();
            let order: Vec<usize> = (0..loads.len()).collect();
            let cap = capacity(&loads);
            match choose(&order, Some(pref % loads.len()), &loads) {
                None => prop_assert!(loads.iter().all(|l| l.down)),
                Some((i, _)) => {
                    prop_assert!(!loads[i].down);
                    let room = loads.iter().any(|l| !l.down && l.in_flight < cap);
                    prop_assert!(!room || loads[i].in_flight < cap);
                }
            }
        }
    }
}
