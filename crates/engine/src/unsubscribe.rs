//! Signed unsubscribe links (SPEC §6): a token names the account and the
//! contact and carries an HMAC-SHA-256 of both under a secret every host of
//! the database shares, so it cannot be forged or altered.

use sha2::{Digest, Sha256};

use super::{Engine, EngineError, Result, Signal, SignalKind};

/// The name of the signing secret in the store.
const SECRET: &str = "unsubscribe-link";

/// HMAC-SHA-256 (RFC 2104).
pub(crate) fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

fn payload(account_id: &str, contact_id: &str) -> String {
    format!("{account_id}:{contact_id}")
}

impl Engine {
    /// The token of a contact's unsubscribe link (`/u/{token}`).
    ///
    /// # Errors
    ///
    /// A store error reading the signing secret.
    pub async fn unsubscribe_token(&self, account_id: &str, contact_id: &str) -> Result<String> {
        let secret = self.store().host_secret(SECRET, self.now()).await?;
        let payload = payload(account_id, contact_id);
        let mac = hmac(secret.as_bytes(), payload.as_bytes());
        Ok(format!("{}.{}", hex::encode(payload), hex::encode(&mac[..16])))
    }

    /// Unsubscribes the contact a token names: their email opt-out is set
    /// and their running enrollments end `opted_out`. Using a link twice
    /// is harmless.
    ///
    /// # Errors
    ///
    /// [`EngineError::Invalid`] for a token that is malformed, altered or
    /// forged; [`EngineError::NotFound`] when the contact is gone.
    pub async fn unsubscribe(&self, token: &str) -> Result<()> {
        let invalid = || EngineError::Invalid("this unsubscribe link is not valid".into());
        let (payload_hex, mac_hex) = token.split_once('.').ok_or_else(invalid)?;
        let payload = hex::decode(payload_hex).ok().and_then(|p| String::from_utf8(p).ok()).ok_or_else(invalid)?;
        let mac = hex::decode(mac_hex).map_err(|_| invalid())?;
        let secret = self.store().host_secret(SECRET, self.now()).await?;
        let expected = hmac(secret.as_bytes(), payload.as_bytes());
        // Constant time: every byte is compared whatever the first mismatch.
        let matches = mac.len() == 16 && mac.iter().zip(&expected[..16]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !matches {
            return Err(invalid());
        }
        let (account_id, contact_id) = payload.split_once(':').ok_or_else(invalid)?;
        let signal = Signal {
            kind: SignalKind::Unsubscribe,
            contact_id: contact_id.to_owned(),
            enrollment_id: None,
            action_id: None,
            return_date: None,
        };
        self.signal(account_id, &signal).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::hmac;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
