//! The `#[vmmcall]` attribute macro and the `interface!` macro. Use them
//! through the `vmmcall` crate.
//!
//! `interface!` (`src/interface.rs`) declares a set of
//! hypercalls once: it expands to the VMM's trait, the guest's typed stubs,
//! the signature digests and the C header. `#[vmmcall]` on `impl
//! my_api::Handlers for MyVmm` registers each handler of that impl as
//! `#[vmmcall("name")]` registers one function, with the `Handler` the
//! declaration built (its name, `user`, thunk and signature digest), and
//! with the same duplicate-name symbol, so an interface handler and a plain
//! one with the same name fail to build as two plain ones do.
//!
//! `#[vmmcall("name")]` / `#[vmmcall("name", user)]` on a plain function
//! keeps the function as written (it stays callable as a normal Rust
//! function) and adds, in a `const` block named after the hypercall:
//! - a thunk that converts the argument registers with `FromReg` and the
//!   result with `IntoRet`;
//! - a `vmmcall::Handler` in the `vmmcall::HANDLERS` linker-section slice;
//! - a `#[used]` byte with an exported symbol derived from the name, so two
//!   handlers with one name fail to build: rustc reports "symbol ... is
//!   already defined" within one crate, the linker reports "duplicate
//!   symbol" across crates.
//!
//! The expansion names the vmmcall crate `::vmmcall`, or the path given
//! with `crate = PATH` (for a VMM that re-exports vmmcall, as with linkme's
//! `#[linkme(crate = ...)]`), and asserts `vmmcall::valid_name` on the name
//! at compile time: the name rules below are checked here for the error's
//! position, and the library's `const fn` is the rule.
//!
//! The handler is also marked `#[allow(clippy::missing_const_for_fn)]`
//! (that nursery lint would suggest `const fn`, which is refused).
//!
//! # Errors
//!
//! Every misuse is a `syn::Error` on the offending token, and every misuse
//! found in one attribute and its function is reported together (the
//! function is then emitted unchanged, so its callers still compile):
//!
//! - attribute: missing name; name not a plain string literal (identifier,
//!   number, byte or C string, macro call, suffixed literal); name empty,
//!   longer than 255 bytes, containing NUL, or `get_vmmcall_number`; an
//!   unknown option, a second name, `user` with a value, `user` twice,
//!   `crate` without a path, `crate` twice;
//! - item: not a function (struct, static, ...);
//! - signature: `const`, `async`, `unsafe`, `extern "..."`, generics
//!   (type, lifetime, const), `where` clause, variadic, `self`;
//! - parameters: a reference that is not first, the context not first, a
//!   raw pointer, `impl Trait`, more than five register parameters (one
//!   error spanning the extra ones);
//! - result: a signed integer, directly or in `Result<_, _>`.
//!
//! Type errors the macro cannot see are left to rustc, with the generated
//! code spanned so that they point at the offending type: a parameter type
//! without `FromReg` (`String`, `f64`, `u128`, ...), a result type without
//! `IntoRet` (including a signed type behind an alias), a first reference
//! parameter that is not `&mut Caller` / `&Caller`.
//!
//! Known limit: on an associated function without `self` (in an `impl`
//! block), the error is rustc's "cannot find function" on its name; a
//! hypercall must be a free function.
//!
//! # Layout
//!
//! One module per concern, as in linkme's impl crate:
//! - `abi`: the ABI v1 facts the macros mirror from `vmmcall::abi`;
//! - `errors`: the error accumulator that reports every misuse at once;
//! - `names`: the hypercall name rules and the duplicate-name symbol;
//! - `attr`: parsing the `#[vmmcall(...)]` attribute's arguments;
//! - `function`: `#[vmmcall("name")]` on a function (checks, thunk);
//! - `impl_block`: `#[vmmcall]` on an interface `impl`;
//! - `registration`: the registration both of them emit;
//! - `interface`: `interface!` (declaration parsing, the VMM's trait, the
//!   guest stubs and batch entries, the C header).

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::Item;

mod abi;
mod attr;
mod errors;
mod function;
mod impl_block;
mod interface;
mod names;
mod registration;

/// Register a function as a hypercall, or every handler of an interface
/// `impl`. See the `vmmcall` crate docs.
#[proc_macro_attribute]
pub fn vmmcall(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into()).into()
}

/// Declare a hypercall interface. See `vmmcall::interface!`.
#[proc_macro]
pub fn interface(input: TokenStream) -> TokenStream {
    interface::expand(input.into()).into()
}

/// The whole expansion on `proc_macro2` tokens (unit-testable). On error,
/// the errors are emitted followed by the item unchanged, so that the
/// function's own body is still type-checked and its callers do not pile up
/// "cannot find function" errors.
fn expand(attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    match try_expand(attr, item.clone()) {
        Ok(ts) => ts,
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #item)
        }
    }
}

/// `#[vmmcall]` on an `impl Trait for Type` goes to [`impl_block`] (the
/// names come from the interface, so the attribute takes at most `crate =
/// PATH`); on anything else to [`function`].
fn try_expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if let Ok(Item::Impl(imp)) = syn::parse2::<Item>(item.clone()) {
        if imp.trait_.is_some() {
            return impl_block::expand(attr, imp);
        }
    }
    function::expand(attr, item)
}

#[cfg(test)]
mod tests {
    use super::try_expand;
    use proc_macro2::TokenStream as TokenStream2;

    /// The error messages the expansion produces for an attribute and an
    /// item (for the tests of [`attr`](crate::attr) and
    /// [`function`](crate::function)).
    pub(crate) fn errors(attr: TokenStream2, item: TokenStream2) -> Vec<String> {
        match try_expand(attr, item) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }
}
