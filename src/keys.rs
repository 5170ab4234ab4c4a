//! Keys the host supplies: a [`KeyProvider`] hands out 256-bit
//! key-encryption keys by version. bursar uses them to sign audit
//! checkpoints ([`AuditLogRepository::checkpoint`](crate::audit::AuditLogRepository::checkpoint)),
//! each use with its own key derived from the provider's key, so one key
//! never serves two purposes.
//!
//! [`StaticKeyring`] is the default provider: keys given as bytes or read
//! from an environment variable. A host keeping its keys in a KMS implements
//! [`KeyProvider`] itself. Key bytes are zeroized when dropped and never
//! printed: `Debug` shows versions only.
//!
//! ```
//! use bursar::keys::{KeyProvider, StaticKeyring};
//! let ring = StaticKeyring::new(1, [7u8; 32]).with_key(2, [9u8; 32]).current(2);
//! assert_eq!(ring.current_version(), 2);
//! assert!(!format!("{ring:?}").contains('7'));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// A 256-bit key, zeroized when dropped.
pub type KeyBytes = Zeroizing<[u8; 32]>;

/// Hands out key-encryption keys by version.
///
/// Versions are positive. [`KeyProvider::current_version`] is the key new
/// data is protected with; older versions stay available for reading until
/// everything was moved to the current one.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The version new data is protected with.
    fn current_version(&self) -> u32;

    /// The key of `version`.
    ///
    /// # Errors
    /// [`Error::Crypto`] when the provider does not hold that version.
    fn key(&self, version: u32) -> Result<KeyBytes>;
}

/// Keys held in memory, by version.
#[derive(Clone)]
pub struct StaticKeyring {
    keys: BTreeMap<u32, KeyBytes>,
    current: u32,
}

impl fmt::Debug for StaticKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeyring")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl StaticKeyring {
    /// A keyring holding one key, `version`, which is current.
    #[must_use]
    pub fn new(version: u32, key: [u8; 32]) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(version, Zeroizing::new(key));
        Self {
            keys,
            current: version,
        }
    }

    /// Adds (or replaces) the key of `version`; the current version stays.
    #[must_use]
    pub fn with_key(mut self, version: u32, key: [u8; 32]) -> Self {
        self.keys.insert(version, Zeroizing::new(key));
        self
    }

    /// Makes `version` the current one.
    #[must_use]
    pub fn current(mut self, version: u32) -> Self {
        self.current = version;
        self
    }

    /// Reads keys from the environment variable `var`: a comma-separated
    /// list of `version:hex` pairs (64 hex digits each); the highest version
    /// is current. Example: `BURSAR_KEYS=1:00ff…,2:a1b2…`.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `var`) when the variable is unset or
    /// malformed; the message never repeats key material.
    pub fn from_env(var: &str) -> Result<Self> {
        let raw = Zeroizing::new(
            std::env::var(var)
                .map_err(|_| Error::invalid(var, "is not set (expected version:hex,...)"))?,
        );
        Self::parse(var, &raw)
    }

    /// Parses the `version:hex,...` form of [`StaticKeyring::from_env`].
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `field`; never repeats key material.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        let mut keys = BTreeMap::new();
        for (i, pair) in text.split(',').map(str::trim).enumerate() {
            let (version, hex) = pair
                .split_once(':')
                .ok_or_else(|| Error::invalid(field, format!("entry {i} is not version:hex")))?;
            let version: u32 = version.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                Error::invalid(field, format!("entry {i} has no positive version"))
            })?;
            let key = decode_key(hex).ok_or_else(|| {
                Error::invalid(field, format!("key version {version} is not 64 hex digits"))
            })?;
            if keys.insert(version, key).is_some() {
                return Err(Error::invalid(
                    field,
                    format!("key version {version} appears twice"),
                ));
            }
        }
        let current = *keys
            .keys()
            .next_back()
            .ok_or_else(|| Error::invalid(field, "holds no key"))?;
        Ok(Self { keys, current })
    }
}

fn decode_key(hex: &str) -> Option<KeyBytes> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        key[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(key)
}

impl KeyProvider for StaticKeyring {
    fn current_version(&self) -> u32 {
        self.current
    }

    fn key(&self, version: u32) -> Result<KeyBytes> {
        self.keys
            .get(&version)
            .cloned()
            .ok_or_else(|| Error::Crypto {
                reason: format!("key version {version} is not available"),
            })
    }
}

/// A key for one `purpose`, derived from the provider's key of `version`
/// (HMAC-SHA-256 of the purpose under that key).
pub(crate) fn derive(provider: &dyn KeyProvider, version: u32, purpose: &str) -> Result<KeyBytes> {
    let root = provider.key(version)?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(root.as_slice()).map_err(|_| Error::Crypto {
            reason: "key of the wrong length".into(),
        })?;
    mac.update(purpose.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// HMAC-SHA-256 of `message` under `key`.
pub(crate) fn sign(key: &KeyBytes, message: &[u8]) -> Result<Vec<u8>> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()).map_err(|_| Error::Crypto {
            reason: "key of the wrong length".into(),
        })?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Checks an HMAC-SHA-256 `tag` of `message` under `key`, in constant time.
pub(crate) fn verify(key: &KeyBytes, message: &[u8], tag: &[u8]) -> bool {
    <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice())
        .map(|mut mac| {
            mac.update(message);
            mac.verify_slice(tag).is_ok()
        })
        .unwrap_or(false)
}
