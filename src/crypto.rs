//! Secrets at rest: signing secrets, basic-auth passwords and client keys are sealed with
//! XChaCha20-Poly1305 under a key from `HERALD_SECRET_KEY` or a key file in the data directory.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::Path;

const PREFIX: &str = "v1:";

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

fn decode_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .filter(|b| b.len() == 32)
        .or_else(|| B64.decode(text).ok())
        .ok_or_else(|| anyhow::anyhow!("HERALD_SECRET_KEY must be 32 bytes as hex or base64"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("HERALD_SECRET_KEY must be exactly 32 bytes"))
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// The configured key, or the key file in `data_dir` (created, readable only by its owner,
    /// on first start).
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(k) = configured {
            return Ok(Self::from_key(decode_key(k)?));
        }
        let path = data_dir.join("secret.key");
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            return Ok(Self::from_key(decode_key(&text)?));
        }
        std::fs::create_dir_all(data_dir)?;
        let key: [u8; 32] = rand::random();
        // Written whole into a file only its owner can read (tempfile creates it 0600), then
        // moved into place without overwriting: no moment in which the key is readable by
        // others or half-written, and of two processes starting at once the second reads the
        // first one's key instead of replacing it.
        let mut tmp = tempfile::NamedTempFile::new_in(data_dir)?;
        std::io::Write::write_all(&mut tmp, hex::encode(key).as_bytes())?;
        tmp.as_file().sync_all()?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => {
                tracing::info!(path = %path.display(), "created the secret key file");
                Ok(Self::from_key(key))
            }
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path)?;
                Ok(Self::from_key(decode_key(&text)?))
            }
            Err(e) => Err(e.error.into()),
        }
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory data");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Whether a stored value is sealed (and not plaintext from before it was).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| b.len() > 24)
            .ok_or_else(|| anyhow::anyhow!("malformed sealed secret"))?;
        let (nonce, ct) = raw.split_at(24);
        let pt = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| {
                anyhow::anyhow!("a secret could not be decrypted: wrong HERALD_SECRET_KEY?")
            })?;
        Ok(String::from_utf8(pt)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key() {
        let a = SecretBox::from_key([7; 32]);
        let sealed = a.seal("whsec_abc");
        assert!(sealed.starts_with("v1:") && !sealed.contains("whsec_abc"));
        assert_eq!(a.open(&sealed).unwrap(), "whsec_abc");
        assert!(SecretBox::from_key([8; 32]).open(&sealed).is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = SecretBox::load(None, dir.path()).unwrap().seal("x");
        let again = SecretBox::load(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "only its owner reads the key");
        }
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }
}
