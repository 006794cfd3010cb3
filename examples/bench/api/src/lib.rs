//! The bench example's interface: `typed5`, five parameters of five types,
//! declared once. The VMM registers the same handler body twice, as
//! `typed5` through this declaration and as `plain5` with
//! `#[vmmcall("plain5", user)]`, and the guest times both side by side:
//! a typed call costs no more than the plain one (`bench: typed/plain`).
#![no_std]

vmmcall::interface! {
    /// One typed call for the benchmark.
    pub mod bench {
        /// `a + b + c + d + e`, each converted as declared (`u32`, `u16`
        /// and `u8` refuse wider values, `bool` refuses 2).
        #[user]
        fn typed5(a: u64, b: u32, c: u16, d: u8, e: bool) -> u64;
    }
}

/// What `typed5` and `plain5` return: the same arithmetic in both.
#[inline(always)]
pub fn sum5(a: u64, b: u32, c: u16, d: u8, e: bool) -> u64 {
    a.wrapping_add(u64::from(b))
        .wrapping_add(u64::from(c))
        .wrapping_add(u64::from(d))
        .wrapping_add(u64::from(e))
}
