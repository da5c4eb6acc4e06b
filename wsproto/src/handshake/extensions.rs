//! `Sec-WebSocket-Extensions` offers and answers (RFC 6455 §9.1); which extension is agreed is
//! decided by the extension itself (permessage-deflate, in the `deflate` module).

use super::head::{is_token, Header};

/// One offered or accepted extension with its parameters (RFC 6455 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order, each with its value (quotes removed) if it has one.
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// Parses every `Sec-WebSocket-Extensions` field. Malformed elements are skipped: an
    /// extension we cannot read is an extension we do not accept.
    pub(crate) fn parse_all(headers: &[Header]) -> Vec<ExtensionOffer> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .filter_map(|h| std::str::from_utf8(&h.value).ok())
            .flat_map(split_outside_quotes(','))
            .filter_map(|element| ExtensionOffer::parse(&element))
            .collect()
    }

    fn parse(element: &str) -> Option<ExtensionOffer> {
        let mut parts = split_outside_quotes(';')(element).into_iter();
        let name = parts.next()?.trim().to_owned();
        if !is_token(&name) {
            return None;
        }
        let mut params = Vec::new();
        for part in parts {
            let part = part.trim();
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => {
                    let v = v.trim();
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                    (k.trim(), Some(v.to_owned()))
                }
                None => (part, None),
            };
            if !is_token(key) {
                return None;
            }
            params.push((key.to_owned(), value));
        }
        Some(ExtensionOffer { name, params })
    }
}

/// Splits on `sep` except inside double quotes.
pub(super) fn split_outside_quotes(sep: char) -> impl Fn(&str) -> Vec<String> {
    move |s: &str| {
        let mut out = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in s.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    current.push(c);
                }
                c if c == sep && !quoted => out.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        if !current.trim().is_empty() {
            out.push(current);
        }
        out
    }
}
