//! `crate = PATH` needs exactly one path.
use vmmcall::vmmcall;

#[vmmcall("a", crate)]
fn a() {}

#[vmmcall("b", crate =)]
fn b() {}

#[vmmcall("c", crate = "vmmcall")]
fn c() {}

#[vmmcall("d", crate = vmmcall, crate = vmmcall)]
fn d() {}

fn main() {}
