//! A buffer goes with its length: in one register, the length would be
//! whatever integer the caller chose, so the VMM could be told to write
//! past the buffer. Safe `call!` only lends `(address, length)` pairs.
use guest_sdk::call;

fn main() {
    let mut buf = [0u8; 4];
    let _ = call!("hello_fill", rbx = &mut buf, rcx = 4096, rdx = 1);
}
