//! Nested page tables (AMD NPT, Intel EPT) that map exactly the guest's RAM.
//!
//! Guest-physical `[0, size)` maps to host-physical `[host_base, host_base +
//! size)` with 2 MiB pages; nothing else is mapped, so the VMM's own memory,
//! MMIO and everything outside guest RAM is unreachable for the guest (an
//! access is a nested page fault / EPT violation).
//!
//! Entry formats:
//! - NPT uses the long-mode page-table format (AMD APM Vol. 2 §15.25.5,
//!   "Nested Table Walk"); nested walks are user accesses, so every entry
//!   has U/S = 1: non-leaf `P|RW|US` = `0x7`, 2 MiB leaf adds `PS` (bit 7).
//! - EPT (Intel SDM Vol. 3C §29.3.2, Tables 29-1..29-4): non-leaf
//!   `R|W|X` = `0x7`; 2 MiB leaf `R|W|X`, memory type WB (6) in bits 5:3,
//!   IPAT (bit 6: ignore the guest's PAT, §29.3.7.2), bit 7 = page. With
//!   IPAT, guest RAM is write-back whatever the guest's PAT or page tables
//!   say, so a guest cannot alias VMM-visible memory with another type.
//!   NPT has no such bit: the guest's PAT combines with the nested entry's
//!   (AMD APM Vol. 2 §15.25.8), which can only make the guest's own RAM
//!   less cacheable for the guest. EPTP: memory type WB, page-walk length 4 - 1 = 3 in bits
//!   5:3 (SDM §25.6.11).

/// 2 MiB.
pub const LARGE_PAGE: u64 = 2 << 20;
const GIB: u64 = 1 << 30;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Which nested format to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// AMD nested paging.
    Npt,
    /// Intel extended page tables.
    Ept,
}

impl Format {
    fn table(self) -> u64 {
        0x7
    }
    fn leaf_2m(self) -> u64 {
        match self {
            Format::Npt => 0x87,
            Format::Ept => 0x7 | (6 << 3) | (1 << 6) | (1 << 7),
        }
    }
    /// A 4 KiB leaf that the guest may read but not write or execute,
    /// uncached: NPT `P|US|PWT|PCD` (no RW; the guest PAT combines, APM
    /// §15.25.8, and UC wins) and NX (bit 63); EPT `R`, memory type UC (0),
    /// IPAT.
    fn leaf_4k_mmio_read_only(self) -> u64 {
        match self {
            Format::Npt => 0x1 | 0x4 | 0x8 | 0x10 | (1 << 63),
            Format::Ept => 0x1 | (1 << 6),
        }
    }
}

/// The local APIC page: guest-physical = host-physical `0xFEE0_0000`.
pub const APIC_PAGE: u64 = 0xFEE0_0000;

/// Where nested tables are built: page frames the VMM owns.
pub trait TableMemory {
    /// A zeroed, 4 KiB-aligned page, by physical address.
    fn alloc_page(&mut self) -> Option<u64>;
    /// Write a 64-bit entry at physical address `pa`.
    fn write_u64(&mut self, pa: u64, value: u64);
}

/// Why nested tables could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedError {
    /// Size or base is not a multiple of 2 MiB, or size is 0 or > 512 GiB.
    BadLayout,
    /// No page for a table.
    OutOfMemory,
}

/// Build tables mapping guest-physical `[0, size)` to host-physical
/// `[host_base, host_base + size)`. Returns the physical address of the
/// PML4 (for N_CR3, or the EPTP's address bits).
pub fn build(
    mem: &mut dyn TableMemory,
    format: Format,
    host_base: u64,
    size: u64,
) -> Result<u64, NestedError> {
    build_with(mem, format, host_base, size, false)
}

/// [`build`], and with `apic` also [`APIC_PAGE`] mapped to itself,
/// read-only and uncached (crate::lapic: each CPU's own local APIC; the
/// guest's writes fault and are emulated). Guest RAM must end below 3 GiB.
pub fn build_with(
    mem: &mut dyn TableMemory,
    format: Format,
    host_base: u64,
    size: u64,
    apic: bool,
) -> Result<u64, NestedError> {
    if apic && size > 3 * GIB {
        return Err(NestedError::BadLayout);
    }
    if size == 0
        || !size.is_multiple_of(LARGE_PAGE)
        || !host_base.is_multiple_of(LARGE_PAGE)
        || size > 512 * GIB
    {
        return Err(NestedError::BadLayout);
    }
    host_base.checked_add(size).ok_or(NestedError::BadLayout)?;
    let pml4 = mem.alloc_page().ok_or(NestedError::OutOfMemory)?;
    let pdpt = mem.alloc_page().ok_or(NestedError::OutOfMemory)?;
    mem.write_u64(pml4, pdpt | format.table());
    let mut gpa = 0u64;
    let mut pd = 0u64;
    while gpa < size {
        if gpa.is_multiple_of(GIB) {
            pd = mem.alloc_page().ok_or(NestedError::OutOfMemory)?;
            mem.write_u64(pdpt.wrapping_add((gpa / GIB) * 8), pd | format.table());
        }
        let index = (gpa % GIB) / LARGE_PAGE;
        mem.write_u64(
            pd.wrapping_add(index * 8),
            (host_base.wrapping_add(gpa) & ADDR_MASK) | format.leaf_2m(),
        );
        gpa = gpa.wrapping_add(LARGE_PAGE);
    }
    if apic {
        let pd = mem.alloc_page().ok_or(NestedError::OutOfMemory)?;
        let pt = mem.alloc_page().ok_or(NestedError::OutOfMemory)?;
        mem.write_u64(
            pdpt.wrapping_add((APIC_PAGE / GIB) * 8),
            pd | format.table(),
        );
        let index = (APIC_PAGE % GIB) / LARGE_PAGE;
        mem.write_u64(pd.wrapping_add(index * 8), pt | format.table());
        let index = (APIC_PAGE % LARGE_PAGE) / 4096;
        mem.write_u64(
            pt.wrapping_add(index * 8),
            APIC_PAGE | format.leaf_4k_mmio_read_only(),
        );
    }
    Ok(pml4)
}

/// The EPT pointer for a PML4 at `pml4`: WB, 4-level walk (SDM §25.6.11).
pub const fn eptp(pml4: u64) -> u64 {
    (pml4 & ADDR_MASK) | 6 | (3 << 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Mem {
        next: u64,
        words: BTreeMap<u64, u64>,
    }
    impl TableMemory for Mem {
        fn alloc_page(&mut self) -> Option<u64> {
            self.next += 0x1000;
            Some(0x10_0000 + self.next)
        }
        fn write_u64(&mut self, pa: u64, value: u64) {
            self.words.insert(pa, value);
        }
    }
    impl Mem {
        fn get(&self, pa: u64) -> u64 {
            self.words.get(&pa).copied().unwrap_or(0)
        }
        /// Walk like the CPU: Some(hpa) if mapped.
        fn walk(&self, root: u64, gpa: u64) -> Option<u64> {
            let e4 = self.get(root + ((gpa >> 39) & 511) * 8);
            if e4 & 1 == 0 {
                return None;
            }
            let e3 = self.get((e4 & ADDR_MASK) + ((gpa >> 30) & 511) * 8);
            if e3 & 1 == 0 {
                return None;
            }
            let e2 = self.get((e3 & ADDR_MASK) + ((gpa >> 21) & 511) * 8);
            if e2 & 1 == 0 {
                return None;
            }
            assert_ne!(e2 & 0x80, 0);
            Some((e2 & ADDR_MASK & !(LARGE_PAGE - 1)) + (gpa & (LARGE_PAGE - 1)))
        }
    }

    #[test]
    fn the_apic_page_is_mapped_read_only_to_itself() {
        for format in [Format::Npt, Format::Ept] {
            let mut m = Mem::default();
            let root = build_with(&mut m, format, 0x4000_0000, 8 * LARGE_PAGE, true).unwrap();
            let e4 = m.get(root);
            let e3 = m.get((e4 & ADDR_MASK) + 3 * 8);
            let e2 = m.get((e3 & ADDR_MASK) + 503 * 8);
            assert_eq!(e2 & 0x80, 0, "a table, not a 2 MiB page");
            let e1 = m.get(e2 & ADDR_MASK);
            assert_eq!(e1 & ADDR_MASK, APIC_PAGE);
            assert_eq!(e1 & 0x2, 0, "not writable ({format:?})");
            match format {
                Format::Npt => assert_eq!(e1 & 0x18, 0x18, "PCD|PWT"),
                Format::Ept => assert_eq!(e1 & 0x3F, 0x1, "read only, UC"),
            }
            // RAM still mapped; nothing else in the APIC's 2 MiB.
            assert_eq!(m.walk(root, 0x10_0000), Some(0x4010_0000));
            assert_eq!(m.get((e2 & ADDR_MASK) + 0x1FF * 8), 0);
        }
        let mut m = Mem::default();
        assert_eq!(
            build_with(&mut m, Format::Npt, 0, 4 * GIB, true),
            Err(NestedError::BadLayout)
        );
    }

    #[test]
    fn maps_exactly_guest_ram() {
        let mut m = Mem::default();
        let size = 3 * GIB + 4 * LARGE_PAGE;
        let root = build(&mut m, Format::Npt, 0x4000_0000, size).unwrap();
        assert_eq!(m.walk(root, 0), Some(0x4000_0000));
        assert_eq!(m.walk(root, 0x1234), Some(0x4000_1234));
        assert_eq!(m.walk(root, size - 1), Some(0x4000_0000 + size - 1));
        assert_eq!(m.walk(root, size), None);
        assert_eq!(m.walk(root, 4 * GIB), None);
        assert_eq!(m.walk(root, 1 << 39), None);
        // NPT entries are all user-accessible (nested walks are user accesses).
        assert!(m.words.values().all(|e| e & 0x7 == 0x7));
    }

    #[test]
    fn ept_format() {
        let mut m = Mem::default();
        let root = build(&mut m, Format::Ept, 0x20_0000, LARGE_PAGE).unwrap();
        assert_eq!(m.walk(root, 0x10), Some(0x20_0010));
        let leaf = m.words.values().copied().find(|e| e & 0x80 != 0).unwrap();
        assert_eq!(leaf & 0xff, 0xF7, "RWX, WB, IPAT, 2 MiB page");
        assert_eq!(eptp(root) & 0xfff, 0x1e);
    }

    #[test]
    fn rejects_bad_layouts() {
        let mut m = Mem::default();
        assert_eq!(
            build(&mut m, Format::Npt, 0, 0),
            Err(NestedError::BadLayout)
        );
        assert_eq!(
            build(&mut m, Format::Npt, 0x1000, LARGE_PAGE),
            Err(NestedError::BadLayout)
        );
        assert_eq!(
            build(&mut m, Format::Npt, 0, 0x1000),
            Err(NestedError::BadLayout)
        );
        assert_eq!(
            build(&mut m, Format::Npt, !(LARGE_PAGE - 1), LARGE_PAGE * 2),
            Err(NestedError::BadLayout)
        );
    }
}
