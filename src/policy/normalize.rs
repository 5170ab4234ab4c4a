//! Normalized text matching for merchants, tools and models (merchant lists
//! build on it in [`merchant`](super::merchant)).
//!
//! Names are compared after trimming, collapsing runs of whitespace into one
//! space and lower-casing (Unicode). Comparison walks the raw request text
//! through the same folding, so evaluation allocates nothing. Never a substring:
//! `"aws"` matches `"AWS"` and `" Aws "`, not `"Laws Firm LLC"`.

use std::cmp::Ordering;
use std::str::Chars;

/// Yields the folded characters of a text: trimmed, whitespace runs as one
/// space, lower-cased.
struct Folded<'a> {
    chars: Chars<'a>,
    pending_space: bool,
    lower: Option<std::char::ToLowercase>,
}

impl<'a> Folded<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            chars: s.trim().chars(),
            pending_space: false,
            lower: None,
        }
    }
}

impl Iterator for Folded<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        loop {
            if let Some(lower) = &mut self.lower {
                if let Some(c) = lower.next() {
                    return Some(c);
                }
                self.lower = None;
            }
            let c = self.chars.next()?;
            if c.is_whitespace() {
                // The text is trimmed, so a run always has a character after it.
                self.pending_space = true;
                continue;
            }
            let space = std::mem::take(&mut self.pending_space);
            if c.is_ascii() && !space {
                return Some(c.to_ascii_lowercase());
            }
            self.lower = Some(c.to_lowercase());
            if space {
                return Some(' ');
            }
        }
    }
}

/// The folded form of `s` (used when compiling patterns).
pub(crate) fn fold(s: &str) -> String {
    Folded::new(s).collect()
}

/// Compares raw text (folded on the fly) with an already folded pattern.
pub(crate) fn cmp_folded(raw: &str, folded: &str) -> Ordering {
    Folded::new(raw).cmp(folded.chars())
}

/// Whether `raw` folds to exactly `folded`.
#[cfg(test)]
pub(crate) fn eq_folded(raw: &str, folded: &str) -> bool {
    cmp_folded(raw, folded) == Ordering::Equal
}

/// The longest folded text [`fold_ascii`] folds on the stack; longer texts
/// are compared character by character.
const ASCII_FOLD_MAX: usize = 128;

/// Folds an ASCII `raw` into `buf` (the same result as [`fold`], since every
/// ASCII character lower-cases to one ASCII character). `None` when `raw` is
/// not ASCII or its folded form is longer than the buffer.
fn fold_ascii<'b>(raw: &str, buf: &'b mut [u8; ASCII_FOLD_MAX]) -> Option<&'b [u8]> {
    let raw = raw.trim();
    if !raw.is_ascii() {
        return None;
    }
    let mut len = 0;
    let mut pending_space = false;
    for &b in raw.as_bytes() {
        // `char::is_whitespace` on an ASCII character, as `Folded` uses it.
        if char::from(b).is_whitespace() {
            pending_space = true;
            continue;
        }
        if std::mem::take(&mut pending_space) {
            *buf.get_mut(len)? = b' ';
            len += 1;
        }
        *buf.get_mut(len)? = b.to_ascii_lowercase();
        len += 1;
    }
    buf.get(..len)
}

/// Whether the folded text `raw` is in the sorted, folded `list`.
///
/// An ASCII `raw` is folded once and compared bytewise (byte order of UTF-8
/// is character order); anything else is folded on the fly per comparison.
pub(crate) fn contains_folded(list: &[Box<str>], raw: &str) -> bool {
    if list.is_empty() {
        return false;
    }
    let mut buf = [0u8; ASCII_FOLD_MAX];
    match fold_ascii(raw, &mut buf) {
        Some(folded) => list.binary_search_by(|p| p.as_bytes().cmp(folded)).is_ok(),
        None => list
            .binary_search_by(|p| cmp_folded(raw, p).reverse())
            .is_ok(),
    }
}

/// The host of a URL or domain, as a slice of the input: scheme, user info,
/// port, path, query, a trailing dot and a leading `www.` removed. `None` when
/// what remains is not a plausible host name (empty, no dot, whitespace inside,
/// or characters other than letters, digits, `-`, `_` and `.`).
pub(crate) fn host_of(raw: &str) -> Option<&str> {
    // The host is a slice of `raw` with a dot in it: no dot, no host. This
    // skips the parsing below for plain merchant names.
    if !raw.as_bytes().contains(&b'.') {
        return None;
    }
    let mut s = raw.trim();
    if let Some(i) = s.find("://") {
        s = &s[i + 3..];
    }
    if let Some(i) = s.find(['/', '?', '#']) {
        s = &s[..i];
    }
    if let Some(i) = s.rfind('@') {
        s = &s[i + 1..];
    }
    if let Some(i) = s.rfind(':') {
        s = &s[..i];
    }
    s = s.strip_suffix('.').unwrap_or(s);
    // `get` rather than indexing: the fourth byte may fall inside a character.
    if s.len() > 4 && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("www.")) {
        s = &s[4..];
    }
    let plausible = !s.is_empty()
        && s.contains('.')
        && !s.starts_with('.')
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.');
    plausible.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_trims_collapses_and_lowercases() {
        assert_eq!(fold("  Facebook   Ads "), "facebook ads");
        assert_eq!(fold("ÉCOLE\tÜber"), "école über");
        assert!(eq_folded(" Aws ", "aws"));
        assert!(eq_folded("Google\n Ads", "google ads"));
        assert!(!eq_folded("Laws Firm LLC", "aws"));
        // Multi-char lower-case mappings survive a preceding space.
        assert_eq!(fold("a İ"), "a i\u{307}");
        assert_eq!(fold("İ"), "i\u{307}");
    }

    #[test]
    fn ascii_folding_on_the_stack_equals_folding() {
        let texts = [
            "  Facebook   Ads ",
            "GitHub",
            "a\tb\nc\x0Bd\x0Ce\rf",
            "",
            "   ",
            "x",
            "UPPER lower 123 -_.",
        ];
        let mut buf = [0u8; ASCII_FOLD_MAX];
        for t in texts {
            assert_eq!(fold_ascii(t, &mut buf), Some(fold(t).as_bytes()), "{t:?}");
        }
        assert_eq!(fold_ascii("École", &mut buf), None);
        let long = "a ".repeat(ASCII_FOLD_MAX);
        assert_eq!(fold_ascii(&long, &mut buf), None);
        // Both paths agree on membership, including around the buffer size.
        let exact = "b".repeat(ASCII_FOLD_MAX);
        let list: Vec<Box<str>> = vec!["aws".into(), exact.as_str().into(), "école".into()];
        assert!(contains_folded(
            &list,
            &format!(" {} ", exact.to_uppercase())
        ));
        assert!(contains_folded(&list, " AWS "));
        assert!(contains_folded(&list, "ÉCOLE"));
        assert!(!contains_folded(&list, &format!("{exact}b")));
        assert!(!contains_folded(&list, "aws x"));
        assert!(!contains_folded(&[], "aws"));
    }

    #[test]
    fn hosts_with_multibyte_characters_near_the_start_never_panic() {
        // Found by the fuzzer: the fourth byte fell inside 'ױ'.
        assert_eq!(host_of("abc\u{5f1}.com"), Some("abc\u{5f1}.com"));
        assert_eq!(
            host_of("ww\u{5f1}.example.com"),
            Some("ww\u{5f1}.example.com")
        );
        assert_eq!(host_of("www.\u{5f1}x.com"), Some("\u{5f1}x.com"));
    }

    #[test]
    fn hosts_are_extracted_from_urls() {
        assert_eq!(
            host_of("https://aws.amazon.com/ec2?x=1"),
            Some("aws.amazon.com")
        );
        assert_eq!(host_of("WWW.GitHub.com."), Some("GitHub.com"));
        assert_eq!(
            host_of("user@shop.example.co.uk:8443/x"),
            Some("shop.example.co.uk")
        );
        assert_eq!(host_of("Facebook Ads"), None);
        assert_eq!(host_of("aws"), None);
        assert_eq!(host_of("."), None);
    }
}
