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
//!   CPUID hypervisor leaves (vmmcall's interface), so without this VMM every call returns
//!   [`Error::NotPresent`] instead of faulting (SIGILL under Linux).
//! - Arguments are integers, `bool`, and `&mut` to integers or arrays and
//!   slices of integers, passed as their guest-linear address, see
//!   [`IntoArg`]. Shared references and raw pointers need
//!   [`call_unchecked!`] in an `unsafe` block.
//! - [`handler_count`] and [`describe`] list the VMM's handlers
//!   (`vmmcall_describe`); `guest-sdk/include/vmmcall.h` is the same SDK
//!   for C, and the `vmmcall` program (`src/bin/vmmcall.rs`) the same for
//!   the shell of a Linux guest.
//!
//! # Soundness
//!
//! A hypercall is a call into code the compiler cannot see, which may
//! write guest memory through any address in an argument register. The
//! safe [`call!`] therefore turns nothing into an address but a `&mut`
//! place whose every byte pattern is valid ([`Plain`]: integers, arrays and
//! slices of them), always with its length, and keeps that place borrowed
//! until the VMM returns.
//! With a VMM present, safe code cannot get memory behind a shared
//! reference, an immutable binding, a `bool`, a `str` or a pointer
//! changed through the SDK, and a buffer cannot be freed, unlocked or used
//! while the VMM may write it: `guest-sdk/tests/ui/*.rs` are the
//! compile-fail cases. The traits are sealed, so no other crate can add a
//! type that becomes an address.
//!
//! A buffer goes to the VMM together with its length: `(rbx, rcx) = &mut
//! buf` puts the address in the first register and the length in bytes in
//! the second, and safe `call!` has no other way to pass an address. So
//! safe code cannot name more memory than it lends. This rests on the ABI
//! convention that a handler writing through a buffer argument takes the
//! buffer's length in the next register (docs/ABI.md, "Buffers"), as
//! `get_status` and `hello_fill` do; a handler that writes more than that
//! length is a VMM bug, as a `read(2)` that wrote past its count would be
//! a kernel bug. Everything the SDK passes itself ([`lookup`],
//! [`describe`], [`handler_count`]) is bounded by the slice it comes from.
//!
//! Without features the crate is `no_std` and brings no runtime: a guest
//! kernel keeps its own entry point, console and exception handling.
//! Feature `std` builds with `std`, for Linux user programs (and the
//! `vmmcall` program).
#![cfg_attr(not(feature = "std"), no_std)]

pub mod interface;
mod typed_batch;
pub use typed_batch::{Batch, Entry, Ticket};

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
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
    /// `-EPROTO`: a typed call's lookup found the name, but the VMM's
    /// handler was declared with another signature than this program was
    /// built against (version skew, docs/ABI.md): nothing was called.
    Mismatch,
    /// Another error from the VMM ([`vmmcall::Error`]).
    Vmm(vmmcall::Error),
    /// An errno this SDK does not know (1..=4095).
    Other(u16),
    /// A [`Batch`] entry the last run did not answer (the batch stopped
    /// before it, or it has not run).
    NotRun,
}

impl Error {
    /// Decode a raw RAX value from a hypercall.
    ///
    /// The hot path is the range test alone (one compare and branch);
    /// decoding an errno is out of line.
    #[inline(always)]
    pub fn check(rax: u64) -> Result<u64, Error> {
        if abi::is_error(rax) {
            Err(Error::from_error_rax(rax))
        } else {
            Ok(rax)
        }
    }

    /// The error for a RAX in the error range (see [`Error::check`]).
    #[cold]
    #[inline(never)]
    fn from_error_rax(rax: u64) -> Error {
        // In the error range, -rax is in 1..=4095 and fits u16.
        let errno = rax.wrapping_neg() as u16;
        match vmmcall::Error::from_errno(errno) {
            Some(vmmcall::Error::NoSys) => Error::NoSys,
            Some(vmmcall::Error::Permission) => Error::Permission,
            Some(vmmcall::Error::Invalid) => Error::Invalid,
            Some(vmmcall::Error::Fault) => Error::Fault,
            Some(vmmcall::Error::Mismatch) => Error::Mismatch,
            Some(e) => Error::Vmm(e),
            None => Error::Other(errno),
        }
    }

    /// The errno the VMM answered with (1..=4095), or `None` when no
    /// hypercall answered ([`Error::NotPresent`], [`Error::NotFound`],
    /// [`Error::NotRun`]).
    pub fn errno(self) -> Option<u16> {
        match self {
            Error::NotPresent | Error::NotFound | Error::NotRun => None,
            Error::NoSys => Some(vmmcall::Error::NoSys.errno()),
            Error::Permission => Some(vmmcall::Error::Permission.errno()),
            Error::Invalid => Some(vmmcall::Error::Invalid.errno()),
            Error::Fault => Some(vmmcall::Error::Fault.errno()),
            Error::Mismatch => Some(vmmcall::Error::Mismatch.errno()),
            Error::Vmm(e) => Some(e.errno()),
            Error::Other(n) => Some(n),
        }
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
            Error::Mismatch => vmmcall::Error::Mismatch.fmt(f),
            Error::Vmm(e) => e.fmt(f),
            Error::Other(n) => write!(f, "hypercall failed with errno {n}"),
            Error::NotRun => f.write_str("the batch did not run this entry"),
        }
    }
}

impl core::error::Error for Error {}

/// The hypervisor, as [`detect`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vmm {
    /// The ABI version from CPUID leaf `base + 1` (`0x4000_0001` unless the
    /// VMM moved its block).
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
/// executed): the hypervisor-present bit (CPUID.1:ECX bit 31), then the
/// vmmcall interface (`"VMMC"` in EBX of leaf `base + 1`) in the first
/// block of hypervisor leaves that has it, `base` = `0x4000_0000`,
/// `0x4000_0100`, ... ([`vmmcall::cpuid::find`]): a VMM may show its own
/// signature, and keep its own leaves below vmmcall's.
pub fn detect() -> Option<Vmm> {
    let (_, _, ecx, _) = cpuid(1);
    if ecx & vmmcall::cpuid::CPUID1_ECX_HYPERVISOR == 0 {
        return None;
    }
    let found = vmmcall::cpuid::find(|leaf| {
        let (eax, ebx, ecx, edx) = cpuid(leaf);
        vmmcall::cpuid::Leaf { eax, ebx, ecx, edx }
    })?;
    let version = found.abi_version;
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
    lookup_with(abi::GET_VMMCALL_NUMBER, name_nul, 0)
}

/// Look a name up with `vmmcall_lookup_typed`: its number if the VMM's
/// handler was declared with the signature digest `signature` (what an
/// interface declaration gives it, `vmmcall::abi::signature_digest`).
/// `name` must end with NUL.
///
/// Errors: [`Error::NotFound`] (no such name), [`Error::Mismatch`] (the
/// handler has another signature, or none: calling it would pass the
/// wrong types), [`Error::NoSys`] (a VMM without typed lookups),
/// [`Error::Invalid`] (`name_nul` does not end with NUL). A handler that
/// is not `user`, looked up from CPL > 0, answers its number whatever the
/// digest (calling it answers [`Error::Permission`]).
pub fn lookup_typed(name_nul: &[u8], signature: u64) -> Result<u64, Error> {
    lookup_with(abi::LOOKUP_TYPED, name_nul, signature)
}

/// A lookup by name through `function` (0 or `vmmcall_lookup_typed`),
/// RBX = the name, RCX = `rcx`; 0 is [`Error::NotFound`].
fn lookup_with(function: u64, name_nul: &[u8], rcx: u64) -> Result<u64, Error> {
    let insn = instruction()?;
    if name_nul.last() != Some(&0) {
        return Err(Error::Invalid);
    }
    // SAFETY: a shared slice is valid for reads of its length.
    unsafe { prefault(name_nul.as_ptr(), name_nul.len()) };
    // SAFETY: the VMM is present (instruction() checked); both lookups
    // only read the NUL-terminated name at RBX, which `name_nul` provides,
    // and take RCX as a number.
    let n = unsafe { raw_hypercall(insn, function, [name_nul.as_ptr() as u64, rcx, 0, 0, 0]) };
    match Error::check(n)? {
        0 => Err(Error::NotFound),
        n => Ok(n),
    }
}

/// A handler as `vmmcall_describe` reports it ([`describe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described<'b> {
    /// The name, as written into the caller's buffer (empty when the buffer
    /// was empty).
    pub name: &'b [u8],
    /// The name's length, whether or not it was written.
    pub name_len: usize,
    /// Whether callers at any CPL may call it (`#[vmmcall(.., user)]`).
    pub user: bool,
    /// Whether it was declared in an interface (`vmmcall::interface!`):
    /// [`lookup_typed`] finds it with its signature digest.
    pub typed: bool,
    /// Whether it is declared `long`: the VMM may return to the guest
    /// between its steps, and the guest continues it by executing the
    /// instruction again, which happens by itself (docs/ABI.md, "Long
    /// calls").
    pub long: bool,
}

/// How many handlers the VMM has: function numbers `1..=N` are theirs
/// (`vmmcall_describe` with RBX = 0, any CPL).
///
/// [`Error::NoSys`] from a VMM that does not describe its handlers.
pub fn handler_count() -> Result<u64, Error> {
    let insn = instruction()?;
    // SAFETY: the VMM is present; vmmcall_describe with RBX = 0 writes
    // nothing.
    Error::check(unsafe { raw_hypercall(insn, abi::DESCRIBE, [0; 5]) })
}

/// Describe handler `number` (1 or more): its name, written into `name`
/// with a NUL after it, and whether ring 3 may call it.
///
/// With an empty `name`, only the length and the flag come back. Errors:
/// [`Error::Permission`] for a handler that is not `user` when the caller
/// is not at CPL 0 (what calling it would answer; its name stays hidden),
/// [`Error::NoSys`] for a number no handler has (past the last one, or a
/// VMM that does not describe its handlers), `Vmm(NoSpace)` when `name`
/// is shorter than the name and its NUL, [`Error::Invalid`] for 0 (see
/// [`handler_count`]).
///
/// Safe: `vmmcall_describe` is part of the ABI, not a handler, and writes
/// at most `name.len()` bytes at `name` (docs/ABI.md); 256 bytes always
/// suffice.
pub fn describe(number: u64, name: &mut [u8]) -> Result<Described<'_>, Error> {
    if number == 0 {
        return Err(Error::Invalid);
    }
    let insn = instruction()?;
    let len = name.len();
    // SAFETY: `name` is an exclusive slice, valid for reads and writes.
    unsafe { prefault_mut(name.as_mut_ptr(), len) };
    // SAFETY: the VMM is present; vmmcall_describe writes at most RDX =
    // `len` bytes at RCX, all inside `name`, which is exclusively ours.
    let raw = unsafe {
        raw_hypercall(
            insn,
            abi::DESCRIBE,
            [number, name.as_mut_ptr() as u64, len as u64, 0, 0],
        )
    };
    let flags = Error::check(raw)?;
    let name_len = (flags & abi::DESCRIBE_NAME_LEN) as usize;
    let written = if len == 0 {
        &[][..]
    } else {
        name.get(..name_len).ok_or(Error::Invalid)?
    };
    Ok(Described {
        name: written,
        name_len,
        user: flags & abi::DESCRIBE_USER != 0,
        typed: flags & abi::DESCRIBE_TYPED != 0,
        long: flags & abi::DESCRIBE_LONG != 0,
    })
}

/// One entry of a [`batch`]: a function number and its five arguments.
pub use abi::BatchEntry;

/// Whether the VMM runs batches (`vmmcall_batch` with no entries answers
/// 0; an older VMM answers `-ENOSYS`).
pub fn batch_supported() -> bool {
    let Ok(insn) = instruction() else {
        return false;
    };
    // SAFETY: the VMM is present; a batch of 0 entries reads and writes
    // nothing.
    let raw = unsafe { raw_hypercall(insn, abi::BATCH, [0; 5]) };
    raw == 0
}

/// Run `entries` in one exit (`vmmcall_batch`, docs/ABI.md): entry `i`'s
/// value or `-errno` goes to `results[i]` (decode it with
/// [`Error::check`]), each answered exactly as if it were called alone.
/// With `stop_on_error`, the batch stops after the first entry that fails.
///
/// Returns how many entries were answered: `entries.len()`, or fewer when
/// it stopped (the last answered is the failing one, or one that stopped
/// the guest). Errors: [`Error::Invalid`] for more than 4096 entries or
/// `results` shorter than `entries`; [`Error::NoSys`] from a VMM without
/// batches ([`batch_supported`]).
///
/// A long batch may be continued across several exits, like a long call;
/// nothing to do for that.
///
/// # Safety
/// As [`call_number`] for every entry: addresses in the entries' arguments
/// must be valid for what their functions do with them.
pub unsafe fn batch(
    entries: &[BatchEntry],
    results: &mut [u64],
    stop_on_error: bool,
) -> Result<usize, Error> {
    if results.len() < entries.len() || entries.len() as u64 > abi::BATCH_MAX_ENTRIES {
        return Err(Error::Invalid);
    }
    let insn = instruction()?;
    let list_bytes = core::mem::size_of_val(entries);
    // SAFETY: a shared slice is valid for reads of its length.
    unsafe { prefault(entries.as_ptr().cast(), list_bytes) };
    // SAFETY: `results` is exclusively ours, at least `entries.len()` u64s.
    unsafe { prefault_mut(results.as_mut_ptr().cast(), entries.len() * 8) };
    // SAFETY: the VMM is present; vmmcall_batch reads the list
    // (`BatchEntry` is `repr(C)`, the 48-byte layout of docs/ABI.md) and
    // writes one u64 per entry into `results`, which is ours and long
    // enough; the caller vouches for what the entries do.
    unsafe {
        raw_batch(
            insn,
            entries.as_ptr() as u64,
            entries.len(),
            results.as_mut_ptr() as u64,
            stop_flag(stop_on_error),
        )
    }
}

/// `BATCH_STOP_ON_ERROR` when asked for, else no flag.
fn stop_flag(stop_on_error: bool) -> u64 {
    if stop_on_error {
        abi::BATCH_STOP_ON_ERROR
    } else {
        0
    }
}

/// One `vmmcall_batch` of `count` entries at `list`, results at
/// `results`, with `flags`: how many entries were answered.
///
/// # Safety
/// The VMM is present (`insn` came from [`instruction`]), and the caller
/// vouches for the list, the results and what the entries do, as
/// [`batch`] and [`batch_physical`] say.
unsafe fn raw_batch(
    insn: Instruction,
    list: u64,
    count: usize,
    results: u64,
    flags: u64,
) -> Result<usize, Error> {
    // SAFETY: the caller's contract.
    let raw = unsafe { raw_hypercall(insn, abi::BATCH, [list, count as u64, results, flags, 0]) };
    Error::check(raw).map(|n| n as usize)
}

/// [`batch`] with the list and the results named by guest-physical
/// address (`BATCH_PHYSICAL`, docs/ABI.md): for a kernel, at CPL 0, that
/// knows where its buffers lie; the VMM then walks no page tables, the
/// cheapest batch. `count` entries at `list`, results at `results`.
///
/// Errors as [`batch`], and [`Error::Permission`] outside CPL 0,
/// [`Error::Fault`] when either range is not guest RAM. A VMM from before
/// `BATCH_PHYSICAL` answers [`Error::Invalid`] (an unknown flag).
///
/// # Safety
/// `list` must hold `count` [`BatchEntry`] descriptors, and `results`
/// `count` `u64`s that nothing else reads or writes until this returns,
/// both guest-physical; and as [`call_number`] for every entry.
pub unsafe fn batch_physical(
    list: u64,
    count: usize,
    results: u64,
    stop_on_error: bool,
) -> Result<usize, Error> {
    if count as u64 > abi::BATCH_MAX_ENTRIES {
        return Err(Error::Invalid);
    }
    let insn = instruction()?;
    let flags = abi::BATCH_PHYSICAL | stop_flag(stop_on_error);
    // SAFETY: the VMM is present; the caller vouches for the ranges and
    // the entries.
    unsafe { raw_batch(insn, list, count, results, flags) }
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
    /// The signature digest for a typed lookup; 0: a plain lookup.
    signature: u64,
    /// 0: not resolved; else `number << 1 | (instruction == Vmcall)`.
    cache: AtomicU64,
}

impl CallSite {
    /// A call site for `name_nul` (the name followed by `"\0"`).
    pub const fn new(name_nul: &'static str) -> Self {
        CallSite {
            name_nul,
            signature: 0,
            cache: AtomicU64::new(0),
        }
    }

    /// A call site of a hypercall declared in an interface: it is looked
    /// up with `vmmcall_lookup_typed` and `signature` ([`lookup_typed`]),
    /// so a VMM whose handler has another signature answers
    /// [`Error::Mismatch`] instead of being called. `signature` 0 means a
    /// plain lookup, as [`CallSite::new`].
    pub const fn typed(name_nul: &'static str, signature: u64) -> Self {
        CallSite {
            name_nul,
            signature,
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
        let n = match self.signature {
            0 => lookup(self.name_nul.as_bytes())?,
            s => lookup_typed(self.name_nul.as_bytes(), s)?,
        };
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

    /// The first call of this site (or one whose lookup failed before):
    /// look the name up, then call. The arguments come one by one, in
    /// registers: an array would be passed by address, and its stack slot
    /// would then be written on the hot path too.
    ///
    /// # Safety
    /// As [`call_number`].
    #[cold]
    #[inline(never)]
    unsafe fn call_slow(&self, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> Result<u64, Error> {
        let (n, insn) = self.resolve_slow()?;
        // SAFETY: the VMM is present (resolve_slow found it); the caller
        // vouches for the arguments.
        Error::check(unsafe { raw_hypercall(insn, n, [a1, a2, a3, a4, a5]) })
    }

    /// Call it.
    ///
    /// Once the number is cached, this is the whole call site, inlined:
    /// one load of the cache, the test for "not resolved yet", the
    /// argument registers, the instruction (picked by the cache's low
    /// bit in the same `asm!` block), and the error-range test on RAX.
    ///
    /// # Safety
    /// As [`call_number`].
    #[inline(always)]
    pub unsafe fn call(&self, args: [u64; 5]) -> Result<u64, Error> {
        let cache = self.cache.load(Ordering::Relaxed);
        if cache == 0 {
            let [a1, a2, a3, a4, a5] = args;
            // SAFETY: the caller vouches for the arguments.
            return unsafe { self.call_slow(a1, a2, a3, a4, a5) };
        }
        // SAFETY: a non-zero cache was stored by resolve_slow after it found
        // the VMM, with the CPU's instruction in bit 0; the caller vouches
        // for the arguments.
        Error::check(unsafe { cached_hypercall(cache, args) })
    }

    /// Call it with [`Arg`]s, which keep whatever they borrow borrowed
    /// until the VMM has returned (what [`call!`] uses).
    ///
    /// # Safety
    /// As [`call_number`]. [`call!`] upholds it by passing nothing but
    /// values and `&mut` places of integers ([`IntoArg`]).
    #[inline(always)]
    pub unsafe fn call_args(&self, args: [Arg<'_>; 5]) -> Result<u64, Error> {
        let [a, b, c, d, e] = args;
        // SAFETY: the caller vouches for the arguments; `args` is owned
        // by this call, so its borrows last until the VMM returns.
        unsafe { self.call([a.raw, b.raw, c.raw, d.raw, e.raw]) }
    }
}

/// One hypercall from a call site's cache word (`number << 1 | vmcall`,
/// see [`CallSite`]): the shift that recovers the number also moves the
/// instruction choice into CF, so picking `vmcall` or `vmmcall` costs one
/// `jc` inside the `asm!` block. Returns RAX as the VMM left it.
///
/// # Safety
/// As [`raw_hypercall`]: `cache` is non-zero and came from
/// [`CallSite::resolve_slow`], which found the VMM and stored the CPU's
/// instruction in bit 0.
#[inline(always)]
unsafe fn cached_hypercall(cache: u64, args: [u64; 5]) -> u64 {
    let rax: u64;
    let [a1, a2, a3, a4, a5] = args;
    // SAFETY: the caller guarantees the VMM is present and that bit 0
    // names this CPU's instruction, so the one executed exits to the VMM
    // instead of raising #UD. RBX cannot be an asm operand: it is swapped
    // through a scratch register and restored (SHR, JC and JMP leave
    // it alone). The VMM changes only RAX (ABI v1) but may access memory
    // named by arguments: no `nomem`. SHR changes the flags: no
    // `preserves_flags`.
    unsafe {
        core::arch::asm!(
            "xchg {b}, rbx",
            "shr rax, 1",
            "jc 2f",
            "vmmcall",
            "jmp 3f",
            "2:",
            "vmcall",
            "3:",
            "xchg {b}, rbx",
            b = inout(reg) a1 => _,
            inout("rax") cache => rax,
            in("rcx") a2, in("rdx") a3, in("rsi") a4, in("rdi") a5,
            options(nostack),
        );
    }
    rax
}

/// One argument register's value, and the borrow it stands for.
///
/// An `Arg<'a>` made from `&'a mut` keeps that place mutably borrowed for
/// as long as the `Arg` lives: [`call!`] keeps its arguments until the VMM
/// has returned, so the borrow checker proves that nothing else touches a
/// buffer while the VMM may write it (a guard or owner dropped in between
/// is a compile error, not a race).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg<'a> {
    raw: u64,
    lent: PhantomData<&'a mut ()>,
}

impl Arg<'static> {
    /// An unused register: 0.
    pub const NONE: Arg<'static> = Arg::value(0);

    /// A plain value (what integers become).
    #[inline]
    pub const fn value(raw: u64) -> Arg<'static> {
        Arg {
            raw,
            lent: PhantomData,
        }
    }
}

impl<'a> Arg<'a> {
    /// The register value.
    #[inline]
    pub const fn raw(&self) -> u64 {
        self.raw
    }

    /// The address of memory borrowed for `'a` (the interface stubs'
    /// buffers, [`interface::lend`]).
    #[inline]
    pub(crate) fn borrowed<T>(ptr: *const T) -> Arg<'a> {
        Arg::address(ptr)
    }

    #[inline]
    fn address<T: ?Sized>(ptr: *const T) -> Arg<'a> {
        Arg {
            raw: ptr.cast::<u8>() as usize as u64,
            lent: PhantomData,
        }
    }
}

mod sealed {
    /// Only this crate implements [`crate::IntoArg`], [`crate::UncheckedArg`]
    /// and [`crate::Plain`].
    pub trait Sealed {}
}

/// Types the VMM may write any bytes into: every bit pattern is a valid
/// value and there is no padding (integers, and arrays and slices of
/// them). `bool`, `char`, references, enums, `str` and structs are not:
/// a VMM write could make them invalid, or (padding) read as
/// uninitialized.
///
/// Sealed: implemented by this crate only.
#[diagnostic::on_unimplemented(
    message = "the VMM may not write into a `{Self}`: not every byte pattern is one",
    label = "not an integer, or an array or slice of integers",
    note = "safe `call!` lends the VMM `&mut` to integers, arrays and slices of integers only"
)]
pub trait Plain: sealed::Sealed {}

/// A value the safe [`call!`] may place in one argument register:
/// integers (unsigned ones and `bool` zero-extended, signed ones
/// sign-extended, what `vmmcall`'s handlers expect).
///
/// Nothing else: a buffer goes with its length in a register pair
/// ([`IntoBuffer`]), a shared reference names memory the VMM must not
/// write, and a raw pointer may name anything. [`call_unchecked!`] takes
/// those, in an `unsafe` block.
///
/// Sealed: other crates cannot make their own types into addresses.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of the safe `call!`",
    label = "not an integer or `bool`",
    note = "the VMM may write through an address: safe `call!` takes integers and `bool` in one register, and a `&mut` buffer of integers with its length in a pair: `(rbx, rcx) = &mut buf`",
    note = "for a shared reference or a raw pointer, use `unsafe {{ guest_sdk::call_unchecked!(...) }}` and say why the handler does not write there"
)]
pub trait IntoArg<'a>: sealed::Sealed {
    /// The register value.
    fn into_arg(self) -> Arg<'a>;
}

/// A value [`call_unchecked!`] may place in an argument register:
/// everything [`IntoArg`] takes, and also `&T` and `&mut T` of any type
/// (their address; the pages are made present first, read-only for `&T`)
/// and raw pointers (their address, untouched: see [`prefault`]).
///
/// Sealed: implemented by this crate only.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a hypercall argument",
    note = "arguments are integers, `bool`, references or raw pointers"
)]
pub trait UncheckedArg<'a>: sealed::Sealed {
    /// The register value.
    fn into_unchecked_arg(self) -> Arg<'a>;
}

macro_rules! into_arg_int {
    ($($t:ty => $via:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {}
        impl IntoArg<'static> for $t {
            #[inline]
            fn into_arg(self) -> Arg<'static> {
                Arg::value(self as $via as u64)
            }
        }
        impl UncheckedArg<'static> for $t {
            #[inline]
            fn into_unchecked_arg(self) -> Arg<'static> {
                Arg::value(self as $via as u64)
            }
        }
    )*};
}
into_arg_int!(u8 => u64, u16 => u64, u32 => u64, u64 => u64, usize => u64,
              i8 => i64, i16 => i64, i32 => i64, i64 => i64, isize => i64);

// 128-bit integers can be written into (Plain), but not passed by value:
// they do not fit a register.
impl sealed::Sealed for u128 {}
impl Plain for u128 {}
impl sealed::Sealed for i128 {}
impl Plain for i128 {}
impl<T: Plain, const N: usize> sealed::Sealed for [T; N] {}
impl<T: Plain, const N: usize> Plain for [T; N] {}
impl<T: Plain> sealed::Sealed for [T] {}
impl<T: Plain> Plain for [T] {}

impl sealed::Sealed for bool {}
impl IntoArg<'static> for bool {
    #[inline]
    fn into_arg(self) -> Arg<'static> {
        Arg::value(u64::from(self))
    }
}
impl UncheckedArg<'static> for bool {
    #[inline]
    fn into_unchecked_arg(self) -> Arg<'static> {
        Arg::value(u64::from(self))
    }
}

/// Bytes per page for [`touch`]: the smallest x86 page.
const PAGE: usize = 4096;

/// Make every page of `[ptr, ptr + len)` present before the VMM walks the
/// guest's page tables: read one byte per page, and with `write` store it
/// back (so a copy-on-write or zero page becomes a private writable one).
///
/// The bytes are moved as `MaybeUninit<u8>`, so padding or uninitialized
/// bytes are never read as integers.
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
        let at = ptr.wrapping_add(page.max(ptr as usize) - ptr as usize);
        let at = at.cast::<MaybeUninit<u8>>();
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

/// Make every page of `[ptr, ptr + len)` present, for the VMM to read:
/// read one byte of each page.
///
/// An OS such as Linux maps memory lazily: a page of a fresh `mmap` or a
/// file mapping has no page-table entry until the program first touches
/// it. The VMM reads guest memory through those tables and injects no page
/// fault, so without this a call on such a buffer would fail with
/// [`Error::Fault`]. [`call!`] and [`call_unchecked!`] do it for every
/// reference they pass; call it yourself for the memory behind a raw
/// pointer. Best effort: an OS may still evict a page between this touch
/// and the hypercall (Linux does not for anonymous memory without swap);
/// the call then returns [`Error::Fault`].
///
/// # Safety
/// `[ptr, ptr + len)` is valid for reads.
#[inline]
pub unsafe fn prefault(ptr: *const u8, len: usize) {
    // SAFETY: the caller vouches for reads; `write` is false, so nothing
    // is written through the `*mut`.
    unsafe { touch(ptr.cast_mut(), len, false) }
}

/// [`prefault`] for memory the VMM will write: each page is read and the
/// byte written back, so that a copy-on-write or shared zero page becomes
/// a private writable page.
///
/// # Safety
/// `[ptr, ptr + len)` is valid for reads and writes, and nothing else
/// accesses it concurrently.
#[inline]
pub unsafe fn prefault_mut(ptr: *mut u8, len: usize) {
    // SAFETY: the caller vouches for the range.
    unsafe { touch(ptr, len, true) }
}

impl<T: ?Sized> sealed::Sealed for &T {}
impl<T: ?Sized> sealed::Sealed for &mut T {}
impl<T: ?Sized> sealed::Sealed for *const T {}
impl<T: ?Sized> sealed::Sealed for *mut T {}

/// A buffer the safe [`call!`] lends the VMM in a register pair:
/// `(address, length in bytes)`. `&mut T` with `T:` [`Plain`] only; every
/// page of it is made present and writable first (see [`prefault_mut`]),
/// and it stays borrowed until the VMM returns.
///
/// Sealed: implemented by this crate only.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be lent to the VMM by the safe `call!`",
    label = "not `&mut` to an integer, or an array or slice of integers",
    note = "a buffer goes as `(rbx, rcx) = &mut buf`: its address and its length in bytes"
)]
pub trait IntoBuffer<'a>: sealed::Sealed {
    /// The address and the length in bytes.
    fn into_buffer(self) -> (Arg<'a>, Arg<'static>);
}

impl<'a, T: Plain + ?Sized> IntoBuffer<'a> for &'a mut T {
    #[inline]
    fn into_buffer(self) -> (Arg<'a>, Arg<'static>) {
        let len = core::mem::size_of_val(self) as u64;
        (self.into_unchecked_arg(), Arg::value(len))
    }
}

impl<'a, T: ?Sized> UncheckedArg<'a> for &'a T {
    /// The address; every page of the referent is made present first
    /// (see [`prefault`]).
    #[inline]
    fn into_unchecked_arg(self) -> Arg<'a> {
        let ptr = self as *const T;
        // SAFETY: a shared reference is valid for reads of its size.
        unsafe { prefault(ptr.cast::<u8>(), core::mem::size_of_val(self)) };
        Arg::address(ptr)
    }
}

impl<'a, T: ?Sized> UncheckedArg<'a> for &'a mut T {
    /// The address; every page of the referent is made present and
    /// writable first (see [`prefault_mut`]).
    #[inline]
    fn into_unchecked_arg(self) -> Arg<'a> {
        let len = core::mem::size_of_val(self);
        let ptr = self as *mut T;
        // SAFETY: an exclusive reference is valid for reads and writes of
        // its size, and nothing else accesses it.
        unsafe { prefault_mut(ptr.cast::<u8>(), len) };
        Arg::address(ptr)
    }
}

impl<T: ?Sized> UncheckedArg<'static> for *const T {
    #[inline]
    fn into_unchecked_arg(self) -> Arg<'static> {
        Arg::address(self)
    }
}

impl<T: ?Sized> UncheckedArg<'static> for *mut T {
    #[inline]
    fn into_unchecked_arg(self) -> Arg<'static> {
        Arg::address(self)
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

/// The register pairs a buffer may take (implementation detail of
/// [`call!`]): docs/ABI.md ("Buffers") puts a writing handler's length in
/// the register right after the address, so only those pairs are lent. Any
/// other pair would let the VMM read the length from a register the program
/// sets freely (`(rbx, rdx) = &mut buf, rcx = 4096`), or swap address and
/// length (`(rcx, rbx)`).
#[doc(hidden)]
#[macro_export]
macro_rules! __buffer_pair {
    (rbx, rcx) => {};
    (rcx, rdx) => {};
    (rdx, rsi) => {};
    (rsi, rdi) => {};
    ($address:ident, $length:ident) => {
        ::core::compile_error!(::core::concat!(
            "`(",
            ::core::stringify!($address),
            ", ",
            ::core::stringify!($length),
            ")` is not a buffer pair: the length goes in the register after the address: ",
            "(rbx, rcx), (rcx, rdx), (rdx, rsi) or (rsi, rdi)"
        ));
    };
}

/// Call a hypercall by name: `call!("hello", rbx = 5)`.
///
/// Returns `Result<u64, guest_sdk::Error>`. Registers may be given in any
/// order, each at most once (a repeat is a compile error); unnamed ones
/// are 0. The name is looked up once per call site and cached.
///
/// Arguments are `reg = value` with what [`IntoArg`] takes (integers,
/// `bool`), or `(reg, reg) = &mut buf` with what [`IntoBuffer`] takes
/// (`&mut` to an integer or an array or slice of integers): the address in
/// the first register, the length in bytes in the second, which must be the
/// next argument register (`(rbx, rcx)`, `(rcx, rdx)`, `(rdx, rsi)` or
/// `(rsi, rdi)`, as docs/ABI.md "Buffers" says; any other pair does not
/// compile). The VMM may
/// write the buffer, and it stays borrowed until the VMM has returned:
///
/// ```no_run
/// # use guest_sdk::call;
/// let mut buf = [0u8; 64];
/// let full = call!("get_status", (rbx, rcx) = &mut buf)?;
/// // A buffer in a later pair: an integer in RBX, the buffer at RCX, its
/// // length in RDX.
/// let part = call!("read_at", rbx = 8u64, (rcx, rdx) = &mut buf)?;
/// # Ok::<(), guest_sdk::Error>(())
/// ```
///
/// A reference in a single register, a shared reference or a raw pointer
/// does not compile here: use [`call_unchecked!`].
#[macro_export]
macro_rules! call {
    ($name:literal $(,)?) => {
        $crate::__call!(@go $name [] [])
    };
    ($name:literal, $($rest:tt)+) => {
        $crate::__call!(@munch $name [] [] $($rest)+)
    };
}

/// The argument list of [`call!`] (implementation detail): collects the
/// registers (for the once-each check) and the arguments, then calls.
#[doc(hidden)]
#[macro_export]
macro_rules! __call {
    (@munch $name:literal [$($regs:ident)*] [$($acc:tt)*] ($r1:ident, $r2:ident) = $val:expr, $($rest:tt)*) => {
        $crate::__call!(@munch $name [$($regs)* $r1 $r2] [$($acc)* (buf $r1 $r2 $val)] $($rest)*)
    };
    (@munch $name:literal [$($regs:ident)*] [$($acc:tt)*] ($r1:ident, $r2:ident) = $val:expr) => {
        $crate::__call!(@go $name [$($regs)* $r1 $r2] [$($acc)* (buf $r1 $r2 $val)])
    };
    (@munch $name:literal [$($regs:ident)*] [$($acc:tt)*] $r:ident = $val:expr, $($rest:tt)*) => {
        $crate::__call!(@munch $name [$($regs)* $r] [$($acc)* (one $r $val)] $($rest)*)
    };
    (@munch $name:literal [$($regs:ident)*] [$($acc:tt)*] $r:ident = $val:expr) => {
        $crate::__call!(@go $name [$($regs)* $r] [$($acc)* (one $r $val)])
    };
    (@munch $name:literal [$($regs:ident)*] [$($acc:tt)*]) => {
        $crate::__call!(@go $name [$($regs)*] [$($acc)*])
    };
    (@go $name:literal [$($regs:ident)*] [$($acc:tt)*]) => {{
        static SITE: $crate::CallSite = $crate::CallSite::new(::core::concat!($name, "\0"));
        $crate::__check_registers!($($regs)*);
        #[allow(unused_mut)]
        let mut args = [$crate::Arg::NONE; 5];
        $( $crate::__call!(@arg args $acc); )*
        // SAFETY: every argument is a plain value, or the address and the
        // length of a `&mut` place of integers (IntoBuffer), made present,
        // that stays borrowed until the call returns (`args` lives through
        // it).
        unsafe { SITE.call_args(args) }
    }};
    (@arg $args:ident (one $r:ident $val:expr)) => {
        $args[$crate::__reg_index!($r)] = $crate::IntoArg::into_arg($val);
    };
    (@arg $args:ident (buf $r1:ident $r2:ident $val:expr)) => {
        $crate::__buffer_pair!($r1, $r2);
        let (address, length) = $crate::IntoBuffer::into_buffer($val);
        $args[$crate::__reg_index!($r1)] = address;
        $args[$crate::__reg_index!($r2)] = length;
    };
}

/// [`call!`] for arguments the compiler cannot vouch for: shared
/// references, raw pointers, `&mut` of any type. It must be used inside
/// `unsafe`:
///
/// ```no_run
/// # use guest_sdk::call_unchecked;
/// let data = [1u8, 2, 3, 4];
/// // SAFETY: `sum` only reads `len` bytes at RBX (examples/privilege).
/// let total = unsafe { call_unchecked!("sum", rbx = &data, rcx = data.len()) }?;
/// # Ok::<(), guest_sdk::Error>(())
/// ```
///
/// References are prefaulted and stay borrowed for the call, as with
/// [`call!`]; raw pointers are passed as they are (see [`prefault`]).
///
/// # Safety
/// Whatever the called handler does with its arguments must be valid
/// for them: memory it writes must be writable by it, unaliased by any
/// live reference and of a type for which its bytes are valid; memory it
/// reads must be readable; and every length or count must match the
/// buffer it describes.
#[macro_export]
macro_rules! call_unchecked {
    ($name:literal $(, $reg:ident = $val:expr)* $(,)?) => {{
        static SITE: $crate::CallSite = $crate::CallSite::new(::core::concat!($name, "\0"));
        $crate::__check_registers!($($reg)*);
        #[allow(unused_mut)]
        let mut args = [$crate::Arg::NONE; 5];
        $( args[$crate::__reg_index!($reg)] = $crate::UncheckedArg::into_unchecked_arg($val); )*
        // No `unsafe` block: the caller's makes the promises.
        $crate::CallSite::call_args(&SITE, args)
    }};
}

/// Each register at most once (implementation detail of [`call!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __check_registers {
    ($($reg:ident)*) => {
        const _: () = {
            let mut seen = 0u8;
            $(
                let bit = 1u8 << $crate::__reg_index!($reg);
                ::core::assert!(seen & bit == 0, ::core::concat!("register `", ::core::stringify!($reg), "` given twice"));
                seen |= bit;
            )*
            let _ = seen;
        };
    };
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
    fn errno_round_trips() {
        for e in vmmcall::Error::ALL {
            assert_eq!(
                Error::check(e.to_rax()).unwrap_err().errno(),
                Some(e.errno())
            );
        }
        assert_eq!(Error::Other(2).errno(), Some(2));
        assert_eq!(Error::NotPresent.errno(), None);
        assert_eq!(Error::NotFound.errno(), None);
    }

    #[test]
    fn arguments_extend_like_the_vmm_expects() {
        assert_eq!((-1_i8).into_arg().raw(), u64::MAX);
        assert_eq!(255_u8.into_arg().raw(), 255);
        assert_eq!((-2_i32).into_arg().raw(), -2_i64 as u64);
        assert_eq!(true.into_arg().raw(), 1);
        assert_eq!(false.into_unchecked_arg().raw(), 0);
        assert_eq!((-3_i64).into_unchecked_arg().raw(), -3_i64 as u64);
        let mut x = [1u8, 2, 3];
        let addr = x.as_ptr() as u64;
        let (a, l) = (&mut x[..]).into_buffer();
        assert_eq!((a.raw(), l.raw()), (addr, 3));
        let (a, l) = (&mut x).into_buffer();
        assert_eq!((a.raw(), l.raw()), (addr, 3));
        assert_eq!((&x[..]).into_unchecked_arg().raw(), addr);
        assert_eq!(x.as_ptr().into_unchecked_arg().raw(), addr);
        assert_eq!(x.as_mut_ptr().into_unchecked_arg().raw(), addr);
        let mut word = 7u64;
        let addr = &word as *const u64 as u64;
        let (a, l) = (&mut word).into_buffer();
        assert_eq!((a.raw(), l.raw()), (addr, 8), "the length is in bytes");
        assert_eq!(Arg::NONE.raw(), 0);
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
        assert_eq!(s.into_buffer().0.raw(), addr);
        assert_eq!(big, before);
        let s = &big[1..PAGE + 1];
        assert_eq!(s.into_unchecked_arg().raw(), big.as_ptr() as u64 + 1);
        assert_eq!(big, before);
        let empty: &mut [u8] = &mut [];
        assert_eq!(empty.into_buffer().1.raw(), 0);
        // Padding is moved as MaybeUninit, never read as an integer.
        #[repr(C)]
        struct Padded(u8, u32);
        let mut p = Padded(1, 2);
        let _ = (&mut p).into_unchecked_arg();
        assert_eq!((p.0, p.1), (1, 2));
    }
}
