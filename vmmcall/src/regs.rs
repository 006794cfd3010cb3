//! The guest's general-purpose registers, however the VMM stores them.
//!
//! The dispatcher reads RAX and the five argument registers and writes RAX
//! back; a handler may read any register through its
//! [`Caller`](crate::Caller). It does all of that through [`Registers`],
//! so a VMM keeps its own register layout and nothing is copied per call:
//!
//! - a VMM that saves the guest's registers in [`GuestRegs`] (a
//!   `#[repr(C)]` area in x86 encoding order, for `asm!` by offset) gets
//!   [`Registers`] for free, for `GuestRegs` and for `&mut GuestRegs`;
//! - a VMM with a layout of its own (another order, RAX and RSP in the
//!   VMCB on SVM, a per-vCPU save area behind a pointer) implements the two
//!   required methods, [`Registers::gpr`] and [`Registers::set_gpr`], on
//!   a type that borrows its storage. With a constant [`Gpr`], as the
//!   dispatcher uses, each call folds into one load or store.

use crate::abi::MAX_ARGS;

/// A general-purpose register, numbered by its x86 encoding (Intel SDM
/// Vol. 2A §2.1.5, Table 2-2), as VMX exit qualifications and ModRM bytes
/// name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Gpr {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

impl Gpr {
    /// All sixteen, in encoding order.
    pub const ALL: [Gpr; 16] = [
        Gpr::Rax,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rbx,
        Gpr::Rsp,
        Gpr::Rbp,
        Gpr::Rsi,
        Gpr::Rdi,
        Gpr::R8,
        Gpr::R9,
        Gpr::R10,
        Gpr::R11,
        Gpr::R12,
        Gpr::R13,
        Gpr::R14,
        Gpr::R15,
    ];

    /// The argument registers in ABI order: RBX, RCX, RDX, RSI, RDI.
    pub const ARGS: [Gpr; MAX_ARGS] = [Gpr::Rbx, Gpr::Rcx, Gpr::Rdx, Gpr::Rsi, Gpr::Rdi];

    /// The register with encoding `index`; only its low 4 bits count.
    pub const fn from_encoding(index: u8) -> Gpr {
        match index & 15 {
            0 => Gpr::Rax,
            1 => Gpr::Rcx,
            2 => Gpr::Rdx,
            3 => Gpr::Rbx,
            4 => Gpr::Rsp,
            5 => Gpr::Rbp,
            6 => Gpr::Rsi,
            7 => Gpr::Rdi,
            8 => Gpr::R8,
            9 => Gpr::R9,
            10 => Gpr::R10,
            11 => Gpr::R11,
            12 => Gpr::R12,
            13 => Gpr::R13,
            14 => Gpr::R14,
            _ => Gpr::R15,
        }
    }

    /// The x86 encoding (0 = RAX ... 15 = R15).
    pub const fn encoding(self) -> u8 {
        self as u8
    }

    /// The lower-case name: `"rax"`, ..., `"r15"`.
    pub const fn name(self) -> &'static str {
        match self {
            Gpr::Rax => "rax",
            Gpr::Rcx => "rcx",
            Gpr::Rdx => "rdx",
            Gpr::Rbx => "rbx",
            Gpr::Rsp => "rsp",
            Gpr::Rbp => "rbp",
            Gpr::Rsi => "rsi",
            Gpr::Rdi => "rdi",
            Gpr::R8 => "r8",
            Gpr::R9 => "r9",
            Gpr::R10 => "r10",
            Gpr::R11 => "r11",
            Gpr::R12 => "r12",
            Gpr::R13 => "r13",
            Gpr::R14 => "r14",
            Gpr::R15 => "r15",
        }
    }
}

/// Read and write the guest's general-purpose registers where the VMM
/// keeps them. See the [module docs](self).
///
/// Implement [`gpr`](Registers::gpr) and [`set_gpr`](Registers::set_gpr);
/// the other methods have defaults built on them, which a VMM may override
/// when it has something faster.
pub trait Registers {
    /// The register's value as of the exit.
    fn gpr(&self, reg: Gpr) -> u64;

    /// Set the register. The dispatcher writes RAX and nothing else.
    fn set_gpr(&mut self, reg: Gpr, value: u64);

    /// RAX: the function number on entry, the result on return.
    #[inline]
    fn rax(&self) -> u64 {
        self.gpr(Gpr::Rax)
    }

    /// Set RAX.
    #[inline]
    fn set_rax(&mut self, value: u64) {
        self.set_gpr(Gpr::Rax, value);
    }

    /// The five argument registers in ABI order: RBX, RCX, RDX, RSI, RDI.
    #[inline]
    fn args(&self) -> [u64; MAX_ARGS] {
        [
            self.gpr(Gpr::Rbx),
            self.gpr(Gpr::Rcx),
            self.gpr(Gpr::Rdx),
            self.gpr(Gpr::Rsi),
            self.gpr(Gpr::Rdi),
        ]
    }

    /// All sixteen registers, copied (for a handler that wants them all;
    /// the dispatcher never calls it).
    fn snapshot(&self) -> GuestRegs {
        let mut r = GuestRegs::default();
        for g in Gpr::ALL {
            r.set(g.encoding(), self.gpr(g));
        }
        r
    }
}

impl<R: Registers + ?Sized> Registers for &mut R {
    #[inline]
    fn gpr(&self, reg: Gpr) -> u64 {
        (**self).gpr(reg)
    }
    #[inline]
    fn set_gpr(&mut self, reg: Gpr, value: u64) {
        (**self).set_gpr(reg, value);
    }
    #[inline]
    fn rax(&self) -> u64 {
        (**self).rax()
    }
    #[inline]
    fn set_rax(&mut self, value: u64) {
        (**self).set_rax(value);
    }
    #[inline]
    fn args(&self) -> [u64; MAX_ARGS] {
        (**self).args()
    }
    fn snapshot(&self) -> GuestRegs {
        (**self).snapshot()
    }
}

/// A register save area in the x86 register-encoding order (RAX, RCX, RDX,
/// RBX, RSP, RBP, RSI, RDI, R8..R15), for VMMs without one of their own.
///
/// `#[repr(C)]` so that a VMM can save and restore it from `asm!` by
/// offset (`8 * encoding`). It implements [`Registers`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct GuestRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

impl GuestRegs {
    /// The five argument registers in ABI order: RBX, RCX, RDX, RSI, RDI.
    pub const fn args(&self) -> [u64; MAX_ARGS] {
        [self.rbx, self.rcx, self.rdx, self.rsi, self.rdi]
    }

    /// The register with the x86 encoding `index` (see [`Gpr`]), as VMX
    /// exit qualifications name them. Only the low 4 bits of `index` count.
    pub const fn get(&self, index: u8) -> u64 {
        match index & 15 {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            4 => self.rsp,
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            _ => self.r15,
        }
    }

    /// Set the register with the x86 encoding `index` (see
    /// [`GuestRegs::get`]).
    pub fn set(&mut self, index: u8, value: u64) {
        let r = match index & 15 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => &mut self.rsp,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        };
        *r = value;
    }
}

impl Registers for GuestRegs {
    #[inline]
    fn gpr(&self, reg: Gpr) -> u64 {
        self.get(reg.encoding())
    }
    #[inline]
    fn set_gpr(&mut self, reg: Gpr, value: u64) {
        self.set(reg.encoding(), value);
    }
    #[inline]
    fn rax(&self) -> u64 {
        self.rax
    }
    #[inline]
    fn set_rax(&mut self, value: u64) {
        self.rax = value;
    }
    #[inline]
    fn args(&self) -> [u64; MAX_ARGS] {
        GuestRegs::args(self)
    }
    fn snapshot(&self) -> GuestRegs {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip() {
        for (i, g) in Gpr::ALL.iter().enumerate() {
            assert_eq!(usize::from(g.encoding()), i);
            assert_eq!(Gpr::from_encoding(i as u8), *g);
            assert_eq!(Gpr::from_encoding(i as u8 | 0xF0), *g, "low 4 bits");
        }
        assert_eq!(Gpr::R15.name(), "r15");
    }

    #[test]
    fn guest_regs_by_name_and_by_encoding() {
        let mut r = GuestRegs::default();
        for g in Gpr::ALL {
            r.set_gpr(g, 100 + u64::from(g.encoding()));
        }
        assert_eq!((r.rax, r.rbx, r.rdi, r.r15), (100, 103, 107, 115));
        assert_eq!(Registers::args(&r), [103, 101, 102, 106, 107]);
        assert_eq!(r.snapshot(), r);
        let by_ref = &mut r;
        by_ref.set_rax(7);
        assert_eq!((by_ref.rax(), r.rax), (7, 7));
    }
}
