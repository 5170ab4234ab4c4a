//! Signed webhook deliveries, Stripe-style: the sender puts
//! `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>` in a
//! header; the receiver recomputes it with its secret and refuses a signature
//! that does not match or whose timestamp is outside its tolerance (a replay).
//!
//! ```
//! use bursar::events::signature::{sign, verify};
//! use chrono::{Duration, TimeZone, Utc};
//! let now = Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap();
//! let body = br#"{"event_type":"budget.threshold_crossed"}"#;
//! let header = sign(b"whsec_acme", now, body);
//! verify(b"whsec_acme", &header, body, now + Duration::seconds(30), Duration::minutes(5))?;
//! assert!(verify(b"whsec_acme", &header, body, now + Duration::minutes(6), Duration::minutes(5)).is_err());
//! # Ok::<(), bursar::Error>(())
//! ```

use chrono::{DateTime, Duration, Utc};
use sha2::Sha256;

use crate::{Error, Result};

/// The header name the HTTP example uses for the signature.
pub const SIGNATURE_HEADER: &str = "bursar-signature";

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
#[must_use]
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length (a long one is hashed first), so this
    // cannot fail; the fallback keeps the function total without a panic.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

fn mac(secret: &[u8], timestamp: i64, payload: &[u8]) -> [u8; 32] {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(payload);
    hmac_sha256(secret, &message)
}

/// The signature header value for `payload` sent at `at`:
/// `t=<unix seconds>,v1=<64 hex digits>`.
#[must_use]
pub fn sign(secret: &[u8], at: DateTime<Utc>, payload: &[u8]) -> String {
    let t = at.timestamp();
    format!("t={t},v1={}", hex::encode(mac(secret, t, payload)))
}

/// Checks a signature header against `payload`: some `v1` must be the
/// HMAC of `"<t>.<payload>"` under `secret` (compared in constant time), and
/// `t` must be within `tolerance` of `now` either way.
///
/// # Errors
/// [`Error::Unauthenticated`] for a malformed header, a wrong signature or a
/// timestamp outside the tolerance; it says no more than that.
pub fn verify(
    secret: &[u8],
    header: &str,
    payload: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<()> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let t = timestamp.ok_or(Error::Unauthenticated)?;
    let sent = DateTime::<Utc>::from_timestamp(t, 0).ok_or(Error::Unauthenticated)?;
    if (now - sent).abs() > tolerance {
        return Err(Error::Unauthenticated);
    }
    let expected = hex::encode(mac(secret, t, payload));
    let matches = candidates.iter().any(|c| {
        c.len() == expected.len()
            && c.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if matches {
        Ok(())
    } else {
        Err(Error::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_long_key_is_hashed_first() {
        // RFC 4231 test case 6: a 131-byte key of 0xaa.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tampered_late_or_malformed_deliveries_are_refused() {
        let now = Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap();
        let tolerance = Duration::minutes(5);
        let header = sign(b"s1", now, b"{}");
        assert!(verify(b"s1", &header, b"{}", now, tolerance).is_ok());
        assert!(verify(b"s2", &header, b"{}", now, tolerance).is_err());
        assert!(verify(b"s1", &header, b"{ }", now, tolerance).is_err());
        let replay = now + Duration::minutes(5) + Duration::seconds(1);
        assert!(verify(b"s1", &header, b"{}", replay, tolerance).is_err());
        let early = now - Duration::minutes(6);
        assert!(verify(b"s1", &header, b"{}", early, tolerance).is_err());
        for bad in ["", "v1=abc", "t=x,v1=00", "t=1"] {
            assert!(verify(b"s1", bad, b"{}", now, tolerance).is_err(), "{bad}");
        }
        // A rotated secret: the sender may send several v1 values.
        let old = sign(b"old", now, b"{}");
        let both = format!("{header},{}", old.split_once(',').unwrap().1);
        assert!(verify(b"old", &both, b"{}", now, tolerance).is_ok());
    }
}
