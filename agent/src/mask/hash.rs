//! Keyed hash tokens: HMAC-SHA256 of a value under the deployment's key, shown as `tdk_` and the first 16 hex
//! digits, so that the same value always maps to the same token within a deployment and cannot be recovered or
//! confirmed without the key. The key comes from a file or an environment variable and is never written anywhere.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::policy::PolicyError;

/// Prefix of every hash token.
pub const TOKEN_PREFIX: &str = "tdk_";
/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;
/// The environment variable that may hold the key.
pub const KEY_ENV: &str = "TAPEDECK_MASK_KEY";

/// The secret key of a deployment. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskKey(Vec<u8>);

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskKey({} bytes)", self.0.len())
    }
}

impl MaskKey {
    /// A key from bytes; at least [`MIN_KEY_BYTES`] long.
    pub fn new(bytes: Vec<u8>) -> Result<Self, PolicyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(PolicyError::Key(format!("{} bytes is too short (at least {MIN_KEY_BYTES})", bytes.len())));
        }
        Ok(MaskKey(bytes))
    }

    /// Reads a key file; one trailing newline (`\n` or `\r\n`) is not part of the key.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let mut b = std::fs::read(path).map_err(|e| PolicyError::Key(format!("reading {}: {e}", path.display())))?;
        if b.ends_with(b"\n") {
            b.pop();
            if b.ends_with(b"\r") {
                b.pop();
            }
        }
        MaskKey::new(b).map_err(|e| PolicyError::Key(format!("{}: {e}", path.display())))
    }

    /// The key in [`KEY_ENV`], if set.
    pub fn from_env() -> Result<Option<Self>, PolicyError> {
        match std::env::var_os(KEY_ENV) {
            None => Ok(None),
            Some(v) => {
                MaskKey::new(v.into_encoded_bytes()).map(Some).map_err(|e| PolicyError::Key(format!("{KEY_ENV}: {e}")))
            }
        }
    }
}

/// Makes tokens under one key.
#[derive(Clone)]
pub struct Hasher {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher(..)")
    }
}

impl Hasher {
    /// A hasher keyed with `key`.
    pub fn new(key: &MaskKey) -> Self {
        // HMAC takes keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).unwrap_or_else(|_| unreachable!());
        Hasher { mac }
    }

    /// `tdk_` and the first 16 lower-case hex digits of HMAC-SHA256(key, value).
    pub fn token(&self, value: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(value);
        let out = mac.finalize().into_bytes();
        format!("{TOKEN_PREFIX}{}", super::policy::hex(&out[..8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_the_rfc_4231_hmac_truncated() {
        // RFC 4231 test case 2: key "Jefe" is too short for us, so test case 1's 20-byte key is used instead:
        // key = 0x0b * 20, data = "Hi There", HMAC-SHA256 = b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7.
        let h = Hasher::new(&MaskKey::new(vec![0x0b; 20]).unwrap());
        assert_eq!(h.token(b"Hi There"), "tdk_b0344c61d8db3853");
        assert_eq!(h.token(b"Hi There"), h.token(b"Hi There"));
        assert_ne!(h.token(b"Hi There"), h.token(b"Hi there"));
        let other = Hasher::new(&MaskKey::new(vec![0x0c; 20]).unwrap());
        assert_ne!(other.token(b"Hi There"), h.token(b"Hi There"));
    }

    #[test]
    fn short_keys_are_refused_and_the_key_is_not_shown() {
        assert!(MaskKey::new(b"short".to_vec()).is_err());
        let k = MaskKey::new(b"0123456789abcdef-secret".to_vec()).unwrap();
        assert!(!format!("{k:?}").contains("secret"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, b"0123456789abcdef-secret\n").unwrap();
        assert_eq!(MaskKey::from_file(&p).unwrap(), k);
    }
}
