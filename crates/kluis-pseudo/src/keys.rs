//! The master key, project keys and the AEAD that seals project keys under the master key.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{KeyInit, Mac};
use rand::TryRng;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::PseudoError;

type HmacSha256 = hmac::Hmac<Sha256>;

/// 32 bytes from the operating system's generator. Keys are the one random choice kluis does not
/// seed: a reproducible key would be a guessable key.
fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, PseudoError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    rand::rngs::SysRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|e| PseudoError::Random(e.to_string()))?;
    Ok(bytes)
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The state directory's master key. It never encrypts data itself: it seals project keys and
/// derives purpose-bound subkeys (for example the audit log's anchor key).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn generate() -> Result<Self, PseudoError> {
        Ok(MasterKey(*random_bytes::<32>()?))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    /// The raw bytes, only for writing the master key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A subkey for one purpose (domain-separated HMAC), e.g. `"audit-anchor"`.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        hmac(&self.0, &[b"kluis-master-derive-v1\0", purpose.as_bytes()])
    }

    /// The keys of provider-internal person numbers (see [`ProviderPersons`]).
    pub fn provider_persons(&self) -> ProviderPersons {
        let key = self.derive("provider-person-numbers");
        ProviderPersons(Pseudonymiser(
            HmacSha256::new_from_slice(key.as_slice()).expect("HMAC takes any key length"),
        ))
    }

    /// The seal of a stored record that decides what may happen (an authorisation as
    /// registered, a project's rule set; later accounts and their roles): HMAC-SHA-256, under a
    /// subkey of its own, over `kind` and every field, each length-prefixed so no two different
    /// records encode alike. Whoever edits the record without the master key cannot make its
    /// seal again.
    pub fn seal_record(&self, kind: &str, fields: &[&[u8]]) -> [u8; 32] {
        self.record_mac(kind, fields).finalize().into_bytes().into()
    }

    /// Whether `seal` is the seal of this record (compared in constant time).
    pub fn record_seal_matches(&self, kind: &str, fields: &[&[u8]], seal: &[u8]) -> bool {
        self.record_mac(kind, fields).verify_slice(seal).is_ok()
    }

    fn record_mac(&self, kind: &str, fields: &[&[u8]]) -> HmacSha256 {
        let key = self.derive("record-seal");
        let mut mac = HmacSha256::new_from_slice(key.as_ref()).expect("HMAC takes any key length");
        mac.update(b"kluis-record-seal-v1\0");
        for part in std::iter::once(kind.as_bytes()).chain(fields.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    fn sealing_cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(self.derive("key-store").as_ref()).expect("a 32-byte key")
    }

    /// Encrypts a project key. `context` (the project id and key generation) is bound as
    /// associated data, so a sealed key copied to another project's record does not open.
    pub fn seal(&self, context: &str, key: &ProjectKey) -> Result<SealedKey, PseudoError> {
        let nonce = random_bytes::<24>()?;
        let ciphertext = self
            .sealing_cipher()
            .encrypt(
                &XNonce::from(*nonce),
                Payload {
                    msg: &key.0,
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts 32 bytes");
        Ok(SealedKey {
            nonce: *nonce,
            ciphertext,
        })
    }

    pub fn open(&self, context: &str, sealed: &SealedKey) -> Result<ProjectKey, PseudoError> {
        let fail = || PseudoError::KeyDoesNotOpen {
            context: context.to_owned(),
        };
        let plain = Zeroizing::new(
            self.sealing_cipher()
                .decrypt(
                    &XNonce::from(sealed.nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: context.as_bytes(),
                    },
                )
                .map_err(|_| fail())?,
        );
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| fail())?;
        Ok(ProjectKey(bytes))
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// A project key as stored: nonce and ciphertext (32 bytes of key plus a 16-byte tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub nonce: [u8; 24],
    pub ciphertext: Vec<u8>,
}

/// A project's 256-bit secret. It is not `Clone` and not printable; its bytes are wiped when it
/// is dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ProjectKey([u8; 32]);

impl ProjectKey {
    pub fn generate() -> Result<Self, PseudoError> {
        Ok(ProjectKey(*random_bytes::<32>()?))
    }

    /// A key from known bytes, for tests and benchmarks that need reproducible pseudonyms.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ProjectKey(bytes)
    }

    /// A short public name for this key (first 8 bytes of a domain-separated HMAC, hex): audit
    /// entries and `project show` use it to say *which* key without revealing anything of it.
    pub fn key_id(&self) -> String {
        let digest = hmac(&self.0, &[b"kluis-key-id-v1"]);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// HMAC-SHA-256 of an INSZ in its canonical form (11 ASCII digits, no separators).
    pub fn pseudonym_hmac(&self, insz: &str) -> [u8; 32] {
        self.pseudonymiser().hmac_str(insz)
    }

    /// The same as [`ProjectKey::pseudonym_hmac`] for an INSZ held as a number.
    pub fn pseudonym_hmac_u64(&self, insz: u64) -> [u8; 32] {
        self.pseudonymiser().hmac_u64(insz)
    }

    /// The HMAC with the key already absorbed, to pseudonymise many INSZ numbers quickly (and
    /// from several threads: it is `Clone + Send + Sync`).
    pub fn pseudonymiser(&self) -> Pseudonymiser {
        Pseudonymiser(HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length"))
    }

    /// A subkey for one purpose, e.g. encrypting the pseudonym map.
    pub(crate) fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        hmac(&self.0, &[b"kluis-project-derive-v1\0", purpose.as_bytes()])
    }

    #[cfg(test)]
    pub(crate) fn bytes_for_test(&self) -> [u8; 32] {
        self.0
    }

    /// The raw key, only with the `test-support` feature: for tests that prove the key appears
    /// nowhere but in the sealed store.
    #[cfg(feature = "test-support")]
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProjectKey(..)")
    }
}

/// The keys of provider-internal person numbers, for the provider-wide release ledger: the
/// first 64 bits of an HMAC of the INSZ under a subkey of the master key. They are the same in
/// every project (so two projects' released cells can be compared person by person), outlive
/// every project key (the ledger keeps released cells after a project is shredded), and never
/// leave the state directory, where the state gives each a dense number. Two persons share a
/// key with a chance of about 10⁻⁶ in a population of five million; a run checks that its own
/// population's keys are distinct.
#[derive(Clone)]
pub struct ProviderPersons(Pseudonymiser);

impl ProviderPersons {
    pub fn key(&self, insz: u64) -> u64 {
        let mac = self.0.hmac_u64(insz);
        u64::from_be_bytes(mac[..8].try_into().expect("eight bytes"))
    }
}

/// HMAC-SHA-256 keyed with a project key, ready to absorb INSZ numbers.
#[derive(Clone)]
pub struct Pseudonymiser(HmacSha256);

impl Pseudonymiser {
    pub fn hmac_str(&self, insz: &str) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(insz.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Formats the number as 11 digits (leading zeros kept) without allocating, so the result
    /// equals [`Pseudonymiser::hmac_str`] of the canonical text.
    pub fn hmac_u64(&self, insz: u64) -> [u8; 32] {
        let mut digits = [b'0'; 11];
        let mut rest = insz;
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let mut mac = self.0.clone();
        mac.update(&digits);
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_seal_changes_with_every_field_and_key() {
        let master = MasterKey::from_bytes([3; 32]);
        let seal = master.seal_record("project", &[b"99-001", b"text"]);
        assert!(master.record_seal_matches("project", &[b"99-001", b"text"], &seal));
        // Another kind, field, split of the same bytes, or master key: no match.
        for (kind, fields) in [
            ("account", &[&b"99-001"[..], b"text"][..]),
            ("project", &[b"99-001", b"texT"]),
            ("project", &[b"99-001t", b"ext"]),
            ("project", &[b"99-001", b"text", b""]),
        ] {
            assert!(
                !master.record_seal_matches(kind, fields, &seal),
                "{kind} {fields:?}"
            );
        }
        let other = MasterKey::from_bytes([4; 32]);
        assert!(!other.record_seal_matches("project", &[b"99-001", b"text"], &seal));
    }

    #[test]
    fn a_sealed_key_opens_only_under_its_master_key_and_context() {
        let master = MasterKey::generate().unwrap();
        let key = ProjectKey::generate().unwrap();
        let sealed = master.seal("23-224#1", &key).unwrap();
        assert_eq!(
            master.open("23-224#1", &sealed).unwrap().bytes_for_test(),
            key.bytes_for_test()
        );
        assert!(master.open("23-224#2", &sealed).is_err());
        assert!(
            MasterKey::generate()
                .unwrap()
                .open("23-224#1", &sealed)
                .is_err()
        );
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert!(master.open("23-224#1", &altered).is_err());
    }

    #[test]
    fn the_sealed_key_does_not_contain_the_key() {
        let master = MasterKey::generate().unwrap();
        let key = ProjectKey::generate().unwrap();
        let sealed = master.seal("p", &key).unwrap();
        let raw = key.bytes_for_test();
        assert!(!sealed.ciphertext.windows(32).any(|w| w == raw));
    }

    #[test]
    fn fresh_keys_differ() {
        let a = ProjectKey::generate().unwrap();
        let b = ProjectKey::generate().unwrap();
        assert_ne!(a.bytes_for_test(), b.bytes_for_test());
        assert_ne!(a.key_id(), b.key_id());
        assert_eq!(a.key_id().len(), 16);
    }

    #[test]
    fn pseudonyms_depend_on_the_key_and_the_insz() {
        let a = ProjectKey::from_bytes([1; 32]);
        let b = ProjectKey::from_bytes([2; 32]);
        assert_eq!(
            a.pseudonym_hmac("93051822361"),
            a.pseudonym_hmac("93051822361")
        );
        assert_ne!(
            a.pseudonym_hmac("93051822361"),
            b.pseudonym_hmac("93051822361")
        );
        assert_ne!(
            a.pseudonym_hmac("93051822361"),
            a.pseudonym_hmac("93051822460")
        );
    }

    #[test]
    fn numeric_and_text_insz_give_the_same_pseudonym() {
        let key = ProjectKey::from_bytes([3; 32]);
        assert_eq!(
            key.pseudonym_hmac_u64(93051822361),
            key.pseudonym_hmac("93051822361")
        );
        // Leading zeros belong to the canonical form (people born in 2000-2009).
        assert_eq!(
            key.pseudonym_hmac_u64(1_020_300_457),
            key.pseudonym_hmac("01020300457")
        );
    }

    #[test]
    fn the_pseudonym_is_the_standard_hmac_sha256() {
        // RFC 4231 test case 2: HMAC pads the key "Jefe" with zeros, so these 32 bytes are the
        // same key, and the result must be the published one.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex::encode(ProjectKey::from_bytes(key).pseudonym_hmac("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn debug_output_hides_keys() {
        let key = ProjectKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "ProjectKey(..)");
        assert_eq!(
            format!("{:?}", MasterKey::from_bytes([0xab; 32])),
            "MasterKey(..)"
        );
    }

    #[test]
    fn subkeys_are_bound_to_their_purpose() {
        let master = MasterKey::from_bytes([5; 32]);
        assert_ne!(*master.derive("audit-anchor"), *master.derive("key-store"));
        assert_ne!(*master.derive("audit-anchor"), *master.as_bytes());
    }
}
