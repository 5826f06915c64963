//! The deduplication cache: a bounded window of the keys seen most recently, each with an
//! expiry. Keys are 128-bit hashes (see `dedup::key`), so an entry costs the same whatever the
//! key's length: a ring of fixed-size slots in arrival order (the oldest is overwritten when the
//! ring is full) and a hash table of slot numbers.

use hashbrown::HashTable;

/// A key as the cache holds it: a 128-bit hash of the message's deduplication value.
pub(crate) type Key = [u64; 2];

/// The expiry of an entry that never expires.
pub(crate) const NEVER: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: Key,
    /// Wall-clock milliseconds after which the entry no longer counts.
    expires_ms: u64,
}

/// What [`DedupCache::admit`] made of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The key is in the window and has not expired.
    Duplicate,
    /// The key was added; `evicted` when the oldest entry made room for it.
    New {
        /// The ring was full: its oldest entry went.
        evicted: bool,
    },
}

/// A bounded set of keys with expiries, oldest evicted first.
pub(crate) struct DedupCache {
    capacity: usize,
    /// In arrival order from `oldest`, wrapping once the ring is full. A slot whose key was
    /// admitted again after it expired stays in the ring (it still takes its place in the
    /// order) but no longer in `index`.
    slots: Vec<Slot>,
    /// The slot to overwrite next once the ring is full.
    oldest: usize,
    /// Slot numbers of the current entry of each key, hashed by the key's first word.
    index: HashTable<u32>,
}

impl std::fmt::Debug for DedupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupCache").field("capacity", &self.capacity).field("len", &self.len()).finish()
    }
}

impl DedupCache {
    /// An empty cache of at most `capacity` entries (at least 1, at most `u32::MAX`). Memory
    /// is taken as entries arrive, not up front.
    pub(crate) fn new(capacity: usize) -> Self {
        DedupCache {
            capacity: capacity.clamp(1, u32::MAX as usize),
            slots: Vec::new(),
            oldest: 0,
            index: HashTable::new(),
        }
    }

    /// Entries held (expired ones included until they are overwritten).
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Slots taken in the arrival-order ring: entries admitted, up to the capacity (a key
    /// admitted again after it expired takes a new slot; its old one counts until overwritten).
    pub(crate) fn ring_len(&self) -> usize {
        self.slots.len()
    }

    /// Whether `key` is in the window and unexpired at `now_ms`.
    #[cfg(test)]
    pub(crate) fn contains(&self, key: Key, now_ms: u64) -> bool {
        let slots = &self.slots;
        self.index
            .find(key[0], |&i| slots[i as usize].key == key)
            .is_some_and(|&i| slots[i as usize].expires_ms > now_ms)
    }

    /// A duplicate if `key` is in the window and unexpired at `now_ms`; otherwise adds it,
    /// expiring at `expires_ms` ([`NEVER`] for no expiry).
    pub(crate) fn admit(&mut self, key: Key, expires_ms: u64, now_ms: u64) -> Seen {
        let slots = &self.slots;
        if let Ok(entry) = self.index.find_entry(key[0], |&i| slots[i as usize].key == key) {
            if slots[*entry.get() as usize].expires_ms > now_ms {
                return Seen::Duplicate;
            }
            // Expired: the key starts again at the young end of the window.
            entry.remove();
        }
        Seen::New { evicted: self.insert(key, expires_ms) }
    }

    /// Adds an entry replayed from a log, replacing the key's earlier entry if it has one (the
    /// key was admitted again after it expired); true when the oldest slot was overwritten.
    pub(crate) fn restore(&mut self, key: Key, expires_ms: u64) -> bool {
        let slots = &self.slots;
        if let Ok(entry) = self.index.find_entry(key[0], |&i| slots[i as usize].key == key) {
            entry.remove();
        }
        self.insert(key, expires_ms)
    }

    /// Adds `key` (known not to be in the index); true when the oldest slot was overwritten.
    fn insert(&mut self, key: Key, expires_ms: u64) -> bool {
        let slot = Slot { key, expires_ms };
        let (at, evicted) = if self.slots.len() < self.capacity {
            if self.slots.len() == self.slots.capacity() {
                // Grow by doubling, but never past the bound.
                let more = self.slots.len().max(16).min(self.capacity - self.slots.len());
                self.slots.reserve_exact(more);
            }
            self.slots.push(slot);
            (self.slots.len() - 1, false)
        } else {
            let at = self.oldest;
            let old = self.slots[at].key;
            if let Ok(entry) = self.index.find_entry(old[0], |&i| i as usize == at) {
                entry.remove();
            }
            self.slots[at] = slot;
            self.oldest = (at + 1) % self.capacity;
            (at, true)
        };
        let slots = &self.slots;
        self.index.insert_unique(key[0], at as u32, |&i| slots[i as usize].key[0]);
        evicted
    }

    /// Heap bytes held (what the memory figures in the docs measure).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.index.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u64) -> Key {
        // Spread like a hash: the table hashes by the first word.
        [n.wrapping_mul(0x9E37_79B9_7F4A_7C15), n]
    }

    #[test]
    fn a_key_seen_again_is_a_duplicate() {
        let mut c = DedupCache::new(10);
        assert_eq!(c.admit(k(1), NEVER, 0), Seen::New { evicted: false });
        assert_eq!(c.admit(k(1), NEVER, 5), Seen::Duplicate);
        assert_eq!(c.admit(k(2), NEVER, 5), Seen::New { evicted: false });
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn the_size_bounds_the_entries_and_the_oldest_goes_first() {
        let mut c = DedupCache::new(3);
        for n in 0..3 {
            assert_eq!(c.admit(k(n), NEVER, 0), Seen::New { evicted: false });
        }
        assert_eq!(c.admit(k(3), NEVER, 0), Seen::New { evicted: true });
        assert_eq!(c.len(), 3);
        assert!(!c.contains(k(0), 0), "the oldest went");
        assert!(c.contains(k(1), 0) && c.contains(k(2), 0) && c.contains(k(3), 0));
        // Key 0 is new again and pushes out key 1, then key 2.
        assert_eq!(c.admit(k(0), NEVER, 0), Seen::New { evicted: true });
        assert!(!c.contains(k(1), 0));
        assert_eq!(c.admit(k(4), NEVER, 0), Seen::New { evicted: true });
        assert!(!c.contains(k(2), 0));
        assert!(c.contains(k(3), 0) && c.contains(k(0), 0) && c.contains(k(4), 0));
        assert!(c.slots.capacity() <= 3, "never more slots than the bound");
    }

    #[test]
    fn an_entry_expires_and_the_key_starts_again() {
        let mut c = DedupCache::new(3);
        c.admit(k(1), 100, 0);
        c.admit(k(2), NEVER, 0);
        assert_eq!(c.admit(k(1), 200, 99), Seen::Duplicate, "not expired before its time");
        assert_eq!(c.admit(k(1), 200, 100), Seen::New { evicted: false }, "expired at its time");
        assert_eq!(c.admit(k(1), 200, 150), Seen::Duplicate, "the new expiry applies");
        // The expired slot of key 1 is still the oldest: it goes first, and key 1's new entry
        // (the young one) stays.
        assert_eq!(c.admit(k(3), NEVER, 150), Seen::New { evicted: true });
        assert!(c.contains(k(1), 150) && c.contains(k(2), 150) && c.contains(k(3), 150));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn keys_with_the_same_first_word_are_told_apart() {
        let mut c = DedupCache::new(4);
        c.admit([7, 1], NEVER, 0);
        assert_eq!(c.admit([7, 2], NEVER, 0), Seen::New { evicted: false });
        assert_eq!(c.admit([7, 1], NEVER, 0), Seen::Duplicate);
        assert_eq!(c.admit([7, 2], NEVER, 0), Seen::Duplicate);
    }

    #[test]
    fn agrees_with_a_simple_model() {
        use std::collections::{HashMap, VecDeque};
        let mut c = DedupCache::new(50);
        let mut order: VecDeque<(u64, u64)> = VecDeque::new();
        let mut live: HashMap<u64, u64> = HashMap::new();
        let mut x = 12345u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 120;
            let now = step;
            let expires = if x.is_multiple_of(3) { NEVER } else { now + x % 400 };
            let model_dup = live.get(&key).is_some_and(|&e| e > now);
            let got = c.admit(k(key), expires, now);
            assert_eq!(got == Seen::Duplicate, model_dup, "step {step}");
            if !model_dup {
                order.push_back((key, expires));
                live.insert(key, expires);
                if order.len() > 50 {
                    let (old, e) = order.pop_front().unwrap();
                    if live.get(&old) == Some(&e) && !order.iter().any(|&(k2, _)| k2 == old) {
                        live.remove(&old);
                    }
                }
            }
        }
    }

    /// The figure docs/features/deduplication.md states: heap bytes for a full cache of 1M keys.
    #[test]
    fn a_million_keys_cost_a_bounded_amount() {
        let mut c = DedupCache::new(1_000_000);
        for n in 0..1_000_000 {
            c.admit(k(n), NEVER, 0);
        }
        let bytes = c.heap_bytes();
        println!("1M keys: {} bytes ({:.1} bytes per key)", bytes, bytes as f64 / 1e6);
        assert!(bytes < 40_000_000, "{bytes}");
        // A full cache takes no more as keys keep arriving.
        for n in 1_000_000..1_500_000 {
            c.admit(k(n), NEVER, 0);
        }
        assert_eq!(c.heap_bytes(), bytes);
    }
}
