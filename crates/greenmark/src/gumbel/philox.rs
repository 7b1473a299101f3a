//! Philox4x32-10 and the two keyed maps vLLM builds on it: context compression and the
//! per-token word.
//!
//! Philox4x32-10 is the counter-based generator of Salmon et al., "Parallel random numbers: as
//! easy as 1, 2, 3" (SC 2011): ten rounds of two 32x32 -> 64-bit multiplications over a
//! 128-bit counter, with a 64-bit key bumped by the Weyl constants between rounds. Its bits
//! here are the ones vLLM 0.33 uses (`vllm/v1/watermarking/prfs/philox.py`), pinned by the
//! known answers in `tests/vectors/vllm-watermarking-goldens.json`.

/// First multiplier.
const M0: u32 = 0xD251_1F53;
/// Second multiplier.
const M1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0.
const W0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1.
const W1: u32 = 0xBB67_AE85;
/// Domain tag of the context-compression state ("WMCX").
const CONTEXT_DOMAIN: u32 = 0x574D_4358;
/// Domain tag of the per-token key ("WMTK").
const TOKEN_DOMAIN: u32 = 0x574D_544B;

/// The padding word of a context position before the first generated token (`-1` as a
/// `u32`). No real vocabulary reaches it.
pub const PAD: u32 = u32::MAX;

/// `(high, low)` 32-bit halves of `a * b`.
#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32-10 of `counter` under `key`.
#[inline(always)]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        let (hi0, lo0) = mulhilo(M0, c0);
        let (hi1, lo1) = mulhilo(M1, c2);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        if round != 9 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
    }
    [c0, c1, c2, c3]
}

/// Positions processed together by `PhiloxPrf::uniforms`.
pub(crate) const LANES: usize = 8;

/// Philox4x32-10 of `LANES` independent counters and keys (structure of arrays). The lanes'
/// dependency chains interleave, and the loops vectorize (`pmuludq`), so this runs several
/// times faster per block than [`philox4x32_10`] one at a time; the bits are the same.
#[inline(always)]
fn philox_lanes(c: &mut [[u32; LANES]; 4], mut k: [[u32; LANES]; 2]) {
    for round in 0..10 {
        for l in 0..LANES {
            let p0 = u64::from(M0) * u64::from(c[0][l]);
            let p1 = u64::from(M1) * u64::from(c[2][l]);
            let n0 = (p1 >> 32) as u32 ^ c[1][l] ^ k[0][l];
            let n2 = (p0 >> 32) as u32 ^ c[3][l] ^ k[1][l];
            c[0][l] = n0;
            c[1][l] = p1 as u32;
            c[2][l] = n2;
            c[3][l] = p0 as u32;
        }
        if round != 9 {
            let [k0, k1] = &mut k;
            for (a, b) in k0.iter_mut().zip(k1.iter_mut()) {
                *a = a.wrapping_add(W0);
                *b = b.wrapping_add(W1);
            }
        }
    }
}

/// The keyed PRF of one 64-bit Philox key: context -> 128-bit state, (state, token) -> word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PhiloxPrf {
    k0: u32,
    k1: u32,
}

impl std::fmt::Debug for PhiloxPrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhiloxPrf(..)")
    }
}

impl PhiloxPrf {
    /// The PRF of a 64-bit key (`k0` = low word, `k1` = high word).
    pub fn new(key: u64) -> PhiloxPrf {
        PhiloxPrf {
            k0: key as u32,
            k1: (key >> 32) as u32,
        }
    }

    /// Compresses a context (oldest token first, [`PAD`] before the first generated token)
    /// into the 128-bit state that keys every token's word. Blocks of four words are XORed
    /// into the state and permuted under the key XOR the block's offset; a partial last block
    /// is filled with `0xFFFFFFFF - i`.
    #[inline]
    pub fn compress(&self, context: &[u32]) -> [u32; 4] {
        let mut state = [CONTEXT_DOMAIN, context.len() as u32, 0, 0];
        for (block_index, block) in context.chunks(4).enumerate() {
            let offset = (block_index * 4) as u32;
            let mut counter = state;
            for (i, word) in counter.iter_mut().enumerate() {
                *word ^= block.get(i).copied().unwrap_or(u32::MAX - i as u32);
            }
            state = philox4x32_10(counter, [self.k0 ^ offset, self.k1]);
        }
        state
    }

    /// The four words of tokens `4 b .. 4 b + 3` for a compressed context `state`.
    #[inline(always)]
    pub fn block(&self, state: &[u32; 4], b: u32) -> [u32; 4] {
        philox4x32_10(
            [b, state[0], state[1], state[2]],
            [self.k0 ^ state[3], self.k1 ^ TOKEN_DOMAIN],
        )
    }

    /// The 32-bit word of `token` for a compressed context `state`.
    #[inline(always)]
    pub fn word(&self, state: &[u32; 4], token: u32) -> u32 {
        self.block(state, token >> 2)[(token & 3) as usize]
    }

    /// The uniforms of `LANES` (context, token) pairs at once: `contexts[l]` is lane `l`'s
    /// context (all of one width), `tokens[l]` its token. Same bits as
    /// `uniform(&compress(contexts[l]), tokens[l])`.
    ///
    /// Performance (measured, 2 cores): the plain lane loops vectorize in a portable build,
    /// 4 ns a token for both Philox evaluations against 26 ns one at a time, but only when the
    /// context width is a compile-time constant (33 ns with a runtime width), hence the match
    /// on common widths. Copies compiled for AVX2 / AVX-512 with runtime dispatch (as `bias`
    /// does) were tried and were slower here (43 ns a token), so there are none.
    #[inline]
    pub(crate) fn uniforms(
        &self,
        contexts: &[&[u32]; LANES],
        tokens: &[u32; LANES],
    ) -> [f32; LANES] {
        match contexts[0].len() {
            1 => self.uniforms_of_width(1, contexts, tokens),
            2 => self.uniforms_of_width(2, contexts, tokens),
            3 => self.uniforms_of_width(3, contexts, tokens),
            4 => self.uniforms_of_width(4, contexts, tokens),
            5 => self.uniforms_of_width(5, contexts, tokens),
            8 => self.uniforms_of_width(8, contexts, tokens),
            16 => self.uniforms_of_width(16, contexts, tokens),
            w => self.uniforms_of_width(w, contexts, tokens),
        }
    }

    #[inline(always)]
    fn uniforms_of_width(
        &self,
        w: usize,
        contexts: &[&[u32]; LANES],
        tokens: &[u32; LANES],
    ) -> [f32; LANES] {
        let contexts: [&[u32]; LANES] = std::array::from_fn(|l| &contexts[l][..w]);
        let mut state = [
            [CONTEXT_DOMAIN; LANES],
            [w as u32; LANES],
            [0; LANES],
            [0; LANES],
        ];
        for offset in (0..w).step_by(4) {
            for (i, row) in state.iter_mut().enumerate() {
                for (l, word) in row.iter_mut().enumerate() {
                    *word ^= contexts[l]
                        .get(offset + i)
                        .copied()
                        .unwrap_or(u32::MAX - i as u32);
                }
            }
            philox_lanes(
                &mut state,
                [[self.k0 ^ offset as u32; LANES], [self.k1; LANES]],
            );
        }
        let mut key = [[0u32; LANES]; 2];
        let mut counter = [[0u32; LANES]; 4];
        for l in 0..LANES {
            key[0][l] = self.k0 ^ state[3][l];
            key[1][l] = self.k1 ^ TOKEN_DOMAIN;
            counter[0][l] = tokens[l] >> 2;
            counter[1][l] = state[0][l];
            counter[2][l] = state[1][l];
            counter[3][l] = state[2][l];
        }
        philox_lanes(&mut counter, key);
        std::array::from_fn(|l| word_to_uniform(counter[(tokens[l] & 3) as usize][l]))
    }

    /// The uniform of `token` for a compressed context `state` (see [`word_to_uniform`]).
    #[inline(always)]
    pub fn uniform(&self, state: &[u32; 4], token: u32) -> f32 {
        word_to_uniform(self.word(state, token))
    }
}

/// A word's uniform in `(0, 1)`: `f32(((word >> 8) + 1) / (2^24 + 1))`, divided in `f64`
/// then rounded to `f32`, as vLLM does. Never 0; it rounds to 1.0 only for the top few words.
#[inline(always)]
pub fn word_to_uniform(word: u32) -> f32 {
    (f64::from((word >> 8) + 1) / 16_777_217.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Random123 known answers for Philox4x32-10 (kat_vectors): zero, all-ones and pi.
    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    /// The lane-parallel path gives the bits of the one-at-a-time path, for every width.
    #[test]
    fn lanes_match_the_single_path() {
        let prf = PhiloxPrf::new(0x0123_4567_89ab_cdef);
        for w in [1usize, 3, 4, 5, 8, 16] {
            let storage: Vec<Vec<u32>> = (0..LANES as u32)
                .map(|l| {
                    (0..w as u32)
                        .map(|i| l.wrapping_mul(7919) ^ (i * 31) ^ (PAD * (i % 5 == 4) as u32))
                        .collect()
                })
                .collect();
            let contexts: [&[u32]; LANES] = std::array::from_fn(|l| storage[l].as_slice());
            let tokens: [u32; LANES] = std::array::from_fn(|l| (l as u32) * 12_345 + 3);
            let got = prf.uniforms(&contexts, &tokens);
            for l in 0..LANES {
                assert_eq!(
                    got[l],
                    prf.uniform(&prf.compress(contexts[l]), tokens[l]),
                    "w={w} lane {l}"
                );
            }
        }
    }

    #[test]
    fn uniform_is_inside_the_open_interval() {
        assert!(word_to_uniform(0) > 0.0);
        assert!(word_to_uniform(u32::MAX) <= 1.0);
        assert_eq!(word_to_uniform(0), (1.0f64 / 16_777_217.0) as f32);
    }
}
