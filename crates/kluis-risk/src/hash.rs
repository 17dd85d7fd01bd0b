//! Hash maps for the grouping hot loops: foldhash with a fixed seed, so runs are reproducible.

use std::collections::HashMap;

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

pub fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, foldhash::fast::FixedState::default())
}
