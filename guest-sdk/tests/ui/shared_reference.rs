//! The bug of issue 13: `get_status` writes its buffer, so a shared
//! reference must not become its address in safe code.
use guest_sdk::call;

fn main() {
    let buf = [0u8; 16];
    let _ = call!("get_status", (rbx, rcx) = &buf);
    let slice: &[u8] = &buf;
    let _ = call!("get_status", (rbx, rcx) = slice);
}
