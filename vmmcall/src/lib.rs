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
//! - [`Registry`]: numbers handlers by name (stable across builds of the same
//!   set), dispatches by number in O(1) and looks names up in O(1) expected.
//! - [`dispatch`]: runs one hypercall on a [`Vcpu`] the VMM provides,
//!   including function 0, `get_vmmcall_number`.
//! - [`Caller`]: what a handler sees: privilege level, registers, guest
//!   memory by guest-linear address.
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
//! Guests depend on this crate with `default-features = false`, which leaves
//! only [`abi`] and [`Error`].
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
#[cfg(feature = "baremetal")]
pub mod baremetal;
#[cfg(feature = "registry")]
mod context;
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

pub use error::{decode_rax, Error};

#[cfg(feature = "registry")]
pub use context::{read_cstr, AsDynVcpu, CStrError, Caller, GuestAddr, GuestRegs, MemError, Vcpu};
#[cfg(feature = "registry")]
pub use dispatch::{dispatch, Outcome};
#[cfg(feature = "registry")]
pub use marshal::{FromReg, IntoRet};
#[cfg(feature = "registry")]
pub use registry::{valid_name, Handler, HandlerFn, Registry, RegistryError, HANDLERS};

/// Register a function as a hypercall.
///
/// ```text
/// #[vmmcall("name")]          // callable from CPL 0 only
/// #[vmmcall("name", user)]    // callable from any CPL
/// ```
///
/// The function may take, in order: optionally `&mut Caller` (the calling
/// vCPU), then up to five parameters filled from RBX, RCX, RDX, RSI, RDI
/// (types implementing [`FromReg`]). It returns a type implementing
/// [`IntoRet`]: `()`, `bool`, an unsigned integer, or `Result` of one of
/// those and [`Error`].
#[cfg(feature = "registry")]
pub use vmmcall_macros::vmmcall;

/// Implementation details of the `#[vmmcall]` macro. Not public API.
#[cfg(feature = "registry")]
#[doc(hidden)]
pub mod __private {
    pub use linkme;
}
