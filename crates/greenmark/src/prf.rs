//! SipHash-2-4 over short sequences of `u32` words: the keyed PRF behind every seed.
//!
//! Specialised for what seeding hashes (one to sixteen token ids), it hashes the little-endian
//! bytes of the words exactly as reference SipHash-2-4 hashes a byte string, without the
//! `Hasher` trait's buffering. The test module checks it against the `siphasher` crate.

#[derive(Clone)]
pub(crate) struct SipKey {
    k0: u64,
    k1: u64,
}

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

impl SipKey {
    pub(crate) fn new(subkey: &[u8; 32]) -> SipKey {
        let k0 = u64::from_le_bytes(subkey[0..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(subkey[8..16].try_into().expect("8 bytes"));
        SipKey { k0, k1 }
    }

    #[inline(always)]
    fn init(&self) -> [u64; 4] {
        [
            self.k0 ^ 0x736f6d6570736575,
            self.k1 ^ 0x646f72616e646f6d,
            self.k0 ^ 0x6c7967656e657261,
            self.k1 ^ 0x7465646279746573,
        ]
    }

    #[inline(always)]
    fn compress(v: &mut [u64; 4], m: u64) {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    }

    #[inline(always)]
    fn finish(mut v: [u64; 4], last: u64) -> u64 {
        Self::compress(&mut v, last);
        v[2] ^= 0xff;
        round(&mut v);
        round(&mut v);
        round(&mut v);
        round(&mut v);
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// SipHash-2-4 of the little-endian bytes of `words`.
    #[inline]
    pub(crate) fn hash_words(&self, words: &[u32]) -> u64 {
        let mut v = self.init();
        let mut pairs = words.chunks_exact(2);
        for pair in &mut pairs {
            Self::compress(&mut v, u64::from(pair[0]) | u64::from(pair[1]) << 32);
        }
        let tail = pairs.remainder().first().map_or(0, |&w| u64::from(w));
        let len = (words.len() as u64).wrapping_mul(4);
        Self::finish(v, tail | len << 56)
    }

    /// SipHash-2-4 of one word's 4 bytes.
    #[inline(always)]
    pub(crate) fn hash1(&self, a: u32) -> u64 {
        Self::finish(self.init(), u64::from(a) | 4 << 56)
    }

    /// SipHash-2-4 of two words' 8 bytes.
    #[inline(always)]
    pub(crate) fn hash2(&self, a: u32, b: u32) -> u64 {
        let mut v = self.init();
        Self::compress(&mut v, u64::from(a) | u64::from(b) << 32);
        Self::finish(v, 8 << 56)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    fn reference(key: &[u8; 32], words: &[u32]) -> u64 {
        let mut k = [0u8; 16];
        k.copy_from_slice(&key[..16]);
        let mut h = siphasher::sip::SipHasher24::new_with_key(&k);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        h.write(&bytes);
        h.finish()
    }

    #[test]
    fn matches_reference_siphash_2_4() {
        let key: [u8; 32] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        let sip = SipKey::new(&key);
        for n in 0..20u32 {
            let words: Vec<u32> = (0..n).map(|i| i.wrapping_mul(2654435761) ^ n).collect();
            assert_eq!(sip.hash_words(&words), reference(&key, &words), "n={n}");
        }
        for (a, b) in [(0, 0), (1, 2), (u32::MAX, 7), (49151, 128255)] {
            assert_eq!(sip.hash1(a), reference(&key, &[a]));
            assert_eq!(sip.hash2(a, b), reference(&key, &[a, b]));
        }
    }
}
