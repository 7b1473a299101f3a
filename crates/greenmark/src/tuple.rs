//! `(seed, token)` tuple fingerprints and the pass-through hasher of the sets that hold them:
//! a leaf module that detection, seeding and radioactivity all use, so none of them depends on
//! another for it.

use std::hash::Hasher;

/// Fingerprints are already uniformly mixed 64-bit values; hashing them again is wasted work.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// A 64-bit fingerprint of a `(seed, token)` tuple. Seeds are PRF outputs, so two distinct
/// tuples collide with probability about 2^-64.
#[inline(always)]
pub(crate) fn fingerprint(seed: u64, token: u32) -> u64 {
    let mut x = seed ^ u64::from(token).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 32;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^= x >> 32;
    x
}
