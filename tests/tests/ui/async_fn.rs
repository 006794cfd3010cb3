//! `async fn` is refused, at `async`.
use vmmcall::vmmcall;

#[vmmcall("later")]
async fn later(x: u64) -> u64 {
    x
}

fn main() {}
