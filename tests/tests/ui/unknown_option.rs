//! Unknown options are refused, at the option.
use vmmcall::vmmcall;

#[vmmcall("a", kernel)]
fn a() {}

#[vmmcall("b", user = true)]
fn b() {}

#[vmmcall("c", "other_name")]
fn c() {}

#[vmmcall("d", user, crate)]
fn d() {}

fn main() {}
