//! `&mut` only to integers and arrays or slices of them: the VMM may write
//! any bytes, which would make a `bool`, a `str` or a pointer invalid, and
//! `&mut Vec<u8>` would hand it the vector's header, not its bytes.
use guest_sdk::call;

fn main() {
    let mut flag = false;
    let _ = call!("hello_fill", (rbx, rcx) = &mut flag, rdx = 2);
    let mut text = String::from("hello");
    let _ = call!("hello_fill", (rbx, rcx) = text.as_mut_str(), rdx = 0xff);
    let mut name: &'static str = "hello";
    let _ = call!("hello_fill", (rbx, rcx) = &mut name, rdx = 1);
    let mut v = vec![0u8; 16];
    let _ = call!("get_status", (rbx, rcx) = &mut v);
}
