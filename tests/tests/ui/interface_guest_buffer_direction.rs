//! A guest lending a shared buffer where the VMM writes (`out: &mut [u8]`)
//! does not compile; an array that is not bytes does not either.
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
    let out = [0u8; 4];
    let _ = demo::fill(&out, 1);
    let words = [0u32; 4];
    let _ = demo::checksum(&words);
}
