//! The VMM side of an interface: `trait Handlers`, with one associated
//! function per hypercall and a hidden `const` holding its
//! `vmmcall::Handler` (which `#[vmmcall] impl` registers), and the generic
//! thunks that convert the registers to the declared parameters.

use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::Ident;

use super::model::{Call, Kind};
use crate::registration::bind_registers;

/// The name of the hidden trait constant holding a hypercall's `Handler`.
pub(crate) fn handler_const(method: &Ident) -> Ident {
    Ident::new(
        &format!("__VMMCALL_HANDLER_{}", method.unraw()),
        method.span(),
    )
}

/// For one hypercall: its two items of `trait Handlers` (the function and
/// the hidden `Handler` const), and its thunk.
pub(super) fn handler_items(call: &Call) -> (Vec<TokenStream2>, TokenStream2) {
    let vm = quote!(::vmmcall);
    let ident = &call.ident;
    let name = &call.name;
    let user = call.user;
    let digest = call.digest();
    let docs = &call.docs;
    let sig_doc = call.signature_doc();
    let mut trait_items = Vec::new();
    let vmm_params = call.params.iter().map(|p| {
        let id = &p.ident;
        let ty = match p.kind {
            Kind::In => quote_spanned!(p.ty.span()=> #vm::GuestBuf),
            Kind::Out => quote_spanned!(p.ty.span()=> #vm::GuestBufMut),
            _ => {
                let ty = &p.ty;
                quote!(#ty)
            }
        };
        quote!(#id: #ty)
    });
    let ret = call.ret.tokens();
    trait_items.push(quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #sig_doc]
        fn #ident(cx: &mut #vm::Caller<'_>, #(#vmm_params),*) -> ::core::result::Result<#ret, #vm::Error>;
    });
    let thunk = format_ident!("__vmmcall_thunk_{}", ident.unraw());
    let hconst = handler_const(ident);
    trait_items.push(quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, clippy::declare_interior_mutable_const)]
        const #hconst: #vm::Handler = #vm::Handler::typed(#name, #user, #thunk::<Self>, #digest);
    });
    // Registers to parameters, in ABI order.
    let mut reg = 0usize;
    let mut converts = Vec::new();
    let mut names = Vec::new();
    for (i, p) in call.params.iter().enumerate() {
        let local = format_ident!("__vmmcall_p{i}");
        let a = format_ident!("__vmmcall_a{reg}");
        match p.kind {
            Kind::In | Kind::Out => {
                let l = format_ident!("__vmmcall_a{}", reg + 1);
                let ty = if p.kind == Kind::In {
                    quote!(#vm::GuestBuf)
                } else {
                    quote!(#vm::GuestBufMut)
                };
                converts.push(quote!(let #local = #ty::new(#a, #l);));
            }
            _ => {
                let ty = &p.ty;
                converts.push(quote!(let #local = <#ty as #vm::FromReg>::from_reg(#a)?;));
            }
        }
        reg += p.kind.registers();
        names.push(local);
    }
    let (binding, _) = bind_registers(&format_ident!("__vmmcall_cx"), reg);
    let thunk = quote! {
        #[doc(hidden)]
        pub fn #thunk<T: Handlers + ?Sized>(
            __vmmcall_cx: &mut #vm::Caller<'_>,
        ) -> ::core::result::Result<u64, #vm::Error> {
            #binding
            #(#converts)*
            #vm::IntoRet::into_ret(<T as Handlers>::#ident(__vmmcall_cx, #(#names),*))
        }
    };
    (trait_items, thunk)
}
