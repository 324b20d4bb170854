//! The firmware's one sort (issue 16). `core`'s sorts are instantiated per element type and key, each
//! with its quicksort, heapsort and small-sort networks: ten instantiations took 38 KB of code. Here
//! the algorithm (a heapsort, O(n log n), made stable by sorting indices with the index as the last
//! key) is compiled once, over an order seen through two operations; each call site adds only its
//! comparison and the loop that applies the permutation.
//!
//! A service every layer may use, like `time`; pure logic, tested on the host.

use alloc::vec::Vec;

/// The order being sorted, seen by position: the one instance of [`heapsort`] works on any of them.
trait Indexed {
    /// Whether the element at position `a` orders before the one at position `b`.
    fn less(&mut self, a: usize, b: usize) -> bool;
    fn swap(&mut self, a: usize, b: usize);
}

/// A permutation of `v`'s indices, ordered by `less` and, among equals, by index (which makes the
/// heapsort stable).
struct Order<'a, T, F> {
    v: &'a [T],
    order: &'a mut [usize],
    less: F,
}

impl<T, F: FnMut(&T, &T) -> bool> Indexed for Order<'_, T, F> {
    fn less(&mut self, a: usize, b: usize) -> bool {
        let (i, j) = (self.order[a], self.order[b]);
        (self.less)(&self.v[i], &self.v[j]) || (i < j && !(self.less)(&self.v[j], &self.v[i]))
    }
    fn swap(&mut self, a: usize, b: usize) {
        self.order.swap(a, b);
    }
}

/// Moves element `node` down the max-heap held in `0..end` until neither child is greater.
fn sift_down(h: &mut dyn Indexed, mut node: usize, end: usize) {
    loop {
        let mut child = 2 * node + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && h.less(child, child + 1) {
            child += 1;
        }
        if !h.less(node, child) {
            return;
        }
        h.swap(node, child);
        node = child;
    }
}

// Never inlined: one copy for every call site (the point of this module).
#[inline(never)]
fn heapsort(len: usize, h: &mut dyn Indexed) {
    for node in (0..len / 2).rev() {
        sift_down(h, node, len);
    }
    for end in (1..len).rev() {
        h.swap(0, end);
        sift_down(h, 0, end);
    }
}

/// Sorts `v` so that no element is `less` than one before it (`less` a strict weak order). Stable:
/// equal elements keep their order. Allocates one index per element.
pub fn sort_by<T>(v: &mut [T], less: impl FnMut(&T, &T) -> bool) {
    let mut order: Vec<usize> = (0..v.len()).collect();
    heapsort(
        v.len(),
        &mut Order {
            v,
            order: &mut order,
            less,
        },
    );
    // Position i takes the element that was at order[i]: each cycle of the permutation, one swap per
    // element; a position done is marked by order[i] == i.
    for start in 0..v.len() {
        let mut at = start;
        loop {
            let from = core::mem::replace(&mut order[at], at);
            if from == start {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

/// Sorts `v` by `key`, ascending; stable.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a) < key(b));
}

/// Sorts `v` ascending; stable.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, |a, b| a < b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_cores_stable_sort_on_every_short_input_and_a_long_one() {
        // Every sequence of length 0..=6 over 0..4 (duplicates included), then 10,000 pseudo-random values.
        for len in 0..=6u32 {
            for code in 0..4u32.pow(len) {
                // (key, position): equal keys must keep their positions' order.
                let mut v: Vec<(u32, u32)> =
                    (0..len).map(|i| (code / 4u32.pow(i) % 4, i)).collect();
                let mut want = v.clone();
                want.sort_by_key(|e| e.0);
                sort_by_key(&mut v, |e| e.0);
                assert_eq!(v, want);
            }
        }
        let mut x = 0x2545_f491_u32;
        let mut v: Vec<u32> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x % 1000
            })
            .collect();
        let mut want = v.clone();
        want.sort();
        sort(&mut v);
        assert_eq!(v, want);
    }

    #[test]
    fn by_key_and_by_order() {
        let mut v = [(3, 'a'), (1, 'b'), (2, 'c'), (1, 'd'), (3, 'e'), (1, 'f')];
        // Stable: equal keys keep their order, as with core's sort_by_key.
        let mut want = v;
        want.sort_by_key(|e| e.0);
        sort_by_key(&mut v, |e| e.0);
        assert_eq!(v, want);
        assert_eq!(v.map(|e| e.1), ['b', 'd', 'f', 'c', 'a', 'e']);
        sort_by(&mut v, |a, b| a.0 > b.0);
        assert_eq!(v.map(|e| e.1), ['a', 'e', 'c', 'b', 'd', 'f']);
        sort_by_key(&mut v, |e| core::cmp::Reverse(e.1));
        assert_eq!(v.map(|e| e.1), ['f', 'e', 'd', 'c', 'b', 'a']);
    }
}
