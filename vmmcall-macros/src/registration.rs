//! The code both `#[vmmcall("name")]` and `#[vmmcall] impl` emit for one
//! hypercall: the name check, the `Handler` in the linker-section slice
//! and the duplicate-name symbol; and the argument-register binding the
//! thunks (these and `interface!`'s) start with.

use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::Ident;

use crate::abi::ARG_REGS;
use crate::names::unique_symbol;

/// `let [__vmmcall_a0, .., _] = caller.args();` binding the first `used`
/// argument registers (nothing when none is used), and their names.
pub(crate) fn bind_registers(caller: &Ident, used: usize) -> (TokenStream2, Vec<Ident>) {
    let idents: Vec<Ident> = (0..used.min(ARG_REGS.len()))
        .map(|i| format_ident!("__vmmcall_a{i}"))
        .collect();
    let pattern = (0..ARG_REGS.len()).map(|i| match idents.get(i) {
        Some(id) => quote!(#id),
        None => quote!(_),
    });
    let binding = if idents.is_empty() {
        quote!()
    } else {
        quote!(let [#(#pattern),*] = #caller.args();)
    };
    (binding, idents)
}

/// The registration of one hypercall, for `#[vmmcall("name")]` and for each
/// handler of an interface impl: a `const` named after the hypercall
/// (`const_ident`, spanned where E0428 should point for a duplicate in one
/// module) holding the name check, `items` (a thunk), the `Handler`
/// (`handler`) in the linker-section slice, and the exported symbol that
/// makes two hypercalls with one name fail to build.
pub(crate) fn registration(
    krate: &syn::Path,
    const_ident: &Ident,
    name: &str,
    cfgs: &[&syn::Attribute],
    items: TokenStream2,
    handler: TokenStream2,
) -> TokenStream2 {
    let sym = unique_symbol(name);
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        const #const_ident: () = {
            // The library's rule, which the macros' own checks mirror.
            ::core::assert!(
                #krate::valid_name(#name.as_bytes()),
                "the vmmcall macros accepted a name vmmcall::valid_name refuses"
            );

            #items

            #[#krate::__private::linkme::distributed_slice(#krate::HANDLERS)]
            #[linkme(crate = #krate::__private::linkme)]
            static __VMMCALL_HANDLER: #krate::Handler = #handler;

            // Two hypercalls with one name define this symbol twice, and the
            // build fails: "symbol already defined" (one crate) or
            // "duplicate symbol" (linker, two crates).
            #[used]
            #[unsafe(export_name = #sym)]
            static __VMMCALL_UNIQUE_NAME: u8 = 0;
        };
    }
}
