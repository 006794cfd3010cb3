//! The length register of a buffer pair cannot be given again.
use guest_sdk::call;

fn main() {
    let mut buf = [0u8; 4];
    let _ = call!("hello_fill", (rbx, rcx) = &mut buf, rcx = 4096);
}
