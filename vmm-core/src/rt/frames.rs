//! VMM-owned page frames for the backends (feature `rt`): zeroed pages for
//! control structures (VMCB, VMCS, host save area, bitmaps) and the nested
//! page tables built in them.
//!
//! Frames come from [`PhysAlloc`] below 4 GiB: the boot stub identity-maps
//! only the first 4 GiB, and VMX structures may be limited to 32-bit
//! addresses (IA32_VMX_BASIC bit 48).

use crate::nested;
use crate::physmem::PhysAlloc;

/// One page.
pub const PAGE: u64 = 4096;

/// A zeroed, 4 KiB-aligned page below 4 GiB, or `None` when memory is out.
pub fn zeroed_page(alloc: &mut PhysAlloc) -> Option<u64> {
    let pa = alloc.alloc(PAGE, PAGE, 1 << 32)?;
    // SAFETY: `pa` is a fresh page of RAM below 4 GiB from the allocator,
    // identity-mapped and owned by nobody else.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, PAGE as usize) };
    Some(pa)
}

/// Nested page tables built in pages from [`zeroed_page`].
pub struct Tables<'a>(pub &'a mut PhysAlloc);

impl nested::TableMemory for Tables<'_> {
    fn alloc_page(&mut self) -> Option<u64> {
        zeroed_page(self.0)
    }
    fn write_u64(&mut self, pa: u64, value: u64) {
        // SAFETY: `pa` lies in a table page just allocated by zeroed_page
        // (identity-mapped, owned by the VMM), 8-byte aligned.
        unsafe { (pa as *mut u64).write_volatile(value) }
    }
}
