//! The `&mut Caller` context after a register parameter is refused, at its type.
use vmmcall::{vmmcall, Caller};

#[vmmcall("late_context")]
fn late_context(_a: u64, _cx: &mut Caller) {}

fn main() {}
