//! Named hypercalls for bare-metal hypervisors.
//!
//! A guest calls into its hypervisor with one instruction (`vmcall` on
//! Intel, `vmmcall` on AMD), passing a function number in RAX and arguments
//! in RBX, RCX, RDX, RSI, RDI. This crate is the VMM side of that contract
//! (ABI v1, `docs/ABI.md`):
//!
//! - [`vmmcall`](macro@vmmcall): `#[vmmcall("hello")] fn hello(arg1: u64) -> u64`
//!   registers a handler. No init code, no table, no cap; a duplicate name is
//!   a link error.
//! - [`interface!`]: declare hypercalls once for the VMM (a trait it
//!   implements with `#[vmmcall] impl`), Rust guests (typed stubs) and C
//!   guests (a generated header), kept in agreement by the compiler and, at
//!   run time, by signature digests ([`abi::LOOKUP_TYPED`]). Buffers reach
//!   the VMM as [`GuestBuf`] and [`GuestBufMut`].
//! - [`Registry`]: numbers handlers by name (stable across builds of the same
//!   set), dispatches by number in O(1) and looks names up in O(1) expected.
//! - [`dispatch()`]: runs one hypercall on a [`Vcpu`] the VMM provides,
//!   including function 0, `get_vmmcall_number`, and `vmmcall_batch`
//!   ([`abi::BATCH`]: many calls in one exit, each answered as alone).
//! - [`step`]: long calls. A handler declared `long` works in steps and
//!   may return to the guest between them (an interrupt pending, or the
//!   exit's budget spent); the guest continues it by executing the
//!   instruction again, and the progress stays in the VMM.
//! - [`Caller`]: what a handler sees: privilege level, registers, guest
//!   memory by guest-linear address, the calling vCPU's id and the VMM's
//!   own state for the calling VM and vCPU ([`InVm`]).
//! - Per-VM policy: [`Registry::allow_only`] gives a VM a registry of the
//!   handlers it may call; the others do not exist for it.
//! - [`Registers`] and [`GuestVcpu`]: the VMM's own registers and guest
//!   memory as a [`Vcpu`], used in place, through the guest page walker
//!   ([`paging`]);
//! - [`cpuid`]: the CPUID leaves guests detect the VMM by (the VMM's own
//!   signature and base leaf); [`exit_hypercall!`]: the opt-in `exit`
//!   hypercall; [`budget`]: output budgets against guests that flood.
//!
//! Scope: VMMs that see the VMCALL/VMMCALL exit themselves (not user-space
//! VMMs on KVM, which handles VMCALL in the kernel). `docs/INTEGRATING.md`
//! in the repository adds this crate to a VMM step by step.
//!
//! ```
//! use vmmcall::vmmcall;
//!
//! #[vmmcall("hello", user)]
//! fn hello(arg1: u64) -> u64 {
//!     log::info!("Hello BitVisor!, arg1 = {arg1}");
//!     10
//! }
//! # fn main() {}
//! ```
//!
//! # Concurrency contract
//!
//! A VMM may dispatch on every vCPU at once, and the same handler may run
//! on several vCPUs at the same moment (of one VM or of several).
//!
//! **The framework guarantees:**
//! - A [`Registry`] never changes after it is built: [`Registry::global`]
//!   builds it once, on first use (racing first uses wait for one build),
//!   and dispatch only reads it. Per-VM registries are built by the VMM
//!   before it dispatches with them. Once a registry exists, dispatch
//!   takes no lock (what the VMM's `log` logger does with a record is the
//!   VMM's).
//! - Call counts ([`Registry::calls`]) are exact: every call, refusal
//!   included, is one relaxed atomic add in the calling vCPU's shard
//!   ([`Vcpu::vcpu_id`] modulo [`COUNTER_SHARDS`]), and no two shards share
//!   a cache line, so vCPUs with different shards never write the same
//!   line on the hot path. A sum read while calls run may miss those calls.
//! - Budgets ([`budget::Budget`], [`budget::GUEST_LOG`]) are atomic: their
//!   counts are exact and the limit is never exceeded. `GUEST_LOG` is
//!   written only when a call causes a log record at an enabled level (a
//!   failing call, never the successful path), so it is off the hot path.
//! - Dispatch touches only the calling vCPU's registers (RAX) and the guest
//!   memory its handler asks for, through the [`Vcpu`] the VMM passed.
//!
//! **A handler must:**
//! - be safe to run on several vCPUs at once: state shared between calls
//!   (statics, the VM's state from [`Caller::vm`], which is `Sync`) changes
//!   only through atomics or locks; state of the calling vCPU
//!   ([`Caller::vcpu_state`]) is its own;
//! - not hold a lock across something that waits for another vCPU (another
//!   vCPU may be in the same handler, waiting for the same lock);
//! - expect guest memory to change under it: another vCPU of the same
//!   guest may write it at any moment. Read what it uses once, into its
//!   own memory, and decide on that copy.
//!
//! **The VMM must** give each vCPU its own [`Vcpu`] (registers, the CPL and
//! paging state of that vCPU) and distinct vCPU ids within a VM, and
//! dispatch a vCPU's exits one at a time (different vCPUs in parallel).
//! The id also picks the counter shard: vCPUs of several VMs that share
//! one registry and one id share a counter line (still exactly counted);
//! a registry per VM ([`Registry::restricted`]) keeps them apart.
//!
//! Guests depend on this crate with `default-features = false`, which leaves
//! [`abi`], [`Error`], [`cpuid`], [`budget`] and the `interface!` macro
//! (whose VMM side needs the registry); `vmmcall-macros`, and with it
//! `syn`, is therefore a dependency of guests too, at build time only.
#![no_std]
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

#[cfg(feature = "registry")]
extern crate self as vmmcall;

pub mod abi;
#[cfg(feature = "registry")]
mod batch;
pub mod budget;
#[cfg(feature = "registry")]
mod buffer;
#[cfg(feature = "registry")]
mod context;
pub mod cpuid;
#[cfg(feature = "registry")]
mod dispatch;
mod error;
#[cfg(feature = "registry")]
mod marshal;
#[cfg(any(test, feature = "mock"))]
#[allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
pub mod mock;
#[cfg(feature = "registry")]
pub mod paging;
#[cfg(feature = "registry")]
mod registry;
#[cfg(feature = "registry")]
pub mod regs;
#[cfg(feature = "registry")]
mod state;
#[cfg(feature = "registry")]
pub mod step;
#[cfg(feature = "registry")]
pub mod vcpu;

pub use error::{decode_rax, Error};

#[cfg(feature = "registry")]
pub use buffer::{FromGuestBytes, GuestBuf, GuestBufMut, GuestBytes, GuestReader};
#[cfg(feature = "registry")]
pub use context::{read_cstr, AsDynVcpu, CStrError, Caller, GuestAddr, MemError, Vcpu};
#[cfg(feature = "registry")]
pub use dispatch::{dispatch, Outcome};
#[cfg(feature = "registry")]
pub use marshal::{FromReg, IntoRet};
#[cfg(feature = "registry")]
pub use registry::{
    valid_name, Handler, HandlerFn, Registry, RegistryError, TypedLookup, COUNTER_SHARDS, HANDLERS,
};
#[cfg(feature = "registry")]
pub use regs::{Gpr, GuestRegs, Registers};
#[cfg(feature = "registry")]
pub use state::InVm;
#[cfg(feature = "registry")]
pub use vcpu::{GuestVcpu, VcpuState};

/// Register a function as a hypercall.
///
/// ```text
/// #[vmmcall("name")]                      // callable from CPL 0 only
/// #[vmmcall("name", user)]                // callable from any CPL
/// #[vmmcall("name", crate = my_vmm::hc)]  // vmmcall re-exported as my_vmm::hc
/// ```
///
/// The generated code names this crate `::vmmcall` unless `crate = PATH`
/// says where it is: a VMM that re-exports vmmcall (`pub use vmmcall as
/// hc;`) lets crates with handlers depend on the VMM alone, as with
/// `linkme`'s `#[linkme(crate = ...)]`.
///
/// The function may take, in order: optionally `&mut Caller` (the calling
/// vCPU), then up to five parameters filled from RBX, RCX, RDX, RSI, RDI
/// (types implementing [`FromReg`]). It returns a type implementing
/// [`IntoRet`]: `()`, `bool`, an unsigned integer, or `Result` of one of
/// those and [`Error`].
#[cfg(feature = "registry")]
pub use vmmcall_macros::vmmcall;

/// Register the `exit` hypercall (`docs/ABI.md`, "Built-in functions"):
/// `exit(status: u32)`, callable from CPL 0 only, asks the VMM to stop the
/// guest with `status` as its exit status, through
/// [`Caller::request_stop`] (the VMM sees it in [`Outcome::stop`]).
/// `guest_sdk`'s bare-metal runtime finishes through it.
///
/// Kernel-only: ending the whole machine is the guest kernel's decision,
/// as powering off is on hardware (Linux reserves it to `CAP_SYS_BOOT`).
/// A ring-3 caller gets `-EPERM` and the guest runs on, so no user program
/// can end the run with a status of its choosing.
///
/// Opt-in: write it once, at module level, in the VMM's crate. A VMM that
/// registers its own `exit` cannot also write this (the duplicate name
/// fails the build).
///
/// ```
/// vmmcall::exit_hypercall!();
///
/// # fn main() {
/// use vmmcall::{dispatch, mock::MockVcpu, Registry};
/// let registry = Registry::global().unwrap();
/// let mut vcpu = MockVcpu::new();
/// vcpu.regs.rax = registry.lookup(b"exit").unwrap().get();
/// vcpu.regs.rbx = 3;
/// assert_eq!(dispatch(registry, &mut vcpu).stop, Some(3));
/// // From ring 3: -EPERM, and the guest runs on.
/// vcpu.cpl = 3;
/// vcpu.regs.rax = registry.lookup(b"exit").unwrap().get();
/// let outcome = dispatch(registry, &mut vcpu);
/// assert_eq!((outcome.stop, vcpu.regs.rax), (None, vmmcall::Error::Permission.to_rax()));
/// # }
/// ```
#[cfg(feature = "registry")]
#[macro_export]
macro_rules! exit_hypercall {
    () => {
        const _: () = {
            /// `exit(status)`: stop the guest with this exit status.
            #[$crate::vmmcall("exit", crate = $crate)]
            fn exit(caller: &mut $crate::Caller<'_>, status: u32) {
                caller.request_stop(status);
            }
        };
    };
}

/// Declare a hypercall interface once, for the VMM and its guests.
///
/// ```text
/// vmmcall::interface! {
///     /// The demo interface.
///     pub mod demo {
///         /// The seed's call: prints a line on the VMM console.
///         #[user]
///         fn hello(arg1: u64) -> u64;
///         /// The VMM writes `byte` into every byte of `out`.
///         #[user]
///         fn fill(out: &mut [u8], byte: u8) -> u64;
///         /// Kernel-only: CPL > 0 callers get -EPERM.
///         fn checksum(data: &[u8]) -> u32;
///     }
/// }
/// ```
///
/// In the crate that holds the declaration (a `no_std` crate shared by the
/// VMM and its guests, depending on `vmmcall` with
/// `default-features = false` and on `guest-sdk`), the module gets:
///
/// - **VMM side**, when `vmmcall`'s `registry` feature is on (a VMM build):
///   `trait Handlers`, one associated function per hypercall, `fn
///   hello(cx: &mut Caller<'_>, arg1: u64) -> Result<u64, Error>`.
///   Buffers arrive as [`GuestBuf`] (`&[u8]`: the VMM reads) and
///   [`GuestBufMut`] (`&mut [u8]`: the VMM writes). The VMM implements it
///   and registers every handler with `#[vmmcall] impl demo::Handlers for
///   MyVmm { ... }`: a missing handler, a different signature or a
///   duplicate name is a compile error. The functions take no `self`: a
///   handler reaches the calling vCPU's id and the VMM's state for the
///   calling VM and vCPU through `cx` ([`Caller::vcpu_id`],
///   [`Caller::vm`], [`Caller::vcpu_state`]), as plain handlers do.
/// - **Guest side**: `fn hello(arg1: u64) -> Result<u64, guest_sdk::Error>`,
///   a safe stub per hypercall (buffers as `&[u8]` / `&mut [u8]`, made
///   present before the call), looked up once with the signature digest
///   (`vmmcall_lookup_typed`): a VMM whose handler has another signature
///   answers `guest_sdk::Error::Mismatch`.
/// - `mod signatures` (one `u64` digest per hypercall, [`abi::signature_digest`]),
///   `DECLARATIONS` ([`abi::Declaration`]: name, `user`, canonical text,
///   digest) and `C_HEADER`, the C header on top of `vmmcall.h`: per
///   hypercall a typed inline call (`demo_hello`), its batch entry
///   (`demo_hello_entry`) and its result decoder (`demo_hello_result`).
///   A name that is another's plus `_entry`, `_result` or `_number` does
///   not compile (the header would define one function twice).
///
/// Parameters are `u8`, `u16`, `u32`, `u64`, `i8`, `i16`, `i32`, `i64`,
/// `bool` (one register each) and `&[u8]` / `&mut [u8]` (two registers:
/// address, length in bytes), at most five registers. Results are `()`,
/// `bool`, `u8`, `u16`, `u32`, `u64`. The hypercall's name is the
/// function's name; `#[user]` makes it callable from any CPL. See
/// `docs/ABI.md`, "Interfaces".
pub use vmmcall_macros::interface;

/// Expands to its input when the `registry` feature is on, to nothing
/// otherwise: the VMM side of an `interface!` declaration exists only in a
/// VMM build. Implementation detail of `interface!`.
#[cfg(feature = "registry")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_registry {
    ($($t:tt)*) => { $($t)* };
}

/// See the `registry` variant: without the registry, nothing.
#[cfg(not(feature = "registry"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_registry {
    ($($t:tt)*) => {};
}

/// Implementation details of the `#[vmmcall]` macro. Not public API.
#[cfg(feature = "registry")]
#[doc(hidden)]
pub mod __private {
    pub use linkme;
}
