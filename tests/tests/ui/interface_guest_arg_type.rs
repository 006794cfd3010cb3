//! A guest passing an argument of the wrong type (`i64` for `u64`, a
//! string for a byte).
vmmcall::interface! {
    /// A test interface.
    pub mod demo {
        /// Doubles.
        #[user]
        fn hello(arg1: u64) -> u64;
        /// Fills.
        fn fill(out: &mut [u8], byte: u8) -> u64;
        /// Sums.
        fn checksum(data: &[u8]) -> u32;
    }
}

fn main() {
    let n: i64 = 5;
    let _ = demo::hello(n);
    let mut out = [0u8; 4];
    let _ = demo::fill(&mut out, "x");
}
