//! A guest passing too few or too many arguments.
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
    let _ = demo::hello();
    let _ = demo::hello(1, 2);
}
