//! `interface!`: one declaration of a set of hypercalls, expanded into the
//! VMM's trait, the guest's typed stubs, the signature digests and a C
//! header (see `vmmcall::interface!` for the user-facing description).
//!
//! The declaration is parsed into [`Decl`] (every misuse is a `syn::Error`
//! on its token, all reported together), then [`generate`] writes:
//! - `trait Handlers` with one associated function per hypercall and, per
//!   hypercall, a hidden associated `const` holding its `vmmcall::Handler`
//!   (name, `user`, a generic thunk, the digest), which `#[vmmcall] impl`
//!   puts in the linker-section slice; all inside `vmmcall::__if_registry!`
//!   so that it exists only where vmmcall has its registry (the VMM);
//! - the thunks (registers to typed parameters, as `#[vmmcall]`'s do);
//! - the guest stubs (`guest_sdk::CallSite::typed`);
//! - `mod signatures`, `DECLARATIONS` and `C_HEADER`.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, ReturnType, Token, TraitItem, Type, Visibility};

use crate::{name_problem, Errors, ARG_REGS};

/// The version tag at the start of every canonical signature text
/// (`vmmcall::abi::signature_digest`).
const CANONICAL_PREFIX: &str = "vmmcall-signature-v1";

/// An integer parameter type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Int {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
}

impl Int {
    const ALL: [(Int, &'static str); 8] = [
        (Int::U8, "u8"),
        (Int::U16, "u16"),
        (Int::U32, "u32"),
        (Int::U64, "u64"),
        (Int::I8, "i8"),
        (Int::I16, "i16"),
        (Int::I32, "i32"),
        (Int::I64, "i64"),
    ];

    fn from_name(s: &str) -> Option<Int> {
        Int::ALL.iter().find(|(_, n)| *n == s).map(|(i, _)| *i)
    }

    fn rust(self) -> &'static str {
        Int::ALL
            .iter()
            .find(|(i, _)| *i == self)
            .map_or("u64", |(_, n)| n)
    }

    fn c(self) -> &'static str {
        match self {
            Int::U8 => "unsigned char",
            Int::U16 => "unsigned short",
            Int::U32 => "vmmcall_u32",
            Int::U64 => "vmmcall_u64",
            Int::I8 => "signed char",
            Int::I16 => "short",
            Int::I32 => "int",
            Int::I64 => "long long",
        }
    }

    fn signed(self) -> bool {
        matches!(self, Int::I8 | Int::I16 | Int::I32 | Int::I64)
    }
}

/// What a parameter is, as the ABI sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Int(Int),
    Bool,
    /// `&[u8]`: the VMM reads it (address, length).
    In,
    /// `&mut [u8]`: the VMM writes it (address, length).
    Out,
}

impl Kind {
    fn registers(self) -> usize {
        match self {
            Kind::In | Kind::Out => 2,
            _ => 1,
        }
    }

    fn canonical(self) -> &'static str {
        match self {
            Kind::Int(i) => i.rust(),
            Kind::Bool => "bool",
            Kind::In => "in",
            Kind::Out => "out",
        }
    }
}

/// A declared result type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ret {
    Unit,
    Bool,
    Int(Int),
}

impl Ret {
    fn canonical(self) -> &'static str {
        match self {
            Ret::Unit => "()",
            Ret::Bool => "bool",
            Ret::Int(i) => i.rust(),
        }
    }

    fn tokens(self) -> TokenStream2 {
        match self {
            Ret::Unit => quote!(()),
            Ret::Bool => quote!(bool),
            Ret::Int(i) => {
                let id = Ident::new(i.rust(), Span::call_site());
                quote!(#id)
            }
        }
    }
}

struct Param {
    ident: Ident,
    kind: Kind,
    /// The declared type, for spans.
    ty: Type,
}

struct Call {
    docs: Vec<Attribute>,
    user: bool,
    ident: Ident,
    /// The hypercall name: the function's name without `r#`.
    name: String,
    params: Vec<Param>,
    ret: Ret,
}

impl Call {
    fn canonical(&self) -> String {
        let kinds: Vec<&str> = self.params.iter().map(|p| p.kind.canonical()).collect();
        format!(
            "{CANONICAL_PREFIX} {}({})->{} {}",
            self.name,
            kinds.join(","),
            self.ret.canonical(),
            if self.user { "user" } else { "kernel" }
        )
    }

    fn digest(&self) -> u64 {
        digest(self.canonical().as_bytes())
    }
}

/// FNV-1a 64 with 0 mapped to 1: `vmmcall::abi::signature_digest`, which
/// the expansion asserts equal at compile time.
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if h == 0 {
        1
    } else {
        h
    }
}

/// The parsed declaration.
struct Decl {
    attrs: Vec<Attribute>,
    vis: Visibility,
    ident: Ident,
    calls: Vec<Call>,
    errors: Errors,
}

const USAGE: &str =
    "write `vmmcall::interface! { pub mod NAME { #[user] fn hello(arg1: u64) -> u64; ... } }`";

impl Parse for Decl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        if !input.peek(Token![mod]) {
            return Err(input.error(format!(
                "an interface is declared as a module of hypercalls: {USAGE}"
            )));
        }
        input.parse::<Token![mod]>()?;
        let ident: Ident = input.parse()?;
        let mut errors = Errors::default();
        if ident.unraw() == "vmmcall" {
            errors.spanned(
                &ident,
                "an interface cannot be named `vmmcall`: its C functions (`vmmcall_NAME`) would clash with vmmcall.h",
            );
        }
        let content;
        syn::braced!(content in input);
        for a in &attrs {
            if !a.path().is_ident("doc") {
                errors.spanned(a, "only doc comments may be put on an interface module");
            }
        }
        let mut calls: Vec<Call> = Vec::new();
        while !content.is_empty() {
            let item: TraitItem = content.parse()?;
            let TraitItem::Fn(f) = item else {
                errors.spanned(
                    &item,
                    "an interface holds only hypercall declarations: `fn name(params) -> result;`",
                );
                continue;
            };
            if let Some(body) = &f.default {
                errors.spanned(
                    body,
                    "a hypercall is declared without a body (end it with `;`): the VMM implements it",
                );
            }
            if let Some(call) = parse_call(f.attrs, &f.sig, &mut errors) {
                let upper = call.name.to_ascii_uppercase();
                if let Some(first) = calls
                    .iter()
                    .find(|c| c.name != call.name && c.name.to_ascii_uppercase() == upper)
                {
                    let mut e = syn::Error::new(
                        call.ident.span(),
                        format!(
                            "`{}` and `{}` differ only in case: the C header would define the same {upper}_SIGNATURE twice",
                            first.name, call.name
                        ),
                    );
                    e.combine(syn::Error::new(first.ident.span(), "the other one"));
                    errors.push(e);
                } else if let Some(first) = calls.iter().find(|c| c.name == call.name) {
                    let mut e = syn::Error::new(
                        call.ident.span(),
                        format!("the interface declares `{}` twice", call.name),
                    );
                    e.combine(syn::Error::new(first.ident.span(), "first declared here"));
                    errors.push(e);
                } else {
                    calls.push(call);
                }
            }
        }
        if !input.is_empty() {
            errors.at(input.span(), "one interface module per `interface!`");
        }
        Ok(Decl {
            attrs,
            vis,
            ident,
            calls,
            errors,
        })
    }
}

/// One declaration; `None` if it cannot be used (errors are in `errors`).
fn parse_call(attrs: Vec<Attribute>, sig: &syn::Signature, errors: &mut Errors) -> Option<Call> {
    let mut ok = true;
    let mut bad = |errors: &mut Errors, tokens: &dyn quote::ToTokens, msg: &str| {
        errors.spanned(tokens.to_token_stream(), msg);
        ok = false;
    };
    let mut user = false;
    let mut docs = Vec::new();
    for a in attrs {
        if a.path().is_ident("doc") {
            docs.push(a);
        } else if a.path().is_ident("user") {
            if !matches!(a.meta, syn::Meta::Path(_)) {
                bad(errors, &a, "`#[user]` takes no value");
            } else if user {
                bad(errors, &a, "`#[user]` is given twice");
            }
            user = true;
        } else {
            bad(
                errors,
                &a,
                "the attributes of a declared hypercall are doc comments and `#[user]` (callable from any CPL)",
            );
        }
    }
    if let Some(t) = &sig.constness {
        bad(errors, t, "a hypercall cannot be `const`");
    }
    if let Some(t) = &sig.asyncness {
        bad(errors, t, "a hypercall cannot be `async`");
    }
    if let Some(t) = &sig.unsafety {
        bad(errors, t, "a declared hypercall cannot be `unsafe`: its stubs are safe because the declaration says what each register is");
    }
    if let Some(t) = &sig.abi {
        bad(
            errors,
            t,
            "a hypercall cannot have an `extern` ABI: the register ABI is generated",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        bad(errors, &sig.generics, "a hypercall cannot be generic");
    }
    if let Some(v) = &sig.variadic {
        bad(errors, v, "a hypercall cannot be variadic");
    }
    let name = sig.ident.unraw().to_string();
    if let Some(msg) = name_problem(&name) {
        bad(errors, &sig.ident, &msg);
    } else if name.starts_with("__vmmcall") {
        bad(
            errors,
            &sig.ident,
            "names starting with `__vmmcall` are reserved for the generated code",
        );
    }

    let mut params = Vec::new();
    let mut registers = 0usize;
    for input in &sig.inputs {
        let pt = match input {
            FnArg::Receiver(r) => {
                bad(errors, r, "a hypercall takes no `self`");
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        if let Some(a) = pt.attrs.first() {
            bad(
                errors,
                a,
                "a declared parameter takes no attributes: each one is a register on both sides",
            );
            continue;
        }
        let ident = match &*pt.pat {
            syn::Pat::Ident(p)
                if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none() =>
            {
                p.ident.clone()
            }
            other => {
                bad(
                    errors,
                    other,
                    "a declared parameter is a plain name: `name: type`",
                );
                continue;
            }
        };
        if ident.unraw().to_string().starts_with("__vmmcall") {
            bad(
                errors,
                &ident,
                "names starting with `__vmmcall` are reserved for the generated code",
            );
            continue;
        }
        match param_kind(&pt.ty) {
            Ok(kind) => {
                registers = registers.saturating_add(kind.registers());
                params.push(Param {
                    ident,
                    kind,
                    ty: (*pt.ty).clone(),
                });
            }
            Err(msg) => bad(errors, &pt.ty, &msg),
        }
    }
    if registers > ARG_REGS.len() {
        bad(
            errors,
            &sig.inputs,
            &format!(
                "these parameters need {registers} registers; a hypercall has five ({}): integers and bool take one, a buffer two (address, length)",
                ARG_REGS.join(", ")
            ),
        );
    }
    let ret = match &sig.output {
        ReturnType::Default => Some(Ret::Unit),
        ReturnType::Type(_, ty) => match ret_kind(ty) {
            Ok(r) => Some(r),
            Err(msg) => {
                bad(errors, ty, &msg);
                None
            }
        },
    };
    match (ok, ret) {
        (true, Some(ret)) => Some(Call {
            docs,
            user,
            ident: sig.ident.clone(),
            name,
            params,
            ret,
        }),
        _ => None,
    }
}

/// The single identifier of a plain type path (`u64`), if it is one.
fn plain_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() && p.path.leading_colon.is_none() => {
            let [seg] = p.path.segments.iter().collect::<Vec<_>>()[..] else {
                return None;
            };
            seg.arguments.is_empty().then(|| seg.ident.to_string())
        }
        Type::Paren(p) => plain_ident(&p.elem),
        Type::Group(g) => plain_ident(&g.elem),
        _ => None,
    }
}

const PARAM_TYPES: &str = "a declared parameter is u8, u16, u32, u64, i8, i16, i32, i64, bool, `&[u8]` (a buffer the VMM reads) or `&mut [u8]` (a buffer the VMM writes)";

fn param_kind(ty: &Type) -> Result<Kind, String> {
    if let Type::Reference(r) = ty {
        if r.lifetime.is_some() {
            return Err("a declared buffer takes no lifetime: write `&[u8]` or `&mut [u8]`".into());
        }
        let is_bytes =
            matches!(&*r.elem, Type::Slice(s) if plain_ident(&s.elem).as_deref() == Some("u8"));
        return match (is_bytes, r.mutability.is_some()) {
            (true, false) => Ok(Kind::In),
            (true, true) => Ok(Kind::Out),
            (false, _) => Err(format!(
                "a buffer is declared as bytes, `&[u8]` or `&mut [u8]`; {PARAM_TYPES}"
            )),
        };
    }
    match plain_ident(ty).as_deref() {
        Some("bool") => Ok(Kind::Bool),
        Some("usize") | Some("isize") => Err(
            "declare a fixed width (u64 or i64): the interface is also a C header, where `usize` has no one type".into(),
        ),
        Some(s) => Int::from_name(s)
            .map(Kind::Int)
            .ok_or_else(|| PARAM_TYPES.to_string()),
        None => Err(PARAM_TYPES.to_string()),
    }
}

fn ret_kind(ty: &Type) -> Result<Ret, String> {
    if matches!(ty, Type::Tuple(t) if t.elems.is_empty()) {
        return Ok(Ret::Unit);
    }
    match plain_ident(ty).as_deref() {
        Some("bool") => Ok(Ret::Bool),
        Some(s) => match Int::from_name(s) {
            Some(i) if i.signed() => Err("a hypercall cannot return a signed integer: a negative result would read as -errno in RAX; return an unsigned type".into()),
            Some(i) => Ok(Ret::Int(i)),
            None => Err(RET_TYPES.into()),
        },
        None => Err(RET_TYPES.into()),
    }
}

const RET_TYPES: &str = "a declared result is (), bool, u8, u16, u32 or u64 (errors come back as Result's Err on both sides)";

/// Expand `interface! { ... }`.
pub(crate) fn expand(input: TokenStream2) -> TokenStream2 {
    match syn::parse2::<Decl>(input) {
        Ok(decl) => {
            let Decl {
                attrs,
                vis,
                ident,
                calls,
                errors,
            } = decl;
            match errors.finish() {
                Ok(()) => generate(&attrs, &vis, &ident, &calls),
                Err(e) => e.to_compile_error(),
            }
        }
        Err(e) => e.to_compile_error(),
    }
}

/// The name of the hidden trait constant holding a hypercall's `Handler`.
pub(crate) fn handler_const(method: &Ident) -> Ident {
    Ident::new(
        &format!("__VMMCALL_HANDLER_{}", method.unraw()),
        method.span(),
    )
}

fn generate(attrs: &[Attribute], vis: &Visibility, module: &Ident, calls: &[Call]) -> TokenStream2 {
    let vm = quote!(::vmmcall);
    let gs = quote!(::guest_sdk);
    let mut trait_items = Vec::new();
    let mut thunks = Vec::new();
    let mut stubs = Vec::new();
    let mut sig_consts = Vec::new();
    let mut declarations = Vec::new();
    let mut asserts = Vec::new();

    for call in calls {
        let ident = &call.ident;
        let name = &call.name;
        let user = call.user;
        let canonical = call.canonical();
        let digest = call.digest();
        let docs = &call.docs;
        let sig_ident = ident.clone();
        let sig_doc = format!(
            "Declared as `{canonical}`, signature digest `{digest:#018x}`{}.",
            if user {
                "; callable from any CPL"
            } else {
                "; CPL 0 only (`-EPERM` elsewhere)"
            }
        );
        sig_consts.push(quote! {
            #[doc = #sig_doc]
            #[allow(non_upper_case_globals)]
            pub const #sig_ident: u64 = #digest;
        });
        asserts.push(quote! {
            ::core::assert!(
                #vm::abi::signature_digest(#canonical.as_bytes()) == #digest,
                "vmmcall::interface! and vmmcall::abi::signature_digest disagree"
            );
        });
        declarations.push(quote! {
            #vm::abi::Declaration {
                name: #name,
                user: #user,
                canonical: #canonical,
                signature: #digest,
            }
        });

        // VMM side.
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
        let (binding, _) = crate::bind_registers(&format_ident!("__vmmcall_cx"), reg);
        thunks.push(quote! {
            #[doc(hidden)]
            pub fn #thunk<T: Handlers + ?Sized>(
                __vmmcall_cx: &mut #vm::Caller<'_>,
            ) -> ::core::result::Result<u64, #vm::Error> {
                #binding
                #(#converts)*
                #vm::IntoRet::into_ret(<T as Handlers>::#ident(__vmmcall_cx, #(#names),*))
            }
        });

        // Guest side.
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
        stubs.push(quote! {
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
        });
    }

    let header = c_header(module, calls);
    let trait_doc = format!(
        "The VMM side of `{module}`: implement it and register every handler with `#[vmmcall] impl {module}::Handlers for YourType {{ ... }}`."
    );
    let module_doc = "Generated by `vmmcall::interface!`: the guest stubs below, `Handlers` for the VMM (in a VMM build), [`signatures`], [`DECLARATIONS`] and [`C_HEADER`].";
    quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #module_doc]
        #vis mod #module {
            #vm::__if_registry! {
                #[doc = #trait_doc]
                pub trait Handlers {
                    #(#trait_items)*
                }

                #(#thunks)*
            }

            #(#stubs)*

            /// The signature digest of each hypercall
            /// (`vmmcall::abi::signature_digest` of its canonical text).
            pub mod signatures {
                #(#sig_consts)*
            }

            /// Every hypercall of this interface, as declared.
            pub const DECLARATIONS: &[#vm::abi::Declaration] = &[#(#declarations),*];

            /// The C header for this interface: one typed inline function
            /// per hypercall, on top of `vmmcall.h`.
            pub const C_HEADER: &str = #header;

            const _: () = {
                #(#asserts)*
            };
        }
    }
}

/// The C header text for `calls`.
///
/// Every identifier the header defines inside a function is in its own
/// namespace (`vmmcall_`): parameters are `vmmcall_p_NAME` (a buffer's
/// length `vmmcall_len_NAME`), the locals and the result pointer
/// `vmmcall_*`. A Rust name therefore never meets a C keyword, a macro of
/// the including program (`errno`, `stdin`) or another parameter's length;
/// the Rust signature is in the comment above each function.
fn c_header(module: &Ident, calls: &[Call]) -> String {
    use std::fmt::Write as _;
    let m = module.unraw().to_string();
    let upper = m.to_ascii_uppercase();
    let guard = format!("VMMCALL_INTERFACE_{upper}_H");
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "/* SPDX-License-Identifier: MIT OR Apache-2.0 */\n\
         /*\n \
         * {m}.h: the `{m}` hypercall interface, one typed inline function per\n \
         * hypercall, on top of vmmcall.h.\n \
         *\n \
         * GENERATED by vmmcall::interface! from the declaration of `{m}`: do not\n \
         * edit. Each function looks its hypercall up once with\n \
         * vmmcall_lookup_typed and the signature digest below, then calls it;\n \
         * it returns 0 or a positive errno (VMMCALL_EPROTO: the VMM's handler\n \
         * was declared with another signature, see docs/ABI.md, \"Version\n \
         * skew\"). Buffers are prefaulted before the call. C and C++.\n \
         */\n\
         #ifndef {guard}\n\
         #define {guard}\n\
         \n\
         #include \"vmmcall.h\"\n\
         \n\
         #ifdef __cplusplus\n\
         extern \"C\" {{\n\
         #endif\n\
         \n"
    );
    for call in calls {
        let fname = format!("{m}_{}", call.name);
        let cu = call.name.to_ascii_uppercase();
        let _ = writeln!(s, "/* {}", call.canonical());
        for d in doc_lines(&call.docs) {
            let _ = writeln!(s, " *{}", d.replace("*/", "* /").replace("/*", "/ *"));
        }
        let _ = writeln!(s, " */");
        let _ = writeln!(
            s,
            "#define {upper}_{cu}_SIGNATURE {:#018x}ull",
            call.digest()
        );
        let mut params = vec!["const struct vmmcall_vmm *vmmcall_vmm".to_string()];
        let mut regs: Vec<String> = Vec::new();
        let mut prefault = Vec::new();
        for p in &call.params {
            let rust = p.ident.unraw().to_string();
            let id = format!("vmmcall_p_{rust}");
            let len = format!("vmmcall_len_{rust}");
            match p.kind {
                Kind::Int(i) => {
                    params.push(format!("{} {id}", i.c()));
                    regs.push(if i.signed() {
                        format!("(vmmcall_u64)(long long){id}")
                    } else {
                        format!("(vmmcall_u64){id}")
                    });
                }
                Kind::Bool => {
                    params.push(format!("vmmcall_bool {id}"));
                    regs.push(format!("(vmmcall_u64)({id} ? 1 : 0)"));
                }
                Kind::In => {
                    params.push(format!("const void *{id}, unsigned long {len}"));
                    prefault.push(format!("vmmcall_prefault_read({id}, {len});"));
                    regs.push(format!("(vmmcall_u64)(unsigned long){id}"));
                    regs.push(format!("(vmmcall_u64){len}"));
                }
                Kind::Out => {
                    params.push(format!("void *{id}, unsigned long {len}"));
                    prefault.push(format!("vmmcall_prefault_write({id}, {len});"));
                    regs.push(format!("(vmmcall_u64)(unsigned long){id}"));
                    regs.push(format!("(vmmcall_u64){len}"));
                }
            }
        }
        while regs.len() < ARG_REGS.len() {
            regs.push("0".into());
        }
        let (result_ty, check) = match call.ret {
            Ret::Unit => (None, Some("vmmcall_rax != 0")),
            Ret::Bool => (Some("vmmcall_bool"), Some("vmmcall_rax > 1")),
            Ret::Int(Int::U8) => (Some("unsigned char"), Some("vmmcall_rax > 0xffull")),
            Ret::Int(Int::U16) => (Some("unsigned short"), Some("vmmcall_rax > 0xffffull")),
            Ret::Int(Int::U32) => (Some("vmmcall_u32"), Some("vmmcall_rax > 0xffffffffull")),
            Ret::Int(_) => (Some("vmmcall_u64"), None),
        };
        if let Some(t) = result_ty {
            params.push(format!("{t} *vmmcall_result"));
        }
        let _ = writeln!(s, "static inline int {fname}({})\n{{", params.join(", "));
        let _ = writeln!(s, "    static vmmcall_u64 vmmcall_number;");
        let _ = writeln!(
            s,
            "    vmmcall_u64 vmmcall_rax, vmmcall_n = __atomic_load_n(&vmmcall_number, __ATOMIC_RELAXED);"
        );
        let _ = writeln!(s, "    if (vmmcall_n == 0) {{");
        let _ = writeln!(
            s,
            "        int vmmcall_err = vmmcall_lookup_typed(vmmcall_vmm, \"{}\", {upper}_{cu}_SIGNATURE, &vmmcall_n);",
            call.name
        );
        let _ = writeln!(
            s,
            "        if (vmmcall_err)\n            return vmmcall_err;"
        );
        let _ = writeln!(
            s,
            "        __atomic_store_n(&vmmcall_number, vmmcall_n, __ATOMIC_RELAXED);\n    }}"
        );
        for p in &prefault {
            let _ = writeln!(s, "    {p}");
        }
        let _ = writeln!(
            s,
            "    vmmcall_rax = vmmcall_raw(vmmcall_vmm, vmmcall_n, {});",
            regs.join(", ")
        );
        let _ = writeln!(
            s,
            "    if (vmmcall_is_error(vmmcall_rax))\n        return vmmcall_errno(vmmcall_rax);"
        );
        if let Some(check) = check {
            let _ = writeln!(
                s,
                "    if ({check}) /* not the declared result type */\n        return VMMCALL_EINVAL;"
            );
        }
        if let Some(t) = result_ty {
            let _ = writeln!(
                s,
                "    if (vmmcall_result)\n        *vmmcall_result = ({t})vmmcall_rax;"
            );
        }
        let _ = writeln!(s, "    return 0;\n}}\n");
    }
    let _ = writeln!(s, "#ifdef __cplusplus\n}}\n#endif\n");
    let _ = writeln!(s, "#endif /* {guard} */");
    s
}

/// The text of `///` doc attributes, one entry per line.
fn doc_lines(attrs: &[Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|s| s.lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(input: TokenStream2) -> Vec<String> {
        let decl: Decl = match syn::parse2(input) {
            Ok(d) => d,
            Err(e) => return e.into_iter().map(|e| e.to_string()).collect(),
        };
        match decl.errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn canonical_text_and_digest() {
        let decl: Decl = syn::parse2(quote! {
            pub mod demo {
                #[user]
                fn hello(arg1: u64) -> u64;
                fn fill(out: &mut [u8], byte: u8, data: &[u8]);
                fn r#type(flag: bool, x: i16) -> bool;
            }
        })
        .unwrap();
        assert!(decl.errors.finish().is_ok());
        let texts: Vec<String> = decl.calls.iter().map(Call::canonical).collect();
        assert_eq!(
            texts,
            [
                "vmmcall-signature-v1 hello(u64)->u64 user",
                "vmmcall-signature-v1 fill(out,u8,in)->() kernel",
                "vmmcall-signature-v1 type(bool,i16)->bool kernel",
            ]
        );
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector).
        assert_eq!(digest(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(digest(b""), 0xcbf2_9ce4_8422_2325);
        // Parameter names are not part of the signature; types, order,
        // the result and `user` are.
        let one = |t: TokenStream2| -> u64 {
            let d: Decl = syn::parse2(quote!(mod m { #t })).unwrap();
            d.calls[0].digest()
        };
        let base = one(quote!(
            fn f(a: u32, b: u8) -> u64;
        ));
        assert_eq!(
            base,
            one(quote!(
                fn f(x: u32, y: u8) -> u64;
            ))
        );
        for other in [
            quote!(
                fn f(a: u8, b: u32) -> u64;
            ),
            quote!(
                fn f(a: u32) -> u64;
            ),
            quote!(
                fn f(a: u32, b: u8) -> u32;
            ),
            quote!(
                #[user]
                fn f(a: u32, b: u8) -> u64;
            ),
            quote!(
                fn g(a: u32, b: u8) -> u64;
            ),
        ] {
            assert_ne!(base, one(other.clone()), "{other}");
        }
    }

    #[test]
    fn misuse_is_reported_on_the_token() {
        let errs = errors(quote! {
            mod m {
                #[user = 1]
                fn a(x: usize);
                fn b(x: String) -> i32;
                fn c(x: &str);
                fn d(a: &[u8], b: &mut [u8], c: u8);
                fn e() { }
                fn f<T>(x: T);
                fn get_vmmcall_number();
                #[inline]
                fn g();
                fn h();
                fn h();
                const X: u8;
            }
        });
        let want = [
            "takes no value",
            "fixed width",
            "a declared parameter is",
            "signed integer",
            "buffer is declared as bytes",
            "need 5 registers",
            "without a body",
            "cannot be generic",
            "a declared parameter is",
            "reserved",
            "doc comments and `#[user]`",
            "declares `h` twice",
            "first declared here",
            "only hypercall declarations",
        ];
        // "need 5" is fine (exactly five); only more fails: check the list.
        let want: Vec<&str> = want
            .into_iter()
            .filter(|w| *w != "need 5 registers")
            .collect();
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        for (e, w) in errs.iter().zip(&want) {
            assert!(e.contains(w), "{e:?} should contain {w:?}");
        }
        let errs = errors(quote!(
            mod m {
                fn d(a: &[u8], b: &mut [u8], c: u8, d: u8);
            }
        ));
        assert!(
            errs.len() == 1 && errs[0].contains("need 6 registers"),
            "{errs:?}"
        );
        let errs = errors(quote!(
            mod m {
                fn foo();
                fn FOO();
            }
        ));
        assert!(
            errs.len() == 2 && errs[0].contains("differ only in case"),
            "{errs:?}"
        );
        let errs = errors(quote!(
            mod vmmcall {
                fn x();
            }
        ));
        assert!(
            errs.len() == 1 && errs[0].contains("clash with vmmcall.h"),
            "{errs:?}"
        );
        let errs = errors(quote!(
            mod m {
                fn x(#[cfg(test)] a: u8, __vmmcall_r0: u8);
            }
        ));
        assert!(
            errs.len() == 2 && errs[0].contains("no attributes") && errs[1].contains("reserved"),
            "{errs:?}"
        );
        let errs = errors(quote!(
            struct S;
        ));
        assert!(
            errs.len() == 1 && errs[0].contains("module of hypercalls"),
            "{errs:?}"
        );
    }

    #[test]
    fn c_header_has_typed_functions() {
        let decl: Decl = syn::parse2(quote! {
            mod demo {
                /// Doubles.
                #[user]
                fn hello(arg1: u64) -> u64;
                fn fill(out: &mut [u8], byte: u8) -> u8;
                fn neg(x: i32, on: bool);
            }
        })
        .unwrap();
        let h = c_header(&decl.ident, &decl.calls);
        let has = |want: &str| assert!(h.contains(want), "{want:?} not in:\n{h}");
        has("static inline int demo_hello(const struct vmmcall_vmm *vmmcall_vmm, vmmcall_u64 vmmcall_p_arg1, vmmcall_u64 *vmmcall_result)");
        has(" * Doubles.");
        has("static inline int demo_fill(const struct vmmcall_vmm *vmmcall_vmm, void *vmmcall_p_out, unsigned long vmmcall_len_out, unsigned char vmmcall_p_byte, unsigned char *vmmcall_result)");
        has("vmmcall_prefault_write(vmmcall_p_out, vmmcall_len_out);");
        has("vmmcall_rax = vmmcall_raw(vmmcall_vmm, vmmcall_n, (vmmcall_u64)(unsigned long)vmmcall_p_out, (vmmcall_u64)vmmcall_len_out, (vmmcall_u64)vmmcall_p_byte, 0, 0);");
        has("if (vmmcall_rax > 0xffull) /* not the declared result type */");
        has("static inline int demo_neg(const struct vmmcall_vmm *vmmcall_vmm, int vmmcall_p_x, vmmcall_bool vmmcall_p_on)\n");
        has("(vmmcall_u64)(long long)vmmcall_p_x, (vmmcall_u64)(vmmcall_p_on ? 1 : 0)");
        has("if (vmmcall_rax != 0) /* not the declared result type */");
        has(&format!(
            "#define DEMO_HELLO_SIGNATURE {:#018x}ull",
            decl.calls[0].digest()
        ));
        has("#ifdef __cplusplus\nextern \"C\" {");
        assert!(h.starts_with("/* SPDX") && h.ends_with("#endif /* VMMCALL_INTERFACE_DEMO_H */\n"));
        // Names that are C keywords, macros of the including program or
        // another parameter's length stay apart; comment markers in docs
        // cannot end the comment.
        let decl: Decl = syn::parse2(quote!(
            mod m {
                /// A */ in a doc, and a /* too.
                fn f(double: bool, errno: u8, out: &mut [u8], out_len: u8);
            }
        ))
        .unwrap();
        let h = c_header(&decl.ident, &decl.calls);
        let has = |want: &str| assert!(h.contains(want), "{want:?} not in:\n{h}");
        has("vmmcall_bool vmmcall_p_double, unsigned char vmmcall_p_errno, void *vmmcall_p_out, unsigned long vmmcall_len_out, unsigned char vmmcall_p_out_len)");
        has(" * A * / in a doc, and a / * too.");
    }
}
