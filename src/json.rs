//! The little JSON vsbox writes (`--json` outputs): strings escaped as
//! RFC 8259 §7 requires, and objects of already-written values.

/// Text as a JSON string.
pub fn str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// An object of (key, JSON value) pairs, in order.
pub fn object(fields: &[(&str, String)]) -> String {
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", str(k))).collect();
    format!("{{{}}}", inner.join(","))
}

/// A number, or null.
pub fn num(n: Option<u64>) -> String {
    n.map_or_else(|| "null".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_objects() {
        assert_eq!(str("a\"b\n"), "\"a\\\"b\\u000a\"");
        assert_eq!(object(&[("a", num(Some(1))), ("b", num(None))]), "{\"a\":1,\"b\":null}");
    }
}
