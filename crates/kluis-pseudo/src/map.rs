//! The pseudonym map: INSZ → sequence number, built from the ranks of the keyed HMACs, and kept
//! on the provider's side encrypted under (a subkey of) the project key.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{INSZ_LIMIT, ProjectKey, PseudoError, Pseudonymiser, io_error};

const MAGIC: &[u8; 9] = b"KLUISMAP\x01";

/// Parses an INSZ in its canonical form: exactly 11 ASCII digits.
pub fn parse_insz(text: &str) -> Option<u64> {
    (text.len() == 11 && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

/// Every person of a population with their sequence number. Numbers run 1..=N in the order of
/// the persons' HMACs under the project key, so they say nothing about the INSZ. The map is
/// wiped from memory when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PseudonymMap {
    /// Distinct INSZ numbers, ascending (for lookup by binary search).
    insz: Vec<u64>,
    /// `numbers[i]` is the sequence number of `insz[i]`.
    numbers: Vec<u32>,
}

impl PseudonymMap {
    /// Numbers a population. Duplicates (a person seen in several years) count once. The HMACs
    /// are computed on all available cores.
    pub fn build(
        key: &ProjectKey,
        population: impl IntoIterator<Item = u64>,
    ) -> Result<Self, PseudoError> {
        let mut insz: Vec<u64> = population.into_iter().collect();
        if let Some(position) = insz.iter().position(|&n| n >= INSZ_LIMIT) {
            insz.zeroize();
            return Err(PseudoError::BadInsz { position });
        }
        insz.sort_unstable();
        insz.dedup();
        let count = u32::try_from(insz.len()).expect("a population fits in u32");

        let pseudonymiser = key.pseudonymiser();
        let prefixes = hmac_prefixes(&pseudonymiser, &insz);
        // Rank by HMAC. Sorting on the first 8 bytes is exact unless two of them tie; then the
        // full HMACs decide (a tie on all 32 bytes would need two equal INSZ, removed above).
        let mut order: Vec<(u64, u32)> = prefixes.into_iter().zip(0..count).collect::<Vec<_>>();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                pseudonymiser
                    .hmac_u64(insz[a.1 as usize])
                    .cmp(&pseudonymiser.hmac_u64(insz[b.1 as usize]))
            })
        });
        let mut numbers = vec![0u32; insz.len()];
        for (rank, &(_, index)) in order.iter().enumerate() {
            numbers[index as usize] = rank as u32 + 1;
        }
        Ok(PseudonymMap { insz, numbers })
    }

    /// Parses canonical INSZ texts (11 digits) and numbers them; see [`PseudonymMap::build`].
    pub fn build_from_text<'a>(
        key: &ProjectKey,
        population: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, PseudoError> {
        let mut parsed = Vec::new();
        for (position, text) in population.into_iter().enumerate() {
            match parse_insz(text) {
                Some(n) => parsed.push(n),
                None => {
                    parsed.zeroize();
                    return Err(PseudoError::BadInsz { position });
                }
            }
        }
        let map = Self::build(key, parsed.iter().copied());
        parsed.zeroize();
        map
    }

    pub fn len(&self) -> usize {
        self.insz.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insz.is_empty()
    }

    /// The sequence number of a person, if they are in the population.
    pub fn number(&self, insz: u64) -> Option<u32> {
        self.insz.binary_search(&insz).ok().map(|i| self.numbers[i])
    }

    /// (INSZ, sequence number) pairs in INSZ order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.insz.iter().copied().zip(self.numbers.iter().copied())
    }

    /// Writes the map encrypted under a subkey of the project key (XChaCha20-Poly1305), to a
    /// temporary file beside `path` (mode 0600) that is renamed into place when complete.
    pub fn save(&self, key: &ProjectKey, path: &Path) -> Result<(), PseudoError> {
        let mut buffer = Zeroizing::new(Vec::with_capacity(8 + self.len() * 12 + 16));
        buffer.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for &n in &self.insz {
            buffer.extend_from_slice(&n.to_le_bytes());
        }
        for &n in &self.numbers {
            buffer.extend_from_slice(&n.to_le_bytes());
        }
        let mut nonce = [0u8; 24];
        rand::rngs::SysRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| PseudoError::Random(e.to_string()))?;
        cipher(key)
            .encrypt_in_place(&XNonce::from(nonce), MAGIC, &mut *buffer)
            .expect("the map fits XChaCha20-Poly1305's message limit");

        let dir = path.parent().unwrap_or(Path::new("."));
        let mut temp = tempfile::Builder::new()
            .prefix(".pseudonyms-")
            .tempfile_in(dir)
            .map_err(io_error(dir))?;
        set_private(temp.as_file()).map_err(io_error(temp.path()))?;
        let file = temp.as_file_mut();
        file.write_all(MAGIC)
            .and_then(|()| file.write_all(&nonce))
            .and_then(|()| file.write_all(&buffer))
            .and_then(|()| file.sync_all())
            .map_err(io_error(path))?;
        temp.persist(path).map_err(|e| PseudoError::Io {
            path: path.display().to_string(),
            error: e.error,
        })?;
        Ok(())
    }

    /// Reads a map written by [`PseudonymMap::save`]; fails if the key is not the one it was
    /// written with or the file was altered.
    pub fn load(key: &ProjectKey, path: &Path) -> Result<Self, PseudoError> {
        let bad = |reason: &str| PseudoError::BadMap {
            path: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        if bytes.len() < MAGIC.len() + 24 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not a kluis pseudonym map"));
        }
        let nonce = XNonce::try_from(&bytes[MAGIC.len()..MAGIC.len() + 24]).expect("24 bytes");
        let mut buffer = Zeroizing::new(bytes[MAGIC.len() + 24..].to_vec());
        cipher(key)
            .decrypt_in_place(&nonce, MAGIC, &mut *buffer)
            .map_err(|_| bad("does not open under this project's key (another key, or altered)"))?;
        let count = u64::from_le_bytes(buffer[..8].try_into().expect("8 bytes")) as usize;
        if buffer.len() != 8 + count * 12 {
            return Err(bad("length does not match its entry count"));
        }
        let (insz_bytes, number_bytes) = buffer[8..].split_at(count * 8);
        let insz = insz_bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let numbers = number_bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Ok(PseudonymMap { insz, numbers })
    }
}

impl std::fmt::Debug for PseudonymMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PseudonymMap({} persons)", self.len())
    }
}

fn cipher(key: &ProjectKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key.derive("pseudonym-map").as_ref()).expect("a 32-byte key")
}

#[cfg(unix)]
fn set_private(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// The first 8 bytes of each person's HMAC (big-endian, so they order like the HMAC), computed
/// in one chunk per core.
fn hmac_prefixes(pseudonymiser: &Pseudonymiser, insz: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; insz.len()];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = insz.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (input, output) in insz.chunks(chunk).zip(out.chunks_mut(chunk)) {
            let pseudonymiser = pseudonymiser.clone();
            scope.spawn(move || {
                for (n, prefix) in input.iter().zip(output) {
                    let hmac = pseudonymiser.hmac_u64(*n);
                    *prefix = u64::from_be_bytes(hmac[..8].try_into().expect("8 bytes"));
                }
            });
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population() -> Vec<u64> {
        // INSZ-shaped numbers: birth dates in ascending order, so the INSZ order is the
        // birth-date order the numbering must not reveal.
        (0..2000u64)
            .map(|i| 60_010_100_000 + i * 100_000 + (i % 97))
            .collect()
    }

    #[test]
    fn numbers_run_from_one_to_n_and_each_person_has_one() {
        let key = ProjectKey::from_bytes([9; 32]);
        let map = PseudonymMap::build(&key, population()).unwrap();
        assert_eq!(map.len(), 2000);
        let mut numbers: Vec<u32> = map.iter().map(|(_, n)| n).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=2000).collect::<Vec<_>>());
    }

    #[test]
    fn numbers_follow_the_hmac_order() {
        let key = ProjectKey::from_bytes([9; 32]);
        let map = PseudonymMap::build(&key, population()).unwrap();
        let mut by_hmac: Vec<(u64, [u8; 32])> = population()
            .into_iter()
            .map(|n| (n, key.pseudonym_hmac_u64(n)))
            .collect();
        by_hmac.sort_by_key(|&(_, h)| h);
        for (rank, (insz, _)) in by_hmac.into_iter().enumerate() {
            assert_eq!(map.number(insz), Some(rank as u32 + 1));
        }
    }

    #[test]
    fn numbers_do_not_follow_the_insz_order() {
        let key = ProjectKey::from_bytes([9; 32]);
        let map = PseudonymMap::build(&key, population()).unwrap();
        let in_insz_order: Vec<u32> = map.iter().map(|(_, n)| n).collect();
        // Count adjacent pairs (in INSZ order) whose numbers rise: about half if unrelated.
        let rising = in_insz_order.windows(2).filter(|w| w[0] < w[1]).count();
        assert!(
            (850..1150).contains(&rising),
            "{rising} of 1999 rising pairs"
        );
    }

    #[test]
    fn another_key_numbers_differently() {
        let a = PseudonymMap::build(&ProjectKey::from_bytes([1; 32]), population()).unwrap();
        let b = PseudonymMap::build(&ProjectKey::from_bytes([2; 32]), population()).unwrap();
        let same = a.iter().zip(b.iter()).filter(|(x, y)| x.1 == y.1).count();
        assert!(
            same < 20,
            "{same} persons kept their number under a new key"
        );
    }

    #[test]
    fn duplicates_count_once_and_input_order_does_not_matter() {
        let key = ProjectKey::from_bytes([4; 32]);
        let mut twice = population();
        twice.extend(population().into_iter().rev());
        let a = PseudonymMap::build(&key, twice).unwrap();
        let b = PseudonymMap::build(&key, population()).unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
    }

    #[test]
    fn text_input_gives_the_same_numbers_and_rejects_malformed_insz_without_showing_it() {
        let key = ProjectKey::from_bytes([4; 32]);
        let texts: Vec<String> = population().iter().map(|n| format!("{n:011}")).collect();
        let a = PseudonymMap::build_from_text(&key, texts.iter().map(String::as_str)).unwrap();
        let b = PseudonymMap::build(&key, population()).unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());

        let error = PseudonymMap::build_from_text(&key, ["93051822361", "93.05.18-223.61"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("number 1 "), "{error}");
        assert!(!error.contains("9305"), "{error}");
        assert!(matches!(
            PseudonymMap::build(&key, [INSZ_LIMIT]),
            Err(PseudoError::BadInsz { position: 0 })
        ));
    }

    #[test]
    fn a_saved_map_loads_only_with_its_key_and_holds_no_plain_insz() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pseudonyms.map");
        let key = ProjectKey::from_bytes([6; 32]);
        let map = PseudonymMap::build(&key, population()).unwrap();
        map.save(&key, &path).unwrap();

        let loaded = PseudonymMap::load(&key, &path).unwrap();
        assert_eq!(
            loaded.iter().collect::<Vec<_>>(),
            map.iter().collect::<Vec<_>>()
        );
        assert!(PseudonymMap::load(&ProjectKey::from_bytes([7; 32]), &path).is_err());

        let bytes = std::fs::read(&path).unwrap();
        let first = population()[0];
        assert!(!bytes.windows(8).any(|w| w == first.to_le_bytes()));
        assert!(
            !bytes
                .windows(11)
                .any(|w| w == format!("{first:011}").as_bytes())
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let mut altered = bytes.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        std::fs::write(&path, altered).unwrap();
        assert!(PseudonymMap::load(&key, &path).is_err());
    }

    #[test]
    fn parse_insz_takes_exactly_eleven_digits() {
        assert_eq!(parse_insz("93051822361"), Some(93051822361));
        assert_eq!(parse_insz("01020300457"), Some(1020300457));
        assert_eq!(parse_insz("9305182236"), None);
        assert_eq!(parse_insz("930518223610"), None);
        assert_eq!(parse_insz("93051822x61"), None);
        assert_eq!(parse_insz("+9305182236"), None);
    }
}
