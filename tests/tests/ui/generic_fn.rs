//! Type, lifetime and `where` generics are refused, at the generics.
use vmmcall::vmmcall;

#[vmmcall("generic")]
fn generic<T: vmmcall::FromReg>(_x: T) {}

#[vmmcall("lifetime")]
fn lifetime<'a>(_cx: &'a mut vmmcall::Caller<'a>) {}

#[vmmcall("where_clause")]
fn where_clause(_x: u64)
where
    u64: Copy,
{
}

fn main() {}
