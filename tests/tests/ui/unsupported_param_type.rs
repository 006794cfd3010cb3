//! Parameter types without `FromReg` are refused, at the type.
use vmmcall::vmmcall;

#[vmmcall("string")]
fn string(_a: u64, _s: String) {}

#[vmmcall("float")]
fn float(_x: f64) {}

#[vmmcall("wide")]
fn wide(_x: u128) {}

#[vmmcall("tuple")]
fn tuple(_pair: (u32, u32)) {}

fn main() {}
