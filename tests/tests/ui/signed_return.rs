//! Signed results are refused at compile time, at the signed type.
use vmmcall::{vmmcall, Error};

#[vmmcall("negative")]
fn negative() -> i64 {
    -1
}

#[vmmcall("negative_result")]
fn negative_result() -> Result<i32, Error> {
    Ok(-1)
}

#[vmmcall("negative_isize")]
fn negative_isize() -> core::primitive::isize {
    -1
}

fn main() {}
