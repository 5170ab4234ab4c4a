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

/// Compares an ASCII `raw`, folded on the fly (the same bytes as [`fold`]
/// gives, since every ASCII character lower-cases to one ASCII character),
/// with a folded `pattern`, byte by byte (byte order of UTF-8 is character
/// order). Stops at the first byte that differs, which is usually the first.
fn cmp_folded_ascii(raw: &[u8], pattern: &[u8]) -> Ordering {
    let mut pattern = pattern.iter();
    // The next folded byte against the pattern's: `Some` once they differ.
    let mut differs = |folded: u8| match pattern.next() {
        Some(&p) if p == folded => None,
        Some(&p) => Some(folded.cmp(&p)),
        None => Some(Ordering::Greater),
    };
    // Leading and trailing whitespace is dropped (trimmed), a run inside
    // becomes one space before the character that ends it.
    let mut started = false;
    let mut pending_space = false;
    for &b in raw {
        // `char::is_whitespace` for an ASCII character, as `Folded` uses it:
        // tab, line feed, vertical tab, form feed, carriage return, space.
        if matches!(b, b'\t'..=b'\r' | b' ') {
            pending_space = started;
            continue;
        }
        started = true;
        if std::mem::take(&mut pending_space)
            && let Some(ord) = differs(b' ')
        {
            return ord;
        }
        if let Some(ord) = differs(b.to_ascii_lowercase()) {
            return ord;
        }
    }
    if pattern.next().is_some() {
        Ordering::Less
    } else {
        Ordering::Equal
    }
}

/// Whether the folded text `raw` is in the sorted, folded `list`.
///
/// Each comparison folds `raw` on the fly only as far as it takes to differ
/// from the entry: byte by byte for an ASCII `raw`, character by character
/// otherwise.
pub(crate) fn contains_folded(list: &[Box<str>], raw: &str) -> bool {
    if list.is_empty() {
        return false;
    }
    if raw.is_ascii() {
        list.binary_search_by(|p| cmp_folded_ascii(raw.as_bytes(), p.as_bytes()).reverse())
            .is_ok()
    } else {
        list.binary_search_by(|p| cmp_folded(raw, p).reverse())
            .is_ok()
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
    fn ascii_folding_on_the_fly_equals_folding() {
        let texts = [
            "  Facebook   Ads ",
            "GitHub",
            "a\tb\nc\x0Bd\x0Ce\rf",
            "",
            "   ",
            "x",
            "UPPER lower 123 -_.",
            "facebook",
            "facebook adsx",
            "Facebook\x0BAds",
        ];
        let patterns = [
            "",
            " ",
            "a",
            "a b c d e f",
            "facebook",
            "facebook ads",
            "facebook adsa",
            "facebook ad",
            "github",
            "x",
            "upper lower 123 -_.",
            "école",
            "\u{7f}",
        ];
        for t in texts {
            for p in patterns {
                assert_eq!(
                    cmp_folded_ascii(t.as_bytes(), p.as_bytes()),
                    fold(t).as_bytes().cmp(p.as_bytes()),
                    "{t:?} vs {p:?}"
                );
                assert_eq!(
                    cmp_folded_ascii(t.as_bytes(), p.as_bytes()),
                    cmp_folded(t, p)
                );
            }
        }
        // Every ASCII character between two letters, whitespace or not.
        for b in 0u8..128 {
            let t = format!("a{}B", char::from(b));
            assert_eq!(
                cmp_folded_ascii(t.as_bytes(), fold(&t).as_bytes()),
                Ordering::Equal,
                "{t:?}"
            );
        }
        // Long texts, ASCII or not, fold like short ones.
        let exact = "b".repeat(200);
        let list: Vec<Box<str>> = vec!["aws".into(), exact.as_str().into(), "école".into()];
        assert!(contains_folded(
            &list,
            &format!(" {} ", exact.to_uppercase())
        ));
        assert!(contains_folded(&list, " AWS "));
        assert!(contains_folded(&list, "ÉCOLE"));
        assert!(!contains_folded(&list, &format!("{exact}b")));
        assert!(!contains_folded(&list, "aws x"));
        assert!(!contains_folded(&list, "aw"));
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
