//! The guest side of an interface: one typed stub per hypercall, always
//! inlined, that looks its hypercall up once by name and signature digest
//! (`guest_sdk::CallSite::typed`) and passes integers and buffers in the
//! declared registers; and one entry maker per hypercall, in the
//! `entries` module, that puts the same arguments in a typed
//! `guest_sdk::Entry` of a batch.

use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};

use super::model::{Call, Kind};
use crate::abi::ARG_REGS;

/// The arguments of `call` as the stub passes them: the statements that
/// make them (buffers lent, integers converted) and the five registers.
fn arguments(call: &Call) -> (Vec<TokenStream2>, Vec<TokenStream2>) {
    let gs = quote!(::guest_sdk);
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
    (lends, slots)
}

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
    let (lends, slots) = arguments(call);
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

/// The entry maker of one hypercall, for the `entries` module: the stub's
/// arguments in a `guest_sdk::Entry` whose buffers stay borrowed for
/// `'a` (as long as the batch that holds it).
pub(super) fn entry(call: &Call) -> TokenStream2 {
    let gs = quote!(::guest_sdk);
    let ident = &call.ident;
    let name = &call.name;
    let sig_ident = ident.clone();
    let sig_doc = call.signature_doc();
    let ret = call.ret.tokens();
    let doc = format!(
        "An entry of a `guest_sdk::Batch` calling `{name}` with these arguments, \
         its result typed as the stub's (`super::{ident}`). Looks the hypercall up \
         by name and signature on first use, as the stub does."
    );
    let guest_params = call.params.iter().map(|p| {
        let id = &p.ident;
        match p.kind {
            Kind::In => quote!(#id: &'a [u8]),
            Kind::Out => quote!(#id: &'a mut [u8]),
            _ => {
                let ty = &p.ty;
                quote!(#id: #ty)
            }
        }
    });
    let (lends, slots) = arguments(call);
    let name_nul = format!("{name}\0");
    quote! {
        #[doc = #doc]
        #[doc = ""]
        #[doc = #sig_doc]
        #[inline]
        pub fn #ident<'a>(#(#guest_params),*)
            -> ::core::result::Result<#gs::Entry<'a, #ret>, #gs::Error>
        {
            static __VMMCALL_SITE: #gs::CallSite =
                #gs::CallSite::typed(#name_nul, super::signatures::#sig_ident);
            let __vmmcall_number = __VMMCALL_SITE.number()?;
            #(#lends)*
            // SAFETY: the number is the typed lookup's for this very
            // declaration, whose result is the entry's type, and the
            // arguments are what the stub passes, buffers borrowed for
            // 'a (see the stub's SAFETY, and guest_sdk::Batch).
            ::core::result::Result::Ok(unsafe {
                #gs::Entry::__new(__vmmcall_number, [#(#slots),*])
            })
        }
    }
}
