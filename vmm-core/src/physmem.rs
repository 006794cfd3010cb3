//! Physical memory for the VMM: a bump allocator over usable RAM.
//!
//! The VMM allocates once at boot (VMCB/VMCS, nested tables, guest RAM) and
//! never frees, so a bump allocator over the boot loader's usable regions,
//! minus what is already in use (the VMM image, the guest module, the first
//! MiB), is all it needs. Allocation is by size and power-of-two alignment.

use crate::bootinfo::Region;

/// Most free ranges tracked (usable regions split around reserved ones).
const MAX_RANGES: usize = 64;

/// A bump allocator over a set of free physical ranges.
#[derive(Debug, Clone)]
pub struct PhysAlloc {
    free: [Region; MAX_RANGES],
    count: usize,
}

impl PhysAlloc {
    /// Free memory is `ram` minus every range in `reserved`.
    pub fn new(ram: &[Region], reserved: &[Region]) -> Self {
        let mut a = PhysAlloc {
            free: [Region::default(); MAX_RANGES],
            count: 0,
        };
        for r in ram {
            a.add(*r);
        }
        for r in reserved {
            a.remove(*r);
        }
        a
    }

    fn add(&mut self, r: Region) {
        if r.len == 0 {
            return;
        }
        if let Some(slot) = self.free.get_mut(self.count) {
            *slot = r;
            self.count = self.count.saturating_add(1);
        }
    }

    fn remove(&mut self, cut: Region) {
        let old = self.free;
        let n = self.count;
        self.count = 0;
        for r in old.iter().take(n) {
            if cut.end() <= r.start || cut.start >= r.end() {
                self.add(*r);
                continue;
            }
            if r.start < cut.start {
                self.add(Region {
                    start: r.start,
                    len: cut.start.saturating_sub(r.start),
                });
            }
            if cut.end() < r.end() {
                self.add(Region {
                    start: cut.end(),
                    len: r.end().saturating_sub(cut.end()),
                });
            }
        }
    }

    /// The free ranges left.
    pub fn free(&self) -> &[Region] {
        self.free.get(..self.count).unwrap_or(&[])
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free()
            .iter()
            .map(|r| r.len)
            .fold(0, u64::saturating_add)
    }

    /// Take `len` bytes aligned to `align` (a power of two) below `limit`,
    /// from the first range where it fits. `None` when nothing fits.
    pub fn alloc(&mut self, len: u64, align: u64, limit: u64) -> Option<u64> {
        if len == 0 || !align.is_power_of_two() {
            return None;
        }
        let mask = align.wrapping_sub(1);
        for i in 0..self.count {
            let r = *self.free.get(i)?;
            let start = r.start.checked_add(mask)? & !mask;
            let end = start.checked_add(len)?;
            if end <= r.end() && end <= limit {
                // Keep the unaligned head as its own range if there is one.
                let head = Region {
                    start: r.start,
                    len: start.saturating_sub(r.start),
                };
                let tail = Region {
                    start: end,
                    len: r.end().saturating_sub(end),
                };
                if let Some(slot) = self.free.get_mut(i) {
                    *slot = tail;
                }
                self.add(head);
                return Some(start);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn reserved_ranges_are_never_handed_out() {
        let ram = [
            Region {
                start: 0,
                len: 0x9f000,
            },
            Region {
                start: 0x10_0000,
                len: 0x0ff0_0000,
            },
        ];
        let image = Region {
            start: 0x10_0000,
            len: 0x5_0000,
        };
        let module = Region {
            start: 0x0f00_0000,
            len: 0x1_0000,
        };
        let low = Region {
            start: 0,
            len: 0x10_0000,
        };
        let mut a = PhysAlloc::new(&ram, &[image, module, low]);
        assert_eq!(a.free_bytes(), 0x0ff0_0000 - 0x5_0000 - 0x1_0000);
        let mut got = std::vec::Vec::new();
        while let Some(p) = a.alloc(0x20_0000, 0x20_0000, u64::MAX) {
            assert_eq!(p % 0x20_0000, 0);
            for r in [image, module, low] {
                assert!(
                    p + 0x20_0000 <= r.start || p >= r.end(),
                    "{p:#x} overlaps {r:?}"
                );
            }
            for &q in &got {
                assert!(p + 0x20_0000 <= q || p >= q + 0x20_0000);
            }
            got.push(p);
        }
        assert!(got.len() > 100);
        // Small allocations use up what is left between.
        let f = a.alloc(0x1000, 0x1000, u64::MAX).unwrap();
        assert_eq!(f % 0x1000, 0);
    }

    #[test]
    fn limit_alignment_and_zero() {
        let mut a = PhysAlloc::new(
            &[Region {
                start: 0x1234,
                len: 0x10_0000,
            }],
            &[],
        );
        assert_eq!(a.alloc(0, 0x1000, u64::MAX), None);
        assert_eq!(a.alloc(0x1000, 3, u64::MAX), None);
        assert_eq!(a.alloc(0x1000, 0x1000, 0x2000), None);
        assert_eq!(a.alloc(0x1000, 0x1000, 0x3000), Some(0x2000));
        assert_eq!(a.alloc(u64::MAX, 1, u64::MAX), None);
    }
}
