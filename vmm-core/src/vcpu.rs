//! The calling vCPU as `vmmcall` handlers see it: vmmcall's own adapter,
//! [`vmmcall::GuestVcpu`], over the backend's register save area and guest
//! RAM. This module only says what guest RAM is ([`GuestRam`]).
//!
//! Linear addresses go through the guest's own page tables (as the guest
//! set CR0/CR3/CR4/EFER, with the CPU's MAXPHYADDR) with the caller's
//! privilege, then through guest RAM: a guest-physical address outside
//! guest RAM is `OutsideRam`, so the VMM's own memory can never be read or
//! written on a guest's behalf.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use core::sync::atomic::{AtomicU8, Ordering};
use vmmcall::paging::GuestPhysMemory;
use vmmcall::{GuestRegs, MemError, VcpuState};

/// A vCPU stopped at an exit, with the state a handler may use: built by
/// the backends with [`vmmcall::GuestVcpu::lazy`] over the backend itself,
/// so the CPL (VMX: a VMREAD of the SS access rights) and the paging mode
/// (CR0, CR3, CR4, EFER) are read only if a handler needs them.
pub type GuestVcpu<'a> = vmmcall::GuestVcpu<&'a mut GuestRegs, GuestRam, &'a dyn VcpuState>;

/// The guest's RAM: guest-physical `[0, size)` is host-physical
/// `[host_base, host_base + size)`, identity-mapped in the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRam {
    /// Host-physical (and VMM-virtual) address of guest-physical 0.
    pub host_base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl GuestRam {
    /// The host address of `[gpa, gpa + len)` if all of it is guest RAM.
    pub fn host_range(&self, gpa: u64, len: u64) -> Option<u64> {
        let end = gpa.checked_add(len)?;
        if end > self.size {
            return None;
        }
        self.host_base.checked_add(gpa)
    }
}

/// Guest RAM as guest-physical memory for the page walker. Every access
/// is bounds-checked against guest RAM; anything else is `OutsideRam`.
impl GuestPhysMemory for GuestRam {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let src = self
            .host_range(gpa, buf.len() as u64)
            .ok_or(MemError::OutsideRam { gpa })?;
        // SAFETY: host_range checked that [gpa, gpa + len) is guest RAM,
        // which the VMM identity-maps and which never overlaps VMM memory
        // such as `buf`.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let dst = self
            .host_range(gpa, data.len() as u64)
            .ok_or(MemError::OutsideRam { gpa })?;
        // SAFETY: as in read_phys: the range is guest RAM, disjoint from `data`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        Ok(())
    }

    /// One 8-byte atomic load (docs/ABI.md, "What read once means for
    /// guest memory"): another vCPU may write the entry while this one
    /// walks, so a byte copy could combine halves of two entries, and
    /// would be a data race in Rust's memory model. Atomic rather than
    /// volatile: a volatile read is a non-atomic access there, and may be
    /// split. An aligned 8-byte access is single-copy atomic on x86-64
    /// (Intel SDM Vol. 3A §10.1.1, AMD APM Vol. 2 §7.1), and `Relaxed`
    /// compiles to one `mov`: the walk needs the one value, no ordering
    /// with other locations (the processor's own walker gives none).
    fn read_entry(&self, gpa: u64) -> Result<u64, MemError> {
        let host = self
            .host_range(gpa, 8)
            .ok_or(MemError::OutsideRam { gpa })?;
        if host % 8 != 0 {
            // The walker's entries are 8-byte aligned, and so is guest
            // RAM's host base; a misaligned one is not an entry.
            return Err(MemError::OutsideRam { gpa });
        }
        // SAFETY: host_range checked that the 8 bytes are guest RAM, which
        // the VMM identity-maps for its whole life (valid for reads, never
        // freed, never a Rust object of the VMM's); `host` is 8-byte
        // aligned (checked above). The guest's writes to it, from any
        // vCPU, are the processor's, outside Rust's memory model like a
        // device's; an atomic load is the access that tolerates them.
        // (A handler's write_phys on another CPU to the same entry would
        // still be a byte copy racing this load; vmm-core runs one vCPU.)
        let entry = unsafe { core::sync::atomic::AtomicU64::from_ptr(host as *mut u64) };
        Ok(entry.load(Ordering::Relaxed))
    }
}

/// The CPU's MAXPHYADDR (CPUID `0x8000_0008`, which the guest sees
/// unchanged), read once: the page walker's reserved-bit checks use it.
pub fn maxphyaddr() -> u8 {
    static CACHED: AtomicU8 = AtomicU8::new(0);
    match CACHED.load(Ordering::Relaxed) {
        0 => {
            let max_ext = crate::cpu::cpuid(0x8000_0000, 0).eax;
            let eax = if max_ext >= 0x8000_0008 {
                crate::cpu::cpuid(0x8000_0008, 0).eax
            } else {
                0
            };
            let bits = vmmcall::cpuid::maxphyaddr(eax);
            CACHED.store(bits, Ordering::Relaxed);
            bits
        }
        bits => bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_ram_ranges() {
        let r = GuestRam {
            host_base: 0x400_0000,
            size: 0x200_0000,
        };
        assert_eq!(r.host_range(0, 0x200_0000), Some(0x400_0000));
        assert_eq!(r.host_range(0x1ff_ffff, 1), Some(0x5ff_ffff));
        assert_eq!(r.host_range(0x1ff_ffff, 2), None);
        assert_eq!(r.host_range(u64::MAX, 2), None);
    }

    #[test]
    fn paging_entries_are_read_whole_and_only_inside_ram() {
        // One page of "guest RAM": a table of 512 entries, 8-byte aligned.
        let mut table = [0u64; 512];
        for (i, e) in (0u64..).zip(table.iter_mut()) {
            *e = i << 12 | 0x67 | i << 52;
        }
        let ram = GuestRam {
            host_base: table.as_ptr() as u64,
            size: 4096,
        };
        for i in [0u64, 1, 300, 511] {
            assert_eq!(ram.read_entry(i * 8), Ok(table[i as usize]), "entry {i}");
        }
        // Past RAM, straddling its end, misaligned: not an entry.
        assert_eq!(
            ram.read_entry(4096),
            Err(MemError::OutsideRam { gpa: 4096 })
        );
        assert_eq!(
            ram.read_entry(4092),
            Err(MemError::OutsideRam { gpa: 4092 })
        );
        assert_eq!(ram.read_entry(4), Err(MemError::OutsideRam { gpa: 4 }));
    }
}
