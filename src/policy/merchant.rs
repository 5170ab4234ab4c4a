//! Merchant lists: whether a merchant (a name, and perhaps a domain) is one a
//! `merchant_in` / `merchant_not_in` list names.
//!
//! A host's **registrable domain** comes from the Public Suffix List (the
//! `psl` crate compiles it into code): `github.com` for `api.github.com`,
//! `example.co.uk` for `shop.example.co.uk`, and `evil.github.io` for
//! `evil.github.io`, since `github.io` is a suffix under which anyone may
//! register a site. Its first label (`github`, `example`, `evil`) is what a
//! name entry is compared with.
//!
//! The domain is the stronger identity: a name is whatever the agent typed.
//! When a request carries a domain and only its name matches, the match is
//! [`MerchantMatch::NameOnly`], which evaluation treats as undetermined, so
//! that a block list blocks (either matches) and an allow list does not admit
//! (the domain must match). Matching allocates nothing for ASCII hosts.

use psl::Psl as _;

use super::normalize::{contains_folded, fold, host_of};

/// The longest host folded on the stack (a DNS name has at most 253 bytes);
/// longer or non-ASCII hosts are folded on the heap.
const HOST_MAX: usize = 256;

/// Runs `f` on `host` lower-cased.
fn with_folded_host<R>(host: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; HOST_MAX];
    if host.is_ascii()
        && let Some(out) = buf.get_mut(..host.len())
    {
        out.copy_from_slice(host.as_bytes());
        out.make_ascii_lowercase();
        if let Ok(folded) = std::str::from_utf8(out) {
            return f(folded);
        }
    }
    f(&fold(host))
}

/// The registrable domain of a lower-cased host, as a slice of it: the
/// public suffix and one label before it. `None` when the host is itself a
/// public suffix (`github.io`, `co.uk`).
pub(crate) fn registrable_domain(host: &str) -> Option<&str> {
    let len = psl::List.domain(host.as_bytes())?.as_bytes().len();
    host.get(host.len().checked_sub(len)?..)
}

/// Whether a merchant list entry is a host that is itself a public suffix
/// (`github.io`, `co.uk`): it names no merchant, and a list holding it would
/// match either every site under it or none.
pub(crate) fn is_public_suffix_entry(entry: &str) -> bool {
    let folded = fold(entry);
    !folded.contains(' ') && host_of(&folded).is_some_and(|h| registrable_domain(h).is_none())
}

/// How a merchant matched a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MerchantMatch {
    /// Neither the name nor the domain matched.
    No,
    /// The request has a domain that did not match, but its name did: who
    /// the merchant is cannot be decided.
    NameOnly,
    /// The domain matched, or (without a domain) the name did.
    Yes,
}

/// Whether the sorted `list` holds exactly `s` (both already folded).
fn contains_exact(list: &[Box<str>], s: &str) -> bool {
    list.binary_search_by(|p| p.as_ref().cmp(s)).is_ok()
}

/// A compiled merchant list: folded names and folded hosts, each sorted.
#[derive(Clone, Debug, Default)]
pub(crate) struct MerchantSet {
    /// Entries that are not hosts: matched against the whole folded name, and
    /// against the first label of the registrable domain of a host.
    names: Box<[Box<str>]>,
    /// Entries that are hosts: matched against a host and its parent domains
    /// down to its registrable domain (`amazon.com` matches `aws.amazon.com`).
    hosts: Box<[Box<str>]>,
}

impl MerchantSet {
    /// Builds the set from validated patterns.
    pub(crate) fn new<'a>(patterns: impl IntoIterator<Item = &'a String>) -> Self {
        let mut names = Vec::new();
        let mut hosts = Vec::new();
        for p in patterns {
            let folded = fold(p);
            match host_of(&folded) {
                Some(host) if !folded.contains(' ') => hosts.push(Box::from(host)),
                _ => names.push(folded.into_boxed_str()),
            }
        }
        names.sort_unstable();
        names.dedup();
        hosts.sort_unstable();
        hosts.dedup();
        Self {
            names: names.into_boxed_slice(),
            hosts: hosts.into_boxed_slice(),
        }
    }

    /// Whether a merchant named `name`, at `domain` (a URL or domain), is in
    /// the set. The name counts as a host too when it looks like one.
    pub(crate) fn matches(&self, name: &str, domain: Option<&str>) -> MerchantMatch {
        let by_name = || {
            contains_folded(&self.names, name) || host_of(name).is_some_and(|h| self.has_host(h))
        };
        match domain {
            Some(d) if host_of(d).is_some_and(|h| self.has_host(h)) => MerchantMatch::Yes,
            Some(_) if by_name() => MerchantMatch::NameOnly,
            None if by_name() => MerchantMatch::Yes,
            _ => MerchantMatch::No,
        }
    }

    /// Whether `host` (as found by [`host_of`], any case) is in the set.
    fn has_host(&self, host: &str) -> bool {
        if self.names.is_empty() && self.hosts.is_empty() {
            return false;
        }
        with_folded_host(host, |host| {
            let Some(registrable) = registrable_domain(host) else {
                return false;
            };
            if let Some(label) = registrable.split('.').next()
                && contains_exact(&self.names, label)
            {
                return true;
            }
            // The host, then each parent domain down to the registrable one.
            let mut rest = host;
            loop {
                if contains_exact(&self.hosts, rest) {
                    return true;
                }
                match rest.find('.') {
                    Some(i) if rest.len() > registrable.len() => rest = &rest[i + 1..],
                    _ => return false,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> MerchantSet {
        let owned: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        MerchantSet::new(&owned)
    }

    #[test]
    fn registrable_domains_come_from_the_public_suffix_list() {
        assert_eq!(registrable_domain("aws.amazon.com"), Some("amazon.com"));
        assert_eq!(registrable_domain("amazon.com"), Some("amazon.com"));
        assert_eq!(
            registrable_domain("shop.example.co.uk"),
            Some("example.co.uk")
        );
        assert_eq!(registrable_domain("evil.github.io"), Some("evil.github.io"));
        assert_eq!(
            registrable_domain("a.evil.github.io"),
            Some("evil.github.io")
        );
        assert_eq!(registrable_domain("github.io"), None);
        assert_eq!(registrable_domain("co.uk"), None);
        assert_eq!(registrable_domain("com"), None);
        assert_eq!(registrable_domain("shop.internal"), Some("shop.internal"));
        assert!(is_public_suffix_entry("github.io"));
        assert!(is_public_suffix_entry(" CO.UK "));
        assert!(is_public_suffix_entry("https://www.github.io/"));
        assert!(!is_public_suffix_entry("user.github.io"));
        assert!(!is_public_suffix_entry("github"));
        assert!(!is_public_suffix_entry("Amazon Web Services"));
    }

    #[test]
    fn hosts_are_folded_on_the_stack_or_the_heap_alike() {
        let long = format!("{}.example.com", "a".repeat(HOST_MAX));
        for host in [
            "API.GitHub.COM",
            "github.com",
            "",
            "ÉCOLE.fr",
            long.as_str(),
        ] {
            with_folded_host(host, |f| assert_eq!(f, fold(host), "{host:?}"));
        }
        let s = set(&["example.com"]);
        assert!(s.has_host(&long.to_uppercase()));
        assert_eq!(s.matches("x", Some(&long)), MerchantMatch::Yes);
    }

    #[test]
    fn names_and_domains_match_but_never_substrings() {
        let s = set(&["aws", "aws.amazon.com"]);
        assert_eq!(s.matches("AWS", None), MerchantMatch::Yes);
        assert_eq!(s.matches(" Aws ", None), MerchantMatch::Yes);
        assert_eq!(s.matches("aws.amazon.com", None), MerchantMatch::Yes);
        assert_eq!(
            s.matches("Amazon Web Services", Some("https://aws.amazon.com/ec2")),
            MerchantMatch::Yes
        );
        assert_eq!(
            s.matches("Console", Some("console.aws.amazon.com")),
            MerchantMatch::Yes
        );
        assert_eq!(s.matches("AWS", Some("aws.dev")), MerchantMatch::Yes);
        assert_eq!(s.matches("Laws Firm LLC", None), MerchantMatch::No);
        assert_eq!(s.matches("Laws", Some("laws.com")), MerchantMatch::No);
        assert_eq!(s.matches("Amazon", Some("amazon.com")), MerchantMatch::No);
        assert_eq!(s.matches("aws marketplace", None), MerchantMatch::No);
        assert_eq!(s.matches("AWS", Some("laws.com")), MerchantMatch::NameOnly);
        assert_eq!(
            s.matches("aws.amazon.com", Some("laws.com")),
            MerchantMatch::NameOnly
        );
    }

    #[test]
    fn a_name_entry_matches_the_registrable_label_only() {
        let github = set(&["GitHub"]);
        assert_eq!(
            github.matches("x", Some("api.github.com")),
            MerchantMatch::Yes
        );
        assert_eq!(github.matches("x", Some("GITHUB.COM")), MerchantMatch::Yes);
        assert_eq!(
            github.matches("x", Some("github.co.uk")),
            MerchantMatch::Yes
        );
        assert_eq!(
            github.matches("x", Some("github.attacker.io")),
            MerchantMatch::No
        );
        assert_eq!(
            github.matches("x", Some("evil.github.io")),
            MerchantMatch::No
        );
        assert_eq!(github.matches("x", Some("github.io")), MerchantMatch::No);
        assert_eq!(github.matches("evil.github.io", None), MerchantMatch::No);
        assert_eq!(
            github.matches("GitHub", Some("evil.github.io")),
            MerchantMatch::NameOnly
        );
        assert_eq!(
            github.matches("GitHub", Some("not a host")),
            MerchantMatch::NameOnly
        );
        assert_eq!(github.matches("x", Some("not a host")), MerchantMatch::No);
    }

    #[test]
    fn a_host_entry_matches_itself_and_below_down_to_the_registrable_domain() {
        let amazon = set(&["https://www.amazon.com/"]);
        assert_eq!(
            amazon.matches("AWS", Some("aws.amazon.com")),
            MerchantMatch::Yes
        );
        assert_eq!(amazon.matches("x", Some("amazon.com")), MerchantMatch::Yes);
        assert_eq!(
            amazon.matches("x", Some("notamazon.com")),
            MerchantMatch::No
        );
        assert_eq!(
            amazon.matches("x", Some("amazon.com.evil.io")),
            MerchantMatch::No
        );
        let site = set(&["user.github.io"]);
        assert_eq!(
            site.matches("x", Some("user.github.io")),
            MerchantMatch::Yes
        );
        assert_eq!(
            site.matches("x", Some("a.user.github.io")),
            MerchantMatch::Yes
        );
        assert_eq!(
            site.matches("x", Some("other.github.io")),
            MerchantMatch::No
        );
        // An entry above the registrable domain never matches (validation
        // refuses public suffixes as entries).
        let suffix = set(&["github.io"]);
        assert_eq!(
            suffix.matches("x", Some("evil.github.io")),
            MerchantMatch::No
        );
        assert_eq!(suffix.matches("x", Some("github.io")), MerchantMatch::No);
        assert_eq!(set(&[]).matches("x", Some("github.io")), MerchantMatch::No);
    }
}
