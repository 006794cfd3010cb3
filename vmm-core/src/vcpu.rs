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
        paging::read_linear(&self.paging, &self.ram, addr.0, buf, self.cpl == 3)
    }

    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        paging::write_linear(&self.paging, &mut self.ram, addr.0, data, self.cpl == 3)
    }
}
