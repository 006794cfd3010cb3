//! Shared references and raw pointers are `call_unchecked!`, which only
//! compiles inside `unsafe`; so do the raw entry points.
use guest_sdk::call_unchecked;

fn main() {
    let data = [1u8, 2, 3, 4];
    let _ = call_unchecked!("sum", rbx = &data, rcx = 4);
    let _ = guest_sdk::call_number(1, [0; 5]);
}
