//! Return types without `IntoRet` are refused, at the type.
use vmmcall::{vmmcall, Error};

#[vmmcall("text")]
fn text() -> String {
    String::new()
}

#[vmmcall("float")]
fn float() -> f64 {
    1.0
}

#[vmmcall("option")]
fn option() -> Option<u64> {
    None
}

// An alias hides the signed type from the macro; the trait still refuses it.
type Signed = i32;

#[vmmcall("alias")]
fn alias() -> Result<Signed, Error> {
    Ok(1)
}

fn main() {}
