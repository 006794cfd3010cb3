//! The interface example's hypercalls, declared once.
//!
//! The VMM (`examples/interface/vmm`) implements [`demo::Handlers`] (it
//! exists in the VMM's build, where vmmcall has its registry); the
//! bare-metal guest and the Linux program call the typed stubs
//! ([`demo::hello`], ...); the C program includes `c/demo.h`, generated
//! from [`demo::C_HEADER`] by `cargo xtask header` (a test fails when the
//! committed file is out of date).
//!
//! [`demo_v1`] is what an older release of this interface declared:
//! `add` took one parameter. A guest built against it must not reach the
//! new handler with the wrong registers; it gets
//! `guest_sdk::Error::Mismatch` (`-EPROTO`) from the typed lookup.
#![no_std]

vmmcall::interface! {
    /// The demo interface: integers in and out, a buffer the VMM reads, a
    /// buffer the VMM writes, and calls for CPL 0 only.
    pub mod demo {
        /// The seed's call, through the interface: the VMM prints
        /// `Hello BitVisor!, arg1 = ARG1` and returns 10.
        #[user]
        fn hello(arg1: u64) -> u64;

        /// `a + b`, which cannot overflow a `u64`.
        #[user]
        fn add(a: u32, b: u32) -> u64;

        /// The sum of the bytes of `data` (at most 4096 bytes, else
        /// `-ENOSPC`): the VMM reads the buffer.
        #[user]
        fn checksum(data: &[u8]) -> u32;

        /// The VMM writes `byte` into every byte of `out` (at most 4096,
        /// else `-ENOSPC`, nothing written) and returns how many it wrote.
        #[user]
        fn fill(out: &mut [u8], byte: u8) -> u64;

        /// CPL 0 only: `|x|`, doubled when `double` is true. Ring 3 gets
        /// `-EPERM`.
        fn magnitude(x: i32, double: bool) -> u64;

        /// CPL 0 only, nothing in, nothing out: counts the calls.
        fn tick();
    }
}

vmmcall::interface! {
    /// Version 1 of [`demo`]: `add` took one parameter. Kept to show
    /// version skew: no VMM implements it, and a guest built against it
    /// gets `Error::Mismatch` from a VMM that implements [`demo`].
    pub mod demo_v1 {
        /// `a + 1`.
        #[user]
        fn add(a: u32) -> u64;
    }
}

/// Most bytes `checksum` reads and `fill` writes in one call.
pub const BUFFER_MAX: usize = 4096;
