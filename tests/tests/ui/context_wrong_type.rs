//! A first reference parameter that is not `Caller`: a type mismatch at that type.
use vmmcall::vmmcall;

#[vmmcall("not_a_caller")]
fn not_a_caller(_cx: &mut u64, _a: u64) {}

#[vmmcall("str_first")]
fn str_first(_s: &str) {}

fn main() {}
