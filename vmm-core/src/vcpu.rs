//! The calling vCPU as `vmmcall` handlers see it: registers, CPL, and guest
//! memory by guest-linear address.
//!
//! Linear addresses go through the guest's own page tables (as the guest
//! set CR0/CR3/CR4/EFER) with the caller's privilege, then through guest
//! RAM: a guest-physical address outside guest RAM is `OutsideRam`, so the
//! VMM's own memory can never be read or written on a guest's behalf.

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

use crate::hv::GuestRam;
use vmmcall::paging::{self, GuestPhysMemory, PagingMode};
use vmmcall::{GuestAddr, GuestRegs, MemError, Vcpu};

/// A vCPU stopped at an exit, with the state a handler may use.
pub struct GuestVcpu<'a> {
    regs: &'a mut GuestRegs,
    cpl: u8,
    paging: PagingMode,
    ram: Phys,
}

/// Guest RAM as guest-physical memory for the page walker. Every access
/// is bounds-checked against guest RAM; anything else is `OutsideRam`.
struct Phys(GuestRam);

impl GuestPhysMemory for Phys {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let src = self
            .0
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
            .0
            .host_range(gpa, data.len() as u64)
            .ok_or(MemError::OutsideRam { gpa })?;
        // SAFETY: as in read_phys: the range is guest RAM, disjoint from `data`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        Ok(())
    }
}

impl<'a> GuestVcpu<'a> {
    /// Wrap the state a backend read from its VMCB/VMCS.
    pub fn new(
        regs: &'a mut GuestRegs,
        cpl: u8,
        cr0: u64,
        cr3: u64,
        cr4: u64,
        efer: u64,
        ram: GuestRam,
    ) -> Self {
        GuestVcpu {
            regs,
            cpl,
            paging: PagingMode::new(cr0, cr3, cr4, efer),
            ram: Phys(ram),
        }
    }
}

impl GuestVcpu<'_> {
    /// With paging off (real mode, or protected mode without paging) there
    /// are no user pages: every address counts as supervisor-only, so a
    /// caller at CPL 1-3 (v8086 mode included) can name no memory. Else a
    /// guest could drop paging and let ring 3 reach any guest-physical
    /// address through a `user` handler (on SVM the guest owns CR0).
    fn check_paging_off(&self, addr: GuestAddr) -> Result<(), MemError> {
        if self.cpl != 0 && self.paging.cr0 & CR0_PG == 0 {
            Err(MemError::Supervisor { addr: addr.0 })
        } else {
            Ok(())
        }
    }
}

/// CR0.PG.
const CR0_PG: u64 = 1 << 31;

impl Vcpu for GuestVcpu<'_> {
    fn regs(&self) -> &GuestRegs {
        self.regs
    }

    fn regs_mut(&mut self) -> &mut GuestRegs {
        self.regs
    }

    fn cpl(&self) -> u8 {
        self.cpl
    }

    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError> {
        self.check_paging_off(addr)?;
        paging::read_linear(&self.paging, &self.ram, addr.0, buf, self.cpl == 3)
    }

    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        self.check_paging_off(addr)?;
        paging::write_linear(&self.paging, &mut self.ram, addr.0, data, self.cpl == 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn paging_off_gives_ring_3_no_memory() {
        let mut ram = std::vec![0xABu8; 0x2000];
        let ram_desc = GuestRam {
            host_base: ram.as_mut_ptr() as u64,
            size: ram.len() as u64,
        };
        let mut regs = GuestRegs::default();
        let mut buf = [0u8; 4];
        // CPL 0, paging off: linear = guest-physical.
        let mut v = GuestVcpu::new(&mut regs, 0, 0x11, 0, 0, 0, ram_desc);
        assert_eq!(v.read_linear(GuestAddr(0x1000), &mut buf), Ok(()));
        assert_eq!(buf, [0xAB; 4]);
        // CPL 1, 2, 3 (v8086 included) with paging off: nothing.
        for cpl in 1..=3 {
            let mut v = GuestVcpu::new(&mut regs, cpl, 0x11, 0, 0, 0, ram_desc);
            assert_eq!(
                v.read_linear(GuestAddr(0x1000), &mut buf),
                Err(MemError::Supervisor { addr: 0x1000 })
            );
            assert_eq!(
                v.write_linear(GuestAddr(0x1000), &[1, 2]),
                Err(MemError::Supervisor { addr: 0x1000 })
            );
        }
        assert_eq!(ram[0x1000], 0xAB, "nothing written");
    }
}
