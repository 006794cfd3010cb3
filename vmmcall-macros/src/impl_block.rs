//! `#[vmmcall]` on an interface impl (`impl my_api::Handlers for MyVmm`):
//! the impl as written, plus one registration per handler with the
//! `Handler` the interface declaration built.

use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::ext::IdentExt;
use syn::Ident;

use crate::attr::parse_impl_args;
use crate::errors::Errors;
use crate::interface::handler_const;
use crate::names::unique_symbol;
use crate::registration::registration;

/// `#[vmmcall]` (or `#[vmmcall(crate = PATH)]`) on `impl Trait for Type`,
/// where `Trait` is an interface's `Handlers` (`interface!`): the impl as
/// written, and for each of its functions the registration that
/// `#[vmmcall("name")]` makes, with the `Handler` the interface built
/// (`<Type as Trait>::__VMMCALL_HANDLER_name`: its name, `user`, thunk and
/// signature digest). The trait's own checks make a missing handler or a
/// signature that differs from the declaration a compile error.
pub(crate) fn expand(attr: TokenStream2, imp: syn::ItemImpl) -> syn::Result<TokenStream2> {
    let mut errors = Errors::default();
    let krate = parse_impl_args(attr, &mut errors)?;
    if let Some(t) = &imp.unsafety {
        errors.spanned(t, "an interface impl cannot be `unsafe`");
    }
    if !imp.generics.params.is_empty() {
        errors.spanned(
            &imp.generics,
            "an interface impl cannot be generic: its handlers are registered for one type",
        );
    }
    if let Some((Some(bang), _, _)) = &imp.trait_ {
        errors.spanned(bang, "a negative impl registers nothing");
    }
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::vmmcall));
    let Some((_, trait_path, _)) = &imp.trait_ else {
        return Err(syn::Error::new_spanned(
            &imp.self_ty,
            "#[vmmcall] on an impl needs an interface trait: `impl demo::Handlers for MyVmm`",
        ));
    };
    let self_ty = &imp.self_ty;
    let mut registrations = Vec::new();
    for item in &imp.items {
        let f = match item {
            syn::ImplItem::Fn(f) => f,
            // Anything else could stand in for a handler without being
            // registered (a macro), or replace the `Handler` the
            // declaration built (its hidden const): refused.
            other => {
                errors.spanned(
                    other,
                    "an interface impl holds only the handlers, one `fn` per declared hypercall: no consts, types or macros",
                );
                continue;
            }
        };
        let method = &f.sig.ident;
        let name = method.unraw().to_string();
        let registration_ident = Ident::new(&unique_symbol(&name), method.span());
        let hconst = handler_const(method);
        let cfgs: Vec<&syn::Attribute> = f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .collect();
        registrations.push(registration(
            &krate,
            &registration_ident,
            &name,
            &cfgs,
            quote!(),
            quote!(<#self_ty as #trait_path>::#hconst),
        ));
    }
    errors.finish()?;
    Ok(quote! {
        #imp
        #(#registrations)*
    })
}
