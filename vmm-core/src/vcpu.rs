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
        // SAFETY: host_range checked that [src, src + len) is guest RAM,
        // identity-mapped for the VMM's whole life and never a Rust object
        // of the VMM's.
        unsafe { copy_from_guest(src, buf) };
        Ok(())
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let dst = self
            .host_range(gpa, data.len() as u64)
            .ok_or(MemError::OutsideRam { gpa })?;
        // SAFETY: as in read_phys: the range is guest RAM.
        unsafe { copy_to_guest(data, dst) };
        Ok(())
    }

    /// A bounds check: all of guest RAM can be written.
    fn check_phys(&self, gpa: u64, len: usize) -> Result<(), MemError> {
        match self.host_range(gpa, len as u64) {
            Some(_) => Ok(()),
            None => Err(MemError::OutsideRam { gpa }),
        }
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
        // A handler's write_phys on another CPU to the same entry stores
        // from inline assembly (copy_to_guest), outside Rust's model too.
        let entry = unsafe { core::sync::atomic::AtomicU64::from_ptr(host as *mut u64) };
        Ok(entry.load(Ordering::Relaxed))
    }
}

/// Copy guest RAM at host address `src` into `buf`, each byte read once,
/// with `rep movsq` and `rep movsb` for the last bytes, in inline
/// assembly.
///
/// Other vCPUs may write guest RAM at any moment (their stores are the
/// processor's, outside Rust's memory model, like a device's), and so may
/// a handler on another CPU: a plain copy (`copy_nonoverlapping`) would be
/// a data race, which Rust leaves undefined, and would let the compiler
/// read a byte twice. Memory that inline assembly reads is outside what
/// the compiler may assume, so the copy is sound whatever other CPUs do
/// to it, and `rep movsb` reads each byte once (as rust-vmm's `vm-memory`
/// copies with volatile accesses). It is also a fast copy: Bochs counts a
/// tick per repetition, and counted 509 more ticks per name lookup for a
/// loop of relaxed atomic loads.
///
/// # Safety
/// `[src, src + buf.len())` must be mapped, readable memory that is no
/// Rust object of the VMM's (guest RAM).
unsafe fn copy_from_guest(src: u64, buf: &mut [u8]) {
    // SAFETY: the caller's range is readable, `buf` is writable for its
    // length, and the two do not overlap (guest RAM is no Rust object).
    // Rust's ABI leaves DF clear at a call, so the copy runs upwards; it
    // touches no stack and no flags.
    unsafe {
        core::arch::asm!(
            "rep movsq",
            "mov rcx, {tail}",
            "rep movsb",
            tail = in(reg) buf.len() % 8,
            inout("rcx") buf.len() / 8 => _,
            inout("rsi") src => _,
            inout("rdi") buf.as_mut_ptr() => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Copy `data` into guest RAM at host address `dst`, each byte written
/// once, with `rep movsq` and `rep movsb` (see [`copy_from_guest`]).
///
/// # Safety
/// `[dst, dst + data.len())` must be mapped, writable memory that is no
/// Rust object of the VMM's (guest RAM).
unsafe fn copy_to_guest(data: &[u8], dst: u64) {
    // SAFETY: as in copy_from_guest, from `data` to the caller's range.
    unsafe {
        core::arch::asm!(
            "rep movsq",
            "mov rcx, {tail}",
            "rep movsb",
            tail = in(reg) data.len() % 8,
            inout("rcx") data.len() / 8 => _,
            inout("rsi") data.as_ptr() => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags),
        );
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
    extern crate std;

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
    fn guest_copies_are_exact_at_every_alignment() {
        let mut ram = [0u8; 64];
        for (i, b) in ram.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut g = GuestRam {
            host_base: ram.as_mut_ptr() as u64,
            size: 64,
        };
        for start in 0..9u64 {
            for len in [0usize, 1, 7, 8, 9, 17, 40] {
                let mut buf = [0xEEu8; 40];
                g.read_phys(start, &mut buf[..len]).unwrap();
                let want: std::vec::Vec<u8> = (start as u8..).take(len).collect();
                assert_eq!(&buf[..len], &want[..], "read {start}+{len}");
                let data: std::vec::Vec<u8> = (0..len).map(|i| 0x80 | i as u8).collect();
                g.write_phys(start, &data).unwrap();
                let mut back = [0u8; 40];
                g.read_phys(start, &mut back[..len]).unwrap();
                assert_eq!(&back[..len], &data[..], "write {start}+{len}");
                // Restore, and nothing else moved.
                let orig: std::vec::Vec<u8> = (start as u8..).take(len).collect();
                g.write_phys(start, &orig).unwrap();
            }
        }
        assert!(ram.iter().enumerate().all(|(i, &b)| b == i as u8));
        assert!(g.write_phys(60, &[0; 8]).is_err(), "past the end");
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
