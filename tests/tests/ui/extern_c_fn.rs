//! `extern "C" fn` is refused, at the ABI.
use vmmcall::vmmcall;

#[vmmcall("c_abi")]
extern "C" fn c_abi(x: u64) -> u64 {
    x
}

fn main() {}
