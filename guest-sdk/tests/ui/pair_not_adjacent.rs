//! A buffer's length must be in the register after its address: with
//! `(rbx, rdx)` a writing handler would read its length from RCX, which the
//! program sets to anything (here 4,096 bytes for a 16-byte buffer).
use guest_sdk::call;

fn main() {
    let mut buf = [0u8; 16];
    let _ = call!("hello_fill", (rbx, rdx) = &mut buf, rcx = 4096u64);
}
