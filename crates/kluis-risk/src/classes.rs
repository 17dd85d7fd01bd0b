//! Equivalence classes: records grouped by their tuple of quasi-identifier codes.
//!
//! Each column's codes are combined into one `u64` key by mixed radix (missing is the digit
//! `cardinality`); when the product of radices would overflow, the key built so far is first
//! densified to class numbers and the combination continues from there. Keys are then numbered
//! in order of first appearance, through a direct table when the key space is small and a hash
//! map otherwise.

use crate::coded::MISSING;
use crate::hash::fast_map;

/// The partition of records into classes of identical quasi-identifier tuples.
#[derive(Debug, Clone)]
pub struct Classes {
    /// Class number of each record; classes are numbered in order of first appearance.
    pub class_of: Vec<u32>,
    /// Number of records in each class.
    pub sizes: Vec<u32>,
    /// One record of each class (its first).
    pub first: Vec<u32>,
}

impl Classes {
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// Records grouped by class: `members[offsets[c]..offsets[c + 1]]` are the records of class
    /// `c`, in record order (a counting sort).
    pub fn members(&self) -> (Vec<usize>, Vec<u32>) {
        let mut offsets = Vec::with_capacity(self.sizes.len() + 1);
        let mut total = 0usize;
        offsets.push(0);
        for &s in &self.sizes {
            total += s as usize;
            offsets.push(total);
        }
        let mut next = offsets[..offsets.len() - 1].to_vec();
        let mut members = vec![0u32; total];
        for (record, &class) in self.class_of.iter().enumerate() {
            let slot = &mut next[class as usize];
            members[*slot] = record as u32;
            *slot += 1;
        }
        (offsets, members)
    }
}

/// Groups `rows` records by the tuple of codes in `columns` (each of length `rows`).
/// [`MISSING`] is a value of its own here.
pub fn group(columns: &[&[u32]], rows: usize) -> Classes {
    let mut key = vec![0u64; rows];
    let mut radix_product: u64 = 1;
    for column in columns {
        debug_assert_eq!(column.len(), rows);
        let radix = radix_of(column);
        if radix_product.checked_mul(radix).is_none() {
            let dense = number_keys(&key);
            radix_product = dense.sizes.len().max(1) as u64;
            for (k, c) in key.iter_mut().zip(&dense.class_of) {
                *k = u64::from(*c);
            }
        }
        let missing_digit = radix - 1;
        for (k, &code) in key.iter_mut().zip(column.iter()) {
            let digit = if code == MISSING {
                missing_digit
            } else {
                u64::from(code)
            };
            *k = *k * radix + digit;
        }
        radix_product *= radix;
    }
    if radix_product <= (rows as u64).saturating_mul(4).max(1 << 16) {
        number_small_keys(&key, radix_product as usize)
    } else {
        number_keys(&key)
    }
}

/// Radix of a column: its largest code plus one, plus one more digit for missing.
fn radix_of(column: &[u32]) -> u64 {
    let max = column
        .iter()
        .filter(|&&c| c != MISSING)
        .max()
        .map_or(0, |&m| u64::from(m) + 1);
    max + 1
}

fn number_small_keys(key: &[u64], space: usize) -> Classes {
    let mut slot = vec![u32::MAX; space];
    let mut classes = Classes {
        class_of: Vec::with_capacity(key.len()),
        sizes: Vec::new(),
        first: Vec::new(),
    };
    for (record, &k) in key.iter().enumerate() {
        let s = &mut slot[k as usize];
        if *s == u32::MAX {
            *s = classes.sizes.len() as u32;
            classes.sizes.push(0);
            classes.first.push(record as u32);
        }
        classes.sizes[*s as usize] += 1;
        classes.class_of.push(*s);
    }
    classes
}

fn number_keys(key: &[u64]) -> Classes {
    let mut index = fast_map::<u64, u32>(key.len() / 4 + 16);
    let mut classes = Classes {
        class_of: Vec::with_capacity(key.len()),
        sizes: Vec::new(),
        first: Vec::new(),
    };
    for (record, &k) in key.iter().enumerate() {
        let next = classes.sizes.len() as u32;
        let class = *index.entry(k).or_insert(next);
        if class == next {
            classes.sizes.push(0);
            classes.first.push(record as u32);
        }
        classes.sizes[class as usize] += 1;
        classes.class_of.push(class);
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_identical_tuples_and_keeps_missing_apart() {
        let a = [0, 0, 1, MISSING, MISSING];
        let b = [5, 5, 5, 5, 5];
        let classes = group(&[&a, &b], 5);
        assert_eq!(classes.class_of, vec![0, 0, 1, 2, 2]);
        assert_eq!(classes.sizes, vec![2, 1, 2]);
        assert_eq!(classes.first, vec![0, 2, 3]);
        let (offsets, members) = classes.members();
        assert_eq!(offsets, vec![0, 2, 3, 5]);
        assert_eq!(members, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn wide_keys_that_overflow_u64_still_group_exactly() {
        // Ten columns with codes up to 2^20 need 210 bits of mixed radix: forces densification.
        let rows = 6;
        let cols: Vec<Vec<u32>> = (0..10)
            .map(|j| {
                (0..rows)
                    .map(|r| {
                        if r % 3 == 0 {
                            1 << 20
                        } else {
                            (r % 3 + j) as u32
                        }
                    })
                    .collect()
            })
            .collect();
        let slices: Vec<&[u32]> = cols.iter().map(Vec::as_slice).collect();
        let classes = group(&slices, rows);
        assert_eq!(classes.class_of, vec![0, 1, 2, 0, 1, 2]);
    }
}
