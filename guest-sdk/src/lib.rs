//! Call `vmmcall` hypercalls from a guest.
//!
//! ```no_run
//! # use guest_sdk::call;
//! let ten = call!("hello", rbx = 5)?;
//! # Ok::<(), guest_sdk::Error>(())
//! ```
//!
//! - [`call!`] looks the name up once per call site with
//!   `get_vmmcall_number` (function 0), caches the number, places the
//!   arguments in the registers you name (`rbx`, `rcx`, `rdx`, `rsi`, `rdi`,
//!   in any order, each at most once) and decodes RAX into
//!   `Result<u64, Error>`.
//! - The instruction is `vmcall` on Intel and `vmmcall` on AMD, chosen from
//!   the CPUID vendor. Before the first hypercall, [`detect`] checks the
//!   CPUID hypervisor signature, so without this VMM every call returns
//!   [`Error::NotPresent`] instead of faulting (SIGILL under Linux).
//! - Arguments are integers, `bool`, or references, slices and raw pointers
//!   (passed as their guest-linear address), see [`IntoArg`].
//!
//! Feature `rt` adds a bare-metal runtime for guests (`entry!`,
//! `println!`, panic handler); feature `std` adds `std::error::Error` for
//! Linux user programs.
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "rt")]
pub mod arch;
#[cfg(feature = "rt")]
pub mod rt;

use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
pub use vmmcall::abi;

/// What a hypercall can fail with, from the guest's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// This VMM is not running underneath (no CPUID signature): no
    /// hypercall instruction was executed.
    NotPresent,
    /// `get_vmmcall_number` does not know the name (or could not read it).
    NotFound,
    /// `-ENOSYS`: no function has this number.
    NoSys,
    /// `-EPERM`: the function may not be called from this privilege level.
    Permission,
    /// `-EINVAL`: an argument does not fit the handler's parameter type.
    Invalid,
    /// `-EFAULT`: a pointer argument names memory the VMM could not access
    /// with the caller's privilege.
    Fault,
    /// Another error from the VMM ([`vmmcall::Error`]).
    Vmm(vmmcall::Error),
    /// An errno this SDK does not know (1..=4095).
    Other(u16),
}

impl Error {
    /// Decode a raw RAX value from a hypercall.
    #[inline]
    pub fn check(rax: u64) -> Result<u64, Error> {
        vmmcall::decode_rax(rax).map_err(|errno| match vmmcall::Error::from_errno(errno) {
            Some(vmmcall::Error::NoSys) => Error::NoSys,
            Some(vmmcall::Error::Permission) => Error::Permission,
            Some(vmmcall::Error::Invalid) => Error::Invalid,
            Some(vmmcall::Error::Fault) => Error::Fault,
            Some(e) => Error::Vmm(e),
            None => Error::Other(errno),
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotPresent => f.write_str("the vmmcall hypervisor is not present"),
            Error::NotFound => f.write_str("no hypercall with this name"),
            Error::NoSys => vmmcall::Error::NoSys.fmt(f),
            Error::Permission => vmmcall::Error::Permission.fmt(f),
            Error::Invalid => vmmcall::Error::Invalid.fmt(f),
            Error::Fault => vmmcall::Error::Fault.fmt(f),
            Error::Vmm(e) => e.fmt(f),
            Error::Other(n) => write!(f, "hypercall failed with errno {n}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// The hypervisor, as [`detect`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vmm {
    /// The ABI version from CPUID leaf `0x4000_0001`.
    pub abi_version: u32,
    /// The instruction this CPU uses.
    pub instruction: Instruction,
}

/// The hypercall instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction {
    /// Intel `vmcall` (0F 01 C1).
    Vmcall,
    /// AMD `vmmcall` (0F 01 D9).
    Vmmcall,
}

fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    // CPUID is unprivileged and has no side effects.
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Whether this VMM runs underneath, by CPUID alone (no hypercall is
/// executed): the hypervisor-present bit (CPUID.1:ECX bit 31), the
/// `vmmcall-rs` signature in leaf `0x4000_0000`, and leaf `0x4000_0001`.
pub fn detect() -> Option<Vmm> {
    let (_, _, ecx, _) = cpuid(1);
    if ecx & (1 << 31) == 0 {
        return None;
    }
    let (max, b, c, d) = cpuid(abi::CPUID_LEAF_SIGNATURE);
    if (b, c, d) != abi::cpuid_signature_words() || max < abi::CPUID_LEAF_INTERFACE {
        return None;
    }
    let (version, magic, _, _) = cpuid(abi::CPUID_LEAF_INTERFACE);
    if magic != abi::CPUID_INTERFACE_MAGIC {
        return None;
    }
    let (_, vb, vc, vd) = cpuid(0);
    let instruction = match (&vb.to_le_bytes(), &vd.to_le_bytes(), &vc.to_le_bytes()) {
        (b"Genu", b"ineI", b"ntel") => Instruction::Vmcall,
        _ => Instruction::Vmmcall,
    };
    Some(Vmm {
        abi_version: version,
        instruction,
    })
}

const UNKNOWN: u8 = 0;
const ABSENT: u8 = 1;
const VMCALL: u8 = 2;
const VMMCALL: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

#[inline]
fn instruction() -> Result<Instruction, Error> {
    match STATE.load(Ordering::Relaxed) {
        VMCALL => return Ok(Instruction::Vmcall),
        VMMCALL => return Ok(Instruction::Vmmcall),
        ABSENT => return Err(Error::NotPresent),
        _ => {}
    }
    let (state, r) = match detect() {
        Some(Vmm {
            instruction: Instruction::Vmcall,
            ..
        }) => (VMCALL, Ok(Instruction::Vmcall)),
        Some(Vmm {
            instruction: Instruction::Vmmcall,
            ..
        }) => (VMMCALL, Ok(Instruction::Vmmcall)),
        None => (ABSENT, Err(Error::NotPresent)),
    };
    STATE.store(state, Ordering::Relaxed);
    r
}

/// Execute one hypercall instruction: RAX = `number`, RBX, RCX, RDX, RSI,
/// RDI = `args`. Returns RAX as the VMM left it.
///
/// # Safety
/// This VMM must be present (see [`detect`]), `insn` must be the CPU's
/// instruction, and any address in `args` must be valid for what the
/// called function does with it (the VMM may write through it).
#[inline]
pub unsafe fn raw_hypercall(insn: Instruction, number: u64, args: [u64; 5]) -> u64 {
    let rax: u64;
    let [a1, a2, a3, a4, a5] = args;
    // The caller guarantees the VMM is present, so the instruction exits
    // to it instead of raising #UD. RBX cannot be an asm operand, so it is
    // swapped through a scratch register and restored. The VMM changes only
    // RAX (ABI v1) but may access memory named by arguments: no `nomem`.
    match insn {
        // SAFETY: see above; VMCALL is the Intel instruction.
        Instruction::Vmcall => unsafe {
            core::arch::asm!(
                "xchg {b}, rbx", "vmcall", "xchg {b}, rbx",
                b = inout(reg) a1 => _,
                inout("rax") number => rax,
                in("rcx") a2, in("rdx") a3, in("rsi") a4, in("rdi") a5,
                options(nostack),
            )
        },
        // SAFETY: see above; VMMCALL is the AMD instruction.
        Instruction::Vmmcall => unsafe {
            core::arch::asm!(
                "xchg {b}, rbx", "vmmcall", "xchg {b}, rbx",
                b = inout(reg) a1 => _,
                inout("rax") number => rax,
                in("rcx") a2, in("rdx") a3, in("rsi") a4, in("rdi") a5,
                options(nostack),
            )
        },
    }
    rax
}

/// Look a name up with `get_vmmcall_number`. `name` must end with NUL.
pub fn lookup(name_nul: &[u8]) -> Result<u64, Error> {
    let insn = instruction()?;
    if name_nul.last() != Some(&0) {
        return Err(Error::Invalid);
    }
    // SAFETY: a shared slice is valid for reads of its length.
    unsafe { touch(name_nul.as_ptr() as *mut u8, name_nul.len(), false) };
    // SAFETY: the VMM is present (instruction() checked); function 0 only
    // reads the NUL-terminated name at RBX, which `name_nul` provides.
    let n = unsafe {
        raw_hypercall(
            insn,
            abi::GET_VMMCALL_NUMBER,
            [name_nul.as_ptr() as u64, 0, 0, 0, 0],
        )
    };
    match n {
        0 => Err(Error::NotFound),
        n => Ok(n),
    }
}

/// Call function `number` directly (no lookup). Prefer [`call!`].
///
/// # Safety
/// Addresses in `args` must be valid for whatever the function does with
/// them (it may write through them).
#[inline]
pub unsafe fn call_number(number: u64, args: [u64; 5]) -> Result<u64, Error> {
    let insn = instruction()?;
    // SAFETY: the VMM is present; the caller vouches for the arguments.
    Error::check(unsafe { raw_hypercall(insn, number, args) })
}

/// A call site's cached function number: looked up on first use, kept
/// once found (a failed lookup is retried next time).
///
/// The number and the instruction choice share one word
/// (`number << 1 | vmcall`), so a cached call reads nothing but its own
/// call site: under emulators that flush their TLB on every world switch,
/// each extra page touched costs as much as a few hundred instructions
/// (docs/BENCHMARKS.md).
pub struct CallSite {
    name_nul: &'static str,
    /// 0: not resolved; else `number << 1 | (instruction == Vmcall)`.
    cache: AtomicU64,
}

impl CallSite {
    /// A call site for `name_nul` (the name followed by `"\0"`).
    pub const fn new(name_nul: &'static str) -> Self {
        CallSite {
            name_nul,
            cache: AtomicU64::new(0),
        }
    }

    /// The function number, looking it up if needed.
    #[inline]
    pub fn number(&self) -> Result<u64, Error> {
        self.resolve().map(|(n, _)| n)
    }

    #[inline]
    fn resolve(&self) -> Result<(u64, Instruction), Error> {
        match self.cache.load(Ordering::Relaxed) {
            0 => self.resolve_slow(),
            c if c & 1 == 1 => Ok((c >> 1, Instruction::Vmcall)),
            c => Ok((c >> 1, Instruction::Vmmcall)),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve_slow(&self) -> Result<(u64, Instruction), Error> {
        let insn = instruction()?;
        let n = lookup(self.name_nul.as_bytes())?;
        // Numbers are registry indexes (at most u32::MAX); anything that
        // would not survive the shift is simply not cached.
        if n >> 63 == 0 {
            self.cache.store(
                (n << 1) | u64::from(insn == Instruction::Vmcall),
                Ordering::Relaxed,
            );
        }
        Ok((n, insn))
    }

    /// Call it.
    ///
    /// # Safety
    /// As [`call_number`]. [`call!`] upholds it by only turning Rust
    /// references (valid memory) into addresses.
    #[inline]
    pub unsafe fn call(&self, args: [u64; 5]) -> Result<u64, Error> {
        let (n, insn) = self.resolve()?;
        // SAFETY: the VMM is present (resolve found it); the caller vouches
        // for the arguments.
        Error::check(unsafe { raw_hypercall(insn, n, args) })
    }
}

/// A value that can travel in an argument register.
///
/// Unsigned integers and `bool` are zero-extended, signed integers
/// sign-extended (what `vmmcall`'s handlers expect); references, slices and
/// raw pointers pass their address (a slice's length is a separate
/// argument).
pub trait IntoArg {
    /// The register value.
    fn into_arg(self) -> u64;
}

macro_rules! into_arg_int {
    ($($t:ty => $via:ty),*) => {$(
        impl IntoArg for $t {
            #[inline]
            fn into_arg(self) -> u64 {
                self as $via as u64
            }
        }
    )*};
}
into_arg_int!(u8 => u64, u16 => u64, u32 => u64, u64 => u64, usize => u64,
              i8 => i64, i16 => i64, i32 => i64, i64 => i64, isize => i64);

impl IntoArg for bool {
    #[inline]
    fn into_arg(self) -> u64 {
        u64::from(self)
    }
}

/// Bytes per page for [`touch`]: the smallest x86 page.
const PAGE: usize = 4096;

/// Make every page of `[ptr, ptr + len)` present before the VMM walks the
/// guest's page tables: read one byte per page, and with `write` store it
/// back (so a copy-on-write or zero page becomes a private writable one).
///
/// An OS such as Linux maps memory lazily: a page of a fresh `mmap` or a
/// file mapping has no page-table entry until the program first touches
/// it. The VMM reads guest memory through those tables and injects no page
/// fault, so without this a call on such a buffer would fail with
/// [`Error::Fault`]. Best effort: an OS may still evict a page between
/// this touch and the hypercall (Linux does not for anonymous memory
/// without swap); the call then returns [`Error::Fault`].
///
/// # Safety
/// `[ptr, ptr + len)` is valid for reads (and writes with `write`) and
/// nothing else accesses it concurrently.
#[inline]
unsafe fn touch(ptr: *mut u8, len: usize, write: bool) {
    if len == 0 {
        return;
    }
    let first = ptr as usize & !(PAGE - 1);
    let last = (ptr as usize).wrapping_add(len - 1) & !(PAGE - 1);
    let mut page = first;
    loop {
        // The byte touched in each page lies in the range: the first byte
        // of the buffer, or the first byte of a later page.
        let at = page.max(ptr as usize) as *mut u8;
        // SAFETY: `at` is inside the range the caller vouches for.
        let b = unsafe { at.read_volatile() };
        if write {
            // SAFETY: as above, and the range is writable.
            unsafe { at.write_volatile(b) };
        }
        if page >= last {
            break;
        }
        page += PAGE;
    }
}

impl<T: ?Sized> IntoArg for &T {
    /// The address; every page of the referent is made present first
    /// (see [`touch`]).
    #[inline]
    fn into_arg(self) -> u64 {
        let ptr = self as *const T as *const u8;
        // SAFETY: a shared reference is valid for reads of its size.
        unsafe { touch(ptr as *mut u8, core::mem::size_of_val(self), false) };
        ptr as u64
    }
}

impl<T: ?Sized> IntoArg for &mut T {
    /// The address; every page of the referent is made present and
    /// writable first (see [`touch`]).
    #[inline]
    fn into_arg(self) -> u64 {
        let len = core::mem::size_of_val(self);
        let ptr = self as *mut T as *mut u8;
        // SAFETY: an exclusive reference is valid for reads and writes of
        // its size, and nothing else accesses it.
        unsafe { touch(ptr, len, true) };
        ptr as u64
    }
}

impl<T> IntoArg for *const T {
    #[inline]
    fn into_arg(self) -> u64 {
        self as u64
    }
}

impl<T> IntoArg for *mut T {
    #[inline]
    fn into_arg(self) -> u64 {
        self as u64
    }
}

/// Index of an argument register (implementation detail of [`call!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __reg_index {
    (rbx) => {
        0
    };
    (rcx) => {
        1
    };
    (rdx) => {
        2
    };
    (rsi) => {
        3
    };
    (rdi) => {
        4
    };
    ($other:ident) => {
        ::core::compile_error!(::core::concat!(
            "`",
            ::core::stringify!($other),
            "` is not an argument register: use rbx, rcx, rdx, rsi or rdi"
        ))
    };
}

/// Call a hypercall by name: `call!("hello", rbx = 5)`.
///
/// Returns `Result<u64, guest_sdk::Error>`. Registers may be given in any
/// order, each at most once (a repeat is a compile error); unnamed ones
/// are 0. The name is looked up once per call site and cached.
#[macro_export]
macro_rules! call {
    ($name:literal $(, $reg:ident = $val:expr)* $(,)?) => {{
        static SITE: $crate::CallSite = $crate::CallSite::new(::core::concat!($name, "\0"));
        const _: () = {
            let mut seen = 0u8;
            $(
                let bit = 1u8 << $crate::__reg_index!($reg);
                ::core::assert!(seen & bit == 0, ::core::concat!("register `", ::core::stringify!($reg), "` given twice"));
                seen |= bit;
            )*
            let _ = seen;
        };
        #[allow(unused_mut)]
        let mut args = [0u64; 5];
        $( args[$crate::__reg_index!($reg)] = $crate::IntoArg::into_arg($val); )*
        // SAFETY: arguments are integers or addresses of live Rust
        // references (IntoArg), valid for the duration of the call.
        unsafe { SITE.call(args) }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_decode_from_rax() {
        assert_eq!(Error::check(10), Ok(10));
        assert_eq!(Error::check(-38_i64 as u64), Err(Error::NoSys));
        assert_eq!(Error::check(-1_i64 as u64), Err(Error::Permission));
        assert_eq!(Error::check(-22_i64 as u64), Err(Error::Invalid));
        assert_eq!(Error::check(-14_i64 as u64), Err(Error::Fault));
        assert_eq!(
            Error::check(-75_i64 as u64),
            Err(Error::Vmm(vmmcall::Error::Overflow))
        );
        assert_eq!(Error::check(-2_i64 as u64), Err(Error::Other(2)));
        assert_eq!(Error::check(-4096_i64 as u64), Ok(-4096_i64 as u64));
    }

    #[test]
    fn arguments_extend_like_the_vmm_expects() {
        assert_eq!((-1_i8).into_arg(), u64::MAX);
        assert_eq!(255_u8.into_arg(), 255);
        assert_eq!((-2_i32).into_arg(), -2_i64 as u64);
        assert_eq!(true.into_arg(), 1);
        let x = [1u8, 2, 3];
        assert_eq!((&x[..]).into_arg(), x.as_ptr() as u64);
    }

    #[test]
    fn touching_keeps_the_bytes_and_stays_in_range() {
        // A buffer that straddles pages: every byte keeps its value, and
        // the touch reads nothing outside the slice (Miri-style bounds are
        // the slice's own; here a page-crossing slice of a larger array).
        let mut big = std::vec![0u8; 3 * PAGE];
        for (i, b) in big.iter_mut().enumerate() {
            *b = i as u8;
        }
        let before = big.clone();
        let s = &mut big[PAGE - 3..2 * PAGE + 5];
        let addr = s.as_ptr() as u64;
        assert_eq!(s.into_arg(), addr);
        assert_eq!(big, before);
        let empty: &mut [u8] = &mut [];
        let _ = empty.into_arg();
    }
}
