//! Per-connection state by channel number. Clients number their channels from 1 up, so low
//! numbers live in a vector indexed by number (a lookup per frame stays an index); any number
//! from 256 up lives in a hash map, so what a channel costs never depends on its number (a
//! client opening channel 65535 pays for one entry, not 65536 slots).

use rustc_hash::FxHashMap;

/// Numbers below this are kept in the vector.
const LOW: usize = 256;

/// A map from channel number to `T`; see the module documentation.
#[derive(Debug)]
pub struct ChannelMap<T> {
    low: Vec<Option<T>>,
    high: FxHashMap<u16, T>,
    len: usize,
}

impl<T> Default for ChannelMap<T> {
    fn default() -> Self {
        ChannelMap { low: Vec::new(), high: FxHashMap::default(), len: 0 }
    }
}

impl<T> ChannelMap<T> {
    /// The entry of channel `n`.
    #[inline]
    pub fn get(&self, n: &u16) -> Option<&T> {
        match self.low.get(usize::from(*n)) {
            Some(slot) => slot.as_ref(),
            None if usize::from(*n) < LOW => None,
            None => self.high.get(n),
        }
    }

    /// The entry of channel `n`, to change.
    #[inline]
    pub fn get_mut(&mut self, n: &u16) -> Option<&mut T> {
        match self.low.get_mut(usize::from(*n)) {
            Some(slot) => slot.as_mut(),
            None if usize::from(*n) < LOW => None,
            None => self.high.get_mut(n),
        }
    }

    /// Whether channel `n` has an entry.
    pub fn contains_key(&self, n: &u16) -> bool {
        self.get(n).is_some()
    }

    /// Sets the entry of channel `n`; returns the one it replaces.
    pub fn insert(&mut self, n: u16, value: T) -> Option<T> {
        let index = usize::from(n);
        let old = if index < LOW {
            if self.low.len() <= index {
                self.low.resize_with(index + 1, || None);
            }
            self.low[index].replace(value)
        } else {
            self.high.insert(n, value)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the entry of channel `n`.
    pub fn remove(&mut self, n: &u16) -> Option<T> {
        let index = usize::from(*n);
        let old =
            if index < LOW { self.low.get_mut(index).and_then(Option::take) } else { self.high.remove(n) };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// How many channels have an entry.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no channel has an entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry with its number: low numbers in order, then the others.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &T)> {
        let low = self.low.iter().enumerate().filter_map(|(n, slot)| Some((n as u16, slot.as_ref()?)));
        low.chain(self.high.iter().map(|(&n, v)| (n, v)))
    }

    /// Every entry with its number, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u16, &mut T)> {
        let low = self.low.iter_mut().enumerate().filter_map(|(n, slot)| Some((n as u16, slot.as_mut()?)));
        low.chain(self.high.iter_mut().map(|(&n, v)| (n, v)))
    }

    /// Every channel number with an entry.
    pub fn keys(&self) -> impl Iterator<Item = u16> + '_ {
        self.iter().map(|(n, _)| n)
    }

    /// Every entry.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.iter().map(|(_, v)| v)
    }

    /// Every entry, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.iter_mut().map(|(_, v)| v)
    }

    /// Takes every entry out, with its number.
    pub fn drain(&mut self) -> impl Iterator<Item = (u16, T)> + '_ {
        self.len = 0;
        let low = std::mem::take(&mut self.low);
        let low = low.into_iter().enumerate().filter_map(|(n, slot)| Some((n as u16, slot?)));
        low.chain(self.high.drain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_and_high_numbers_behave_alike() {
        let mut m = ChannelMap::default();
        assert!(m.is_empty());
        for n in [1u16, 255, 256, 65535] {
            assert_eq!(m.insert(n, u32::from(n)), None);
            assert_eq!(m.get(&n), Some(&u32::from(n)));
        }
        assert_eq!(m.insert(1, 10), Some(1));
        assert_eq!(m.len(), 4);
        assert!(!m.contains_key(&2) && !m.contains_key(&300));
        *m.get_mut(&65535).unwrap() += 1;
        let mut all: Vec<(u16, u32)> = m.iter().map(|(n, v)| (n, *v)).collect();
        all.sort_unstable();
        assert_eq!(all, [(1, 10), (255, 255), (256, 256), (65535, 65535 + 1)]);
        assert_eq!(m.remove(&256), Some(256));
        assert_eq!(m.remove(&256), None);
        assert_eq!(m.len(), 3);
        let mut drained: Vec<u16> = m.drain().map(|(n, _)| n).collect();
        drained.sort_unstable();
        assert_eq!(drained, [1, 255, 65535]);
        assert!(m.is_empty() && m.get(&1).is_none());
    }

    #[test]
    fn a_high_number_allocates_no_slots_for_the_numbers_below() {
        let mut m = ChannelMap::default();
        m.insert(65535, ());
        assert!(m.low.capacity() == 0, "no vector slots for channel 65535");
    }
}
