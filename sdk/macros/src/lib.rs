//! `#[plugin(kind)]`: turns a plain Rust function into a zhtp plugin entry point.
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
