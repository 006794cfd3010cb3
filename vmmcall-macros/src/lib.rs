//! The `#[vmmcall]` attribute macro. Use it through the `vmmcall` crate.
//!
//! `#[vmmcall("name")]` / `#[vmmcall("name", user)]` on a plain function
//! keeps the function as written and adds, in an anonymous `const` block:
//! - a thunk that converts the argument registers with `FromReg` and the
//!   result with `IntoRet`;
//! - a `vmmcall::Handler` in the `vmmcall::HANDLERS` linker-section slice;
//! - a `#[used]` byte with an exported symbol derived from the name, so two
//!   handlers with one name fail to link ("duplicate symbol").
//!
//! Every misuse is a `syn::Error` on the offending token; several are
//! reported together.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, ReturnType, Token, Type};

/// Longest hypercall name (ABI v1).
const MAX_NAME_LEN: usize = 255;
/// Reserved for function 0.
const RESERVED_NAME: &str = "get_vmmcall_number";
/// Argument registers in order.
const ARG_REGS: [&str; 5] = ["rbx", "rcx", "rdx", "rsi", "rdi"];

/// Register a function as a hypercall. See the `vmmcall` crate docs.
#[proc_macro_attribute]
pub fn vmmcall(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let item2 = TokenStream2::from(item.clone());
    match expand(attr, item2.clone()) {
        Ok(ts) => ts.into(),
        Err(e) => {
            // Keep the function so that its own body is still type-checked
            // and no "cannot find function" errors pile up.
            let err = e.to_compile_error();
            quote!(#err #item2).into()
        }
    }
}

struct Args {
    name: LitStr,
    user: bool,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "expected a hypercall name: #[vmmcall(\"name\")]",
            ));
        }
        let name: LitStr = match input.parse::<syn::Lit>()? {
            syn::Lit::Str(s) => s,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "the hypercall name must be a string literal",
                ))
            }
        };
        let mut user = false;
        let mut errors: Option<syn::Error> = None;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let opt: Ident = input.parse()?;
            if opt == "user" {
                if user {
                    combine(&mut errors, syn::Error::new(opt.span(), "`user` given twice"));
                }
                user = true;
            } else {
                combine(
                    &mut errors,
                    syn::Error::new(
                        opt.span(),
                        format!("unknown option `{opt}`; the only option is `user`"),
                    ),
                );
            }
        }
        match errors {
            Some(e) => Err(e),
            None => Ok(Args { name, user }),
        }
    }
}

fn combine(acc: &mut Option<syn::Error>, e: syn::Error) {
    match acc {
        Some(a) => a.combine(e),
        None => *acc = Some(e),
    }
}

fn check_name(name: &LitStr, errors: &mut Option<syn::Error>) {
    let value = name.value();
    let msg = if value.is_empty() {
        Some("the hypercall name must not be empty".to_string())
    } else if value.len() > MAX_NAME_LEN {
        Some(format!(
            "the hypercall name is {} bytes; the limit is {MAX_NAME_LEN}",
            value.len()
        ))
    } else if value.contains('\0') {
        Some("the hypercall name must not contain NUL".to_string())
    } else if value == RESERVED_NAME {
        Some(format!("`{RESERVED_NAME}` is reserved for function 0"))
    } else {
        None
    };
    if let Some(m) = msg {
        combine(errors, syn::Error::new(name.span(), m));
    }
}

/// The exported symbol that makes duplicate names collide at link time.
/// Injective: `[A-Za-z0-9]` kept, `_` doubled, every other byte `_XX`.
fn unique_symbol(name: &str) -> String {
    let mut s = String::from("__vmmcall_duplicate_hypercall_name__");
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => s.push(b as char),
            b'_' => s.push_str("__"),
            _ => s.push_str(&format!("_{b:02X}")),
        }
    }
    s
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args: Args = syn::parse2(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let mut errors: Option<syn::Error> = None;
    check_name(&args.name, &mut errors);

    let sig = &func.sig;
    if let Some(t) = &sig.constness {
        combine(&mut errors, syn::Error::new(t.span(), "a hypercall cannot be `const`"));
    }
    if let Some(t) = &sig.asyncness {
        combine(&mut errors, syn::Error::new(t.span(), "a hypercall cannot be `async`"));
    }
    if let Some(t) = &sig.unsafety {
        combine(&mut errors, syn::Error::new(t.span(), "a hypercall cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        combine(&mut errors, syn::Error::new(abi.span(), "a hypercall cannot have an `extern` ABI"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        combine(
            &mut errors,
            syn::Error::new(sig.generics.span(), "a hypercall cannot be generic"),
        );
    }
    if let Some(v) = &sig.variadic {
        combine(&mut errors, syn::Error::new(v.span(), "a hypercall cannot be variadic"));
    }

    // Parameters: optional `&mut` context first, then register parameters.
    let mut has_ctx = false;
    let mut reg_types: Vec<&Type> = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => combine(
                &mut errors,
                syn::Error::new(r.span(), "a hypercall cannot be a method (no `self`)"),
            ),
            FnArg::Typed(pt) => match &*pt.ty {
                Type::Reference(r) if i == 0 && r.mutability.is_some() => has_ctx = true,
                Type::Reference(r) => combine(
                    &mut errors,
                    syn::Error::new(
                        r.span(),
                        "only the first parameter may be a reference, and it must be `&mut Caller`",
                    ),
                ),
                ty => {
                    if reg_types.len() == ARG_REGS.len() {
                        combine(
                            &mut errors,
                            syn::Error::new(
                                pt.span(),
                                "too many register parameters: a hypercall takes at most five (RBX, RCX, RDX, RSI, RDI)",
                            ),
                        );
                    }
                    reg_types.push(ty);
                }
            },
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some(bad) = signed_return(ty) {
            combine(
                &mut errors,
                syn::Error::new(
                    bad.span(),
                    "a hypercall cannot return a signed integer: negative results would read as -errno; return an unsigned type or Result<_, vmmcall::Error>",
                ),
            );
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }

    let fn_name = &sig.ident;
    let name = &args.name;
    let user = args.user;
    let sym = unique_symbol(&name.value());
    let conv: Vec<TokenStream2> = reg_types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let idx = syn::Index::from(i);
            quote_spanned! {ty.span()=>
                <#ty as ::vmmcall::FromReg>::from_reg(__args[#idx])?
            }
        })
        .collect();
    let ctx = if has_ctx { quote!(__caller,) } else { quote!() };
    let args_binding = if reg_types.is_empty() {
        quote!()
    } else {
        quote!(let __args = __caller.args();)
    };
    let ret_span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.ident.span(),
    };
    let call = quote_spanned! {ret_span=>
        ::vmmcall::IntoRet::into_ret(#fn_name(#ctx #(#conv),*))
    };

    Ok(quote! {
        #func

        #[doc(hidden)]
        const _: () = {
            #[allow(clippy::indexing_slicing, unused_variables)]
            fn __vmmcall_thunk(
                __caller: &mut ::vmmcall::Caller<'_>,
            ) -> ::core::result::Result<u64, ::vmmcall::Error> {
                #args_binding
                #call
            }

            #[::vmmcall::__private::linkme::distributed_slice(::vmmcall::HANDLERS)]
            #[linkme(crate = ::vmmcall::__private::linkme)]
            static __VMMCALL_HANDLER: ::vmmcall::Handler =
                ::vmmcall::Handler::new(#name, #user, __vmmcall_thunk);

            // Two hypercalls with one name define this symbol twice: the
            // link fails with "duplicate symbol".
            #[used]
            #[unsafe(export_name = #sym)]
            static __VMMCALL_UNIQUE_NAME: u8 = 0;
        };
    })
}

/// The signed-integer type a return type names, if any (`i64`,
/// `Result<i32, _>`, ...).
fn signed_return(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let id = last.ident.to_string();
    if matches!(id.as_str(), "i8" | "i16" | "i32" | "i64" | "i128" | "isize") && p.qself.is_none() {
        return Some(ty);
    }
    if id == "Result" {
        if let syn::PathArguments::AngleBracketed(a) = &last.arguments {
            if let Some(syn::GenericArgument::Type(t)) = a.args.first() {
                return signed_return(t);
            }
        }
    }
    None
}
