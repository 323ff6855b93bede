//! The in-process store: least recently used entries go first, past a count or a byte total.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes the in-process cache holds at most, whatever the entry count allows.
pub const MAX_BYTES: usize = 64 << 20;

struct Slot {
    bytes: Arc<Vec<u8>>,
    stored: Instant,
    tick: u64,
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    /// Use order: oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
    total: usize,
}

/// An LRU of serialized entries.
pub struct Lru {
    max_entries: usize,
    max_bytes: usize,
    state: Mutex<State>,
}

impl Lru {
    /// Holds at most `max_entries`, and at most [`MAX_BYTES`] in all.
    pub fn new(max_entries: usize, max_entry_bytes: usize) -> Self {
        Self {
            max_entries: max_entries.max(1),
            max_bytes: MAX_BYTES.max(max_entry_bytes),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry under `key` if stored less than `ttl` ago; marks it used.
    pub fn get(&self, key: &str, ttl: Duration) -> Option<Arc<Vec<u8>>> {
        let mut st = self.state();
        let (stored, old_tick) = st.slots.get(key).map(|s| (s.stored, s.tick))?;
        if stored.elapsed() >= ttl {
            st.remove(key);
            return None;
        }
        st.tick += 1;
        let tick = st.tick;
        st.order.remove(&old_tick);
        st.order.insert(tick, key.to_string());
        let slot = st.slots.get_mut(key)?;
        slot.tick = tick;
        Some(slot.bytes.clone())
    }

    /// Stores `bytes` under `key`, evicting the least recently used entries to make room.
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        let mut st = self.state();
        st.remove(key);
        while !st.slots.is_empty()
            && (st.slots.len() >= self.max_entries || st.total + bytes.len() > self.max_bytes)
        {
            let Some((_, oldest)) = st.order.pop_first() else {
                break;
            };
            st.remove(&oldest);
        }
        st.tick += 1;
        let tick = st.tick;
        st.total += bytes.len();
        st.order.insert(tick, key.to_string());
        st.slots.insert(
            key.to_string(),
            Slot {
                bytes: Arc::new(bytes),
                stored: Instant::now(),
                tick,
            },
        );
    }
}

impl State {
    fn remove(&mut self, key: &str) {
        if let Some(s) = self.slots.remove(key) {
            self.order.remove(&s.tick);
            self.total -= s.bytes.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let lru = Lru::new(2, 100);
        lru.put("a", vec![1]);
        lru.put("b", vec![2]);
        assert!(lru.get("a", HOUR).is_some()); // b is now the oldest use
        lru.put("c", vec![3]);
        assert!(lru.get("b", HOUR).is_none());
        assert_eq!(*lru.get("a", HOUR).unwrap(), vec![1]);
        assert_eq!(*lru.get("c", HOUR).unwrap(), vec![3]);
    }

    #[test]
    fn expired_entries_are_misses_and_replacing_keeps_the_byte_total() {
        let lru = Lru::new(10, 100);
        lru.put("a", vec![0; 10]);
        assert!(lru.get("a", Duration::ZERO).is_none());
        lru.put("b", vec![0; 10]);
        lru.put("b", vec![0; 20]);
        assert_eq!(lru.state().total, 20);
        assert_eq!(lru.state().order.len(), 1);
    }
}
