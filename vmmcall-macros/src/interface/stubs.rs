//! The guest side of an interface: one typed stub per hypercall, always
//! inlined, that looks its hypercall up once by name and signature digest
//! (`guest_sdk::CallSite::typed`) and passes integers and buffers in the
//! declared registers.

use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};

use super::model::{Call, Kind};
use crate::abi::ARG_REGS;

/// The guest stub of one hypercall.
pub(super) fn stub(call: &Call) -> TokenStream2 {
    let gs = quote!(::guest_sdk);
    let ident = &call.ident;
    let name = &call.name;
    let docs = &call.docs;
    let sig_ident = ident.clone();
    let sig_doc = call.signature_doc();
    let ret = call.ret.tokens();
    let guest_params = call.params.iter().map(|p| {
        let id = &p.ident;
        let ty = &p.ty;
        quote!(#id: #ty)
    });
    let mut slots = Vec::new();
    let mut lends = Vec::new();
    for (i, p) in call.params.iter().enumerate() {
        let id = &p.ident;
        let r = format_ident!("__vmmcall_r{i}");
        match p.kind {
            Kind::In | Kind::Out => {
                let l = format_ident!("__vmmcall_l{i}");
                let f = if p.kind == Kind::In {
                    quote!(lend)
                } else {
                    quote!(lend_mut)
                };
                lends.push(quote!(let (#r, #l) = #gs::interface::#f(#id);));
                slots.push(quote!(#r));
                slots.push(quote!(#l));
            }
            _ => {
                lends.push(quote!(let #r = #gs::IntoArg::into_arg(#id);));
                slots.push(quote!(#r));
            }
        }
    }
    while slots.len() < ARG_REGS.len() {
        slots.push(quote!(#gs::Arg::NONE));
    }
    let name_nul = format!("{name}\0");
    quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #sig_doc]
        // Always inlined, like the `call!` expansion it stands for: a
        // cached call is then a few instructions around the exit.
        #[inline(always)]
        pub fn #ident(#(#guest_params),*) -> ::core::result::Result<#ret, #gs::Error> {
            static __VMMCALL_SITE: #gs::CallSite =
                #gs::CallSite::typed(#name_nul, signatures::#sig_ident);
            #(#lends)*
            // SAFETY: the registers hold integers, and buffers as
            // (address, length) of references of the declared
            // direction, borrowed until the VMM returns (the `Arg`s
            // live through the call). By the ABI's contract for
            // declared buffers (docs/ABI.md, "Interfaces") the VMM
            // never writes an `&[u8]` one and writes an `&mut [u8]`
            // one within its length only; the typed lookup makes sure
            // its handler was declared with this very signature.
            let __vmmcall_raw = unsafe { __VMMCALL_SITE.call_args([#(#slots),*]) }?;
            <#ret as #gs::interface::FromRet>::from_ret(__vmmcall_raw)
        }
    }
}
