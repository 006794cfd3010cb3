//! [`GuestVcpu`]: a [`Vcpu`] from what every VMM has at an exit.
//!
//! A hypercall needs four things of the vCPU that exited: its registers, its
//! privilege level, its paging mode and its guest-physical memory. A VMM
//! wraps them in a `GuestVcpu` for the duration of one exit and hands it to
//! [`vmexit::handle_hypercall`](https://docs.rs/vmexit) or
//! [`dispatch`](crate::dispatch); nothing is copied:
//!
//! - the registers are any [`Registers`]: `&mut GuestRegs`, or a type of the
//!   VMM's that borrows its own save area;
//! - the CPL is what the VMCB (SVM: `CPL`) or the VMCS (VMX: `SS` access
//!   rights, DPL) says;
//! - the paging mode is the guest's CR0, CR3, CR4 and EFER and its
//!   MAXPHYADDR, a [`PagingMode`];
//! - guest-physical memory is any [`GuestPhysMemory`]: the VMM's view of
//!   guest RAM through its nested page tables.
//!
//! Guest-linear addresses then go through the guest's own page tables with
//! the caller's privilege ([`crate::paging`]) and then through guest RAM.
//! With paging off, a caller at CPL 1-3 can name no memory at all (see
//! [`GuestVcpu`]).
//!
//! ```
//! use vmmcall::paging::{GuestPhysMemory, PagingMode};
//! use vmmcall::{GuestAddr, GuestRegs, GuestVcpu, MemError, Registers, Vcpu};
//!
//! struct Ram(Vec<u8>);
//! impl GuestPhysMemory for Ram {
//!     fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
//!         let at = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
//!         let src = at.checked_add(buf.len()).and_then(|end| self.0.get(at..end));
//!         buf.copy_from_slice(src.ok_or(MemError::OutsideRam { gpa })?);
//!         Ok(())
//!     }
//!     fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
//!         let at = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
//!         let dst = at.checked_add(data.len()).and_then(|end| self.0.get_mut(at..end));
//!         dst.ok_or(MemError::OutsideRam { gpa })?.copy_from_slice(data);
//!         Ok(())
//!     }
//! }
//!
//! let mut regs = GuestRegs { rax: 7, ..GuestRegs::default() };
//! let mut ram = Ram(vec![0; 0x2000]);
//! // Paging off, CPL 0: guest-linear = guest-physical.
//! let mut vcpu = GuestVcpu::new(&mut regs, &mut ram, 0, PagingMode::disabled());
//! vcpu.write_linear(GuestAddr(0x1000), b"hi").unwrap();
//! vcpu.set_rax(8);
//! assert_eq!(regs.rax, 8);
//! assert_eq!(&ram.0[0x1000..0x1002], b"hi");
//! ```

use crate::abi::MAX_ARGS;
use crate::paging::{self, GuestPhysMemory, PagingMode, CR0_PG};
use crate::regs::{Gpr, GuestRegs, Registers};
use crate::{GuestAddr, MemError, Vcpu};

/// The vCPU at one exit: registers `R`, guest-physical memory `M`, the
/// caller's CPL and the guest's [`PagingMode`]. See the [module docs](self).
///
/// With paging off (real mode, or protected mode without paging) there are
/// no user pages: every address counts as supervisor-only, so a caller at
/// CPL 1-3 (v8086 mode included) gets [`MemError::Supervisor`] for any
/// address. Otherwise a guest could turn paging off (on SVM the guest owns
/// CR0) and let ring 3 reach any guest-physical address through a `user`
/// handler.
#[derive(Debug)]
pub struct GuestVcpu<R, M> {
    regs: R,
    mem: M,
    cpl: u8,
    paging: PagingMode,
}

impl<R: Registers, M: GuestPhysMemory> GuestVcpu<R, M> {
    /// Wrap the state of one exit. `cpl` is the caller's privilege level
    /// (only its low two bits count); `paging` is the guest's CR0, CR3,
    /// CR4, EFER and MAXPHYADDR as of the exit:
    ///
    /// ```
    /// # let (cr0, cr3, cr4, efer) = (0u64, 0u64, 0u64, 0u64);
    /// let paging = vmmcall::paging::PagingMode {
    ///     cr0, cr3, cr4, efer,
    ///     // CPUID 8000_0008h EAX[7:0], as the guest sees it.
    ///     maxphyaddr: vmmcall::cpuid::maxphyaddr(0x3030),
    /// };
    /// # let _ = paging;
    /// ```
    #[inline]
    pub fn new(regs: R, mem: M, cpl: u8, paging: PagingMode) -> Self {
        GuestVcpu {
            regs,
            mem,
            cpl: cpl & 3,
            paging,
        }
    }

    /// The registers.
    pub fn regs(&self) -> &R {
        &self.regs
    }

    /// The registers, mutably.
    pub fn regs_mut(&mut self) -> &mut R {
        &mut self.regs
    }

    /// The guest-physical memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// The guest's paging mode.
    pub fn paging(&self) -> &PagingMode {
        &self.paging
    }

    /// The parts back.
    pub fn into_parts(self) -> (R, M) {
        (self.regs, self.mem)
    }

    fn check_paging_off(&self, addr: GuestAddr) -> Result<(), MemError> {
        if self.cpl != 0 && self.paging.cr0 & CR0_PG == 0 {
            Err(MemError::Supervisor { addr: addr.0 })
        } else {
            Ok(())
        }
    }
}

impl<R: Registers, M> Registers for GuestVcpu<R, M> {
    #[inline]
    fn gpr(&self, reg: Gpr) -> u64 {
        self.regs.gpr(reg)
    }
    #[inline]
    fn set_gpr(&mut self, reg: Gpr, value: u64) {
        self.regs.set_gpr(reg, value);
    }
    #[inline]
    fn rax(&self) -> u64 {
        self.regs.rax()
    }
    #[inline]
    fn set_rax(&mut self, value: u64) {
        self.regs.set_rax(value);
    }
    #[inline]
    fn args(&self) -> [u64; MAX_ARGS] {
        self.regs.args()
    }
    fn snapshot(&self) -> GuestRegs {
        self.regs.snapshot()
    }
}

impl<R: Registers, M: GuestPhysMemory> Vcpu for GuestVcpu<R, M> {
    #[inline]
    fn cpl(&self) -> u8 {
        self.cpl
    }

    fn read_linear(&mut self, addr: GuestAddr, buf: &mut [u8]) -> Result<(), MemError> {
        self.check_paging_off(addr)?;
        paging::read_linear(&self.paging, &self.mem, addr.0, buf, self.cpl == 3)
    }

    fn write_linear(&mut self, addr: GuestAddr, data: &[u8]) -> Result<(), MemError> {
        self.check_paging_off(addr)?;
        paging::write_linear(&self.paging, &mut self.mem, addr.0, data, self.cpl == 3)
    }
}

/// Guest-physical memory through a mutable reference, so that a VMM can
/// lend its memory object to a [`GuestVcpu`] for one exit.
impl<M: GuestPhysMemory + ?Sized> GuestPhysMemory for &mut M {
    #[inline]
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read_phys(gpa, buf)
    }
    #[inline]
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        (**self).write_phys(gpa, data)
    }
    #[inline]
    fn check_phys(&self, gpa: u64, len: usize) -> Result<(), MemError> {
        (**self).check_phys(gpa, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate alloc;
    use alloc::vec::Vec;

    struct Ram(Vec<u8>);

    impl GuestPhysMemory for Ram {
        fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
            let at = gpa as usize;
            buf.copy_from_slice(
                self.0
                    .get(at..at + buf.len())
                    .ok_or(MemError::OutsideRam { gpa })?,
            );
            Ok(())
        }
        fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
            let at = gpa as usize;
            self.0
                .get_mut(at..at + data.len())
                .ok_or(MemError::OutsideRam { gpa })?
                .copy_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn paging_off_gives_ring_3_no_memory() {
        let mut ram = Ram(alloc::vec![0xAB; 0x2000]);
        let mut regs = GuestRegs::default();
        let mut buf = [0u8; 4];
        // CPL 0, paging off (CR0.PE only): linear = guest-physical.
        let off = PagingMode {
            cr0: 0x11,
            ..PagingMode::disabled()
        };
        let mut v = GuestVcpu::new(&mut regs, &mut ram, 0, off);
        assert_eq!(v.read_linear(GuestAddr(0x1000), &mut buf), Ok(()));
        assert_eq!(buf, [0xAB; 4]);
        // CPL 1, 2, 3 (v8086 included) with paging off: nothing.
        for cpl in 1..=3 {
            let mut v = GuestVcpu::new(&mut regs, &mut ram, cpl, off);
            assert_eq!(
                v.read_linear(GuestAddr(0x1000), &mut buf),
                Err(MemError::Supervisor { addr: 0x1000 })
            );
            assert_eq!(
                v.write_linear(GuestAddr(0x1000), &[1, 2]),
                Err(MemError::Supervisor { addr: 0x1000 })
            );
        }
        assert_eq!(ram.0[0x1000], 0xAB, "nothing written");
        // Only the low two bits of the CPL count.
        let v = GuestVcpu::new(&mut regs, &mut ram, 7, off);
        assert_eq!(v.cpl(), 3);
    }

    #[test]
    fn registers_are_the_vmms_own() {
        let mut regs = GuestRegs {
            rbx: 1,
            rdi: 5,
            ..GuestRegs::default()
        };
        let mut ram = Ram(Vec::new());
        let mut v = GuestVcpu::new(&mut regs, &mut ram, 0, PagingMode::disabled());
        assert_eq!(v.args(), [1, 0, 0, 0, 5]);
        v.set_rax(9);
        v.set_gpr(Gpr::R12, 12);
        assert_eq!((regs.rax, regs.r12), (9, 12));
    }
}
