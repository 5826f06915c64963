//! Password hashes as RabbitMQ keeps them: a 4-byte random salt followed by the hash of the salt
//! and the password, with SHA-256 (the default), SHA-512 or MD5 (older RabbitMQ versions), so
//! hashes exported from RabbitMQ log their users in unchanged.

use std::fmt;

use sha2::{Digest, Sha256, Sha512};

/// A hash function RabbitMQ names in definitions (`hashing_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgorithm {
    /// `rabbit_password_hashing_sha256`, RabbitMQ's default since 3.6.
    #[default]
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
    /// `rabbit_password_hashing_md5`, RabbitMQ before 3.6.
    Md5,
}

impl HashAlgorithm {
    /// RabbitMQ's name of the algorithm.
    pub fn rabbit_name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
            HashAlgorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    /// The algorithm RabbitMQ names so; None for one Warren does not know.
    pub fn from_rabbit_name(name: &str) -> Option<HashAlgorithm> {
        [HashAlgorithm::Sha256, HashAlgorithm::Sha512, HashAlgorithm::Md5]
            .into_iter()
            .find(|a| a.rabbit_name() == name)
    }

    /// How many bytes a hash is (after the 4-byte salt).
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
            HashAlgorithm::Md5 => 16,
        }
    }

    fn hash(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => {
                Sha256::new().chain_update(salt).chain_update(password).finalize().to_vec()
            }
            HashAlgorithm::Sha512 => {
                Sha512::new().chain_update(salt).chain_update(password).finalize().to_vec()
            }
            HashAlgorithm::Md5 => {
                use md5::Md5;
                Md5::new().chain_update(salt).chain_update(password).finalize().to_vec()
            }
        }
    }
}

/// A user's salted password hash; empty: the user has no password and can only log in with a
/// certificate (EXTERNAL).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PasswordHash {
    /// The hash function.
    pub algorithm: HashAlgorithm,
    /// Salt (4 bytes) then hash; empty for no password.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never in logs, even hashed.
        f.debug_struct("PasswordHash").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// A freshly salted SHA-256 hash of `password`; the empty password gives no password, as
    /// RabbitMQ refuses blank passwords at login.
    pub fn new(password: &str) -> PasswordHash {
        if password.is_empty() {
            return PasswordHash::none();
        }
        let salt: [u8; 4] = rand::random();
        let algorithm = HashAlgorithm::Sha256;
        let mut bytes = salt.to_vec();
        bytes.extend(algorithm.hash(&salt, password.as_bytes()));
        PasswordHash { algorithm, bytes }
    }

    /// No password: only a certificate logs the user in.
    pub fn none() -> PasswordHash {
        PasswordHash::default()
    }

    /// Whether `password` is this one. A blank password never is (RabbitMQ refuses them).
    pub fn check(&self, password: &str) -> bool {
        if password.is_empty() || self.bytes.len() <= 4 {
            return false;
        }
        let (salt, hash) = self.bytes.split_at(4);
        let computed = self.algorithm.hash(salt, password.as_bytes());
        // Not constant-time in the length (public: the algorithm's), constant in the contents.
        computed.len() == hash.len() && computed.iter().zip(hash).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Salt then hash, for each algorithm; the definitions import tests check hashes RabbitMQ
    /// itself exported.
    #[test]
    fn salted_hashes_check_out() {
        let salt = [0x90, 0x8D, 0xC6, 0x0A];
        for algorithm in [HashAlgorithm::Sha256, HashAlgorithm::Sha512, HashAlgorithm::Md5] {
            let mut bytes = salt.to_vec();
            bytes.extend(algorithm.hash(&salt, b"s3cret"));
            let hash = PasswordHash { algorithm, bytes };
            assert!(hash.check("s3cret"), "{algorithm:?}");
            assert!(!hash.check("s3cre"), "{algorithm:?}");
            assert!(!hash.check(""), "{algorithm:?}");
        }
        for algorithm in [HashAlgorithm::Sha256, HashAlgorithm::Sha512, HashAlgorithm::Md5] {
            assert_eq!(algorithm.hash(&salt, b"x").len(), algorithm.digest_len());
        }
    }

    #[test]
    fn fresh_hashes_are_salted_and_blank_is_no_password() {
        let a = PasswordHash::new("pw");
        let b = PasswordHash::new("pw");
        assert!(a.check("pw") && b.check("pw") && !a.check("pW"));
        assert_eq!(a.bytes.len(), 4 + 32);
        assert_ne!(a.bytes, b.bytes, "salted");
        assert_eq!(PasswordHash::new(""), PasswordHash::none());
        assert!(!PasswordHash::none().check("anything"));
        for name in [
            "rabbit_password_hashing_sha256",
            "rabbit_password_hashing_sha512",
            "rabbit_password_hashing_md5",
        ] {
            assert_eq!(HashAlgorithm::from_rabbit_name(name).unwrap().rabbit_name(), name);
        }
        assert_eq!(HashAlgorithm::from_rabbit_name("bcrypt"), None);
        assert!(!format!("{a:?}").contains("bytes"), "no hash in Debug");
    }
}
