//! A buffer pair names the address first: `(rcx, rbx)` would give the
//! handler the length as its address and the address as its length.
use guest_sdk::call;

fn main() {
    let mut buf = [0u8; 16];
    let _ = call!("hello_fill", (rcx, rbx) = &mut buf);
}
