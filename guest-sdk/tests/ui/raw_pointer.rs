//! A raw pointer may name anything: only `call_unchecked!` takes one.
use guest_sdk::call;

fn main() {
    let mut buf = [0u8; 16];
    let _ = call!("get_status", rbx = buf.as_mut_ptr(), rcx = 16);
}
