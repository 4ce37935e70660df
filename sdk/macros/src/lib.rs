//! `#[plugin(kind)]`: turns a plain Rust function into a zhtp plugin entry point;
//! `#[contract(entry)]` does the same for a smart contract's entries.
//!
//! Emitted only for `target_arch = "wasm32"`, inside an anonymous `const _` so the plugin's own
//! names stay untouched:
//! - the ABI version marker `zhtp_abi_v1` (an empty exported function);
//! - the kind's entry export (e.g. `pricing_quote() -> i32`) calling `zhtp_sdk::__private::dispatch`;
//! - a `zhtp.meta` custom section with `CARGO_PKG_NAME@CARGO_PKG_VERSION`.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Ident, ItemFn, parse_macro_input};

/// Plugin kinds and their entry exports; mirrors `zhtp_abi::v1`.
const KINDS: &[(&str, &str)] = &[
    ("pricing", "pricing_quote"),
    ("quality", "quality_assess"),
    ("tier", "tier_choose"),
];

/// Marks the plugin's entry function. The argument names the plugin kind: `#[plugin(pricing)]`,
/// `#[plugin(quality)]` or `#[plugin(tier)]`.
///
/// The function takes the kind's request type by value and returns `Result<Response, E>` where
/// `E: Display`; an `Err` becomes a refusal whose text the host reports.
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let kind = parse_macro_input!(attr as Ident);
    let func = parse_macro_input!(item as ItemFn);
    let Some((_, entry)) = KINDS.iter().find(|(k, _)| kind == k) else {
        let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        return syn::Error::new_spanned(
            &kind,
            format!(
                "unknown plugin kind `{kind}`; known kinds: {}",
                known.join(", ")
            ),
        )
        .to_compile_error()
        .into();
    };
    if func.sig.inputs.len() != 1 {
        return syn::Error::new_spanned(
            &func.sig,
            "a plugin entry point takes exactly one argument: the request",
        )
        .to_compile_error()
        .into();
    }
    let entry = Ident::new(entry, kind.span());
    let name = &func.sig.ident;
    let meta = format!(
        "{}@{}",
        std::env::var("CARGO_PKG_NAME").unwrap_or_default(),
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
    let meta_len = meta.len();
    let meta_bytes = syn::LitByteStr::new(meta.as_bytes(), kind.span());
    quote! {
        #func

        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            #[unsafe(no_mangle)]
            pub extern "C" fn zhtp_abi_v1() {}

            #[unsafe(no_mangle)]
            pub extern "C" fn #entry() -> i32 {
                ::zhtp_sdk::__private::dispatch(#name)
            }

            #[unsafe(link_section = "zhtp.meta")]
            #[used]
            static META: [u8; #meta_len] = *#meta_bytes;
        };
    }
    .into()
}

/// Contract entries and their exports; mirrors `zhtp_abi::contract`.
const ENTRIES: &[(&str, &str)] = &[
    ("instantiate", "contract_instantiate"),
    ("execute", "contract_execute"),
    ("query", "contract_query"),
];

/// Marks one of a smart contract's three entry functions: `#[contract(instantiate)]`,
/// `#[contract(execute)]` or `#[contract(query)]`. Each takes `(&mut dyn Api, Msg)` and
/// returns `Result<Answer, E>` with `Msg: Deserialize`, `Answer: Serialize` (both JSON) and
/// `E: Display` (an `Err` is a refusal: the call's writes are discarded). A contract has all
/// three; the `instantiate` one also carries the ABI marker and the `zhtp.meta` section.
#[proc_macro_attribute]
pub fn contract(attr: TokenStream, item: TokenStream) -> TokenStream {
    let which = parse_macro_input!(attr as Ident);
    let func = parse_macro_input!(item as ItemFn);
    let Some((_, export)) = ENTRIES.iter().find(|(k, _)| which == k) else {
        return syn::Error::new_spanned(
            &which,
            format!(
                "unknown contract entry `{which}`; the entries are instantiate, execute and query"
            ),
        )
        .to_compile_error()
        .into();
    };
    if func.sig.inputs.len() != 2 {
        return syn::Error::new_spanned(
            &func.sig,
            "a contract entry takes two arguments: `api: &mut dyn Api` and the message",
        )
        .to_compile_error()
        .into();
    }
    let export = Ident::new(export, which.span());
    let name = &func.sig.ident;
    let marker = if which == "instantiate" {
        let meta = format!(
            "{}@{}",
            std::env::var("CARGO_PKG_NAME").unwrap_or_default(),
            std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
        );
        let meta_len = meta.len();
        let meta_bytes = syn::LitByteStr::new(meta.as_bytes(), which.span());
        quote! {
            #[unsafe(no_mangle)]
            pub extern "C" fn zhtp_abi_v1() {}

            #[unsafe(link_section = "zhtp.meta")]
            #[used]
            static META: [u8; #meta_len] = *#meta_bytes;
        }
    } else {
        quote! {}
    };
    quote! {
        #func

        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            #marker

            #[unsafe(no_mangle)]
            pub extern "C" fn #export() -> i32 {
                ::zhtp_sdk::__private::run_contract(#name)
            }
        };
    }
    .into()
}
