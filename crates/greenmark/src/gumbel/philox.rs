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

/// Positions processed together by `PhiloxPrf::uniforms`: one AVX-512 register of `u32`, or
/// two AVX2 registers whose dependency chains interleave.
pub(crate) const LANES: usize = 16;

/// Philox4x32-10 of `LANES` independent counters and keys (structure of arrays), with
/// AVX-512 or AVX2 where the CPU has them (`vpmuludq` for the 32x32 -> 64 products). The bits
/// are those of [`philox4x32_10`] on each lane.
///
/// Performance (measured, `cargo bench -p greenmark-benches --bench gumbel`): the portable
/// lane loops do not vectorize with rustc 1.95 (scalar `imul` and stack spills, 40+ ns a
/// token for the two evaluations of a token); the vector paths are several times faster.
#[inline(always)]
fn philox_lanes(c: &mut [[u32; LANES]; 4], k: [[u32; LANES]; 2]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { avx512::philox_lanes(c, k) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2::philox_lanes(c, k) };
        }
    }
    philox_lanes_portable(c, k)
}

/// Eight lanes per register, two registers per word: the two halves' rounds interleave.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_blend_epi32, _mm256_loadu_si256, _mm256_mul_epu32,
        _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_slli_epi64, _mm256_srli_epi64,
        _mm256_storeu_si256, _mm256_xor_si256,
    };

    use super::{LANES, M0, M1, W0, W1};

    /// `(high, low)` halves of the eight products `a[l] * m` (`m` in each 64-bit lane).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mulhilo(a: __m256i, m: __m256i) -> (__m256i, __m256i) {
        // Even lanes multiply in place; odd lanes are shifted down first.
        let even = _mm256_mul_epu32(a, m);
        let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), m);
        let lo = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
        let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
        (hi, lo)
    }

    /// Lanes `8 h .. 8 h + 8` of `a`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(a: &[u32; LANES], h: usize) -> __m256i {
        // SAFETY: `a[8 h..8 h + 8]` is 8 readable u32 (h is 0 or 1); the load is unaligned.
        unsafe { _mm256_loadu_si256(a[8 * h..8 * h + 8].as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn store(v: __m256i, a: &mut [u32; LANES], h: usize) {
        // SAFETY: `a[8 h..8 h + 8]` is 8 writable u32 (h is 0 or 1); the store is unaligned.
        unsafe { _mm256_storeu_si256(a[8 * h..8 * h + 8].as_mut_ptr().cast(), v) }
    }

    /// [`super::philox_lanes_portable`] in AVX2 registers.
    #[target_feature(enable = "avx2")]
    pub(super) fn philox_lanes(c: &mut [[u32; LANES]; 4], k: [[u32; LANES]; 2]) {
        let m0 = _mm256_set1_epi64x(i64::from(M0));
        let m1 = _mm256_set1_epi64x(i64::from(M1));
        let w0 = _mm256_set1_epi32(W0 as i32);
        let w1 = _mm256_set1_epi32(W1 as i32);
        let mut x: [[__m256i; 4]; 2] = [0, 1].map(|h| {
            [
                load(&c[0], h),
                load(&c[1], h),
                load(&c[2], h),
                load(&c[3], h),
            ]
        });
        let mut key: [[__m256i; 2]; 2] = [0, 1].map(|h| [load(&k[0], h), load(&k[1], h)]);
        for round in 0..10 {
            for (x, key) in x.iter_mut().zip(key.iter_mut()) {
                let (hi0, lo0) = mulhilo(x[0], m0);
                let (hi1, lo1) = mulhilo(x[2], m1);
                let n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x[1]), key[0]);
                let n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x[3]), key[1]);
                *x = [n0, lo1, n2, lo0];
                if round != 9 {
                    key[0] = _mm256_add_epi32(key[0], w0);
                    key[1] = _mm256_add_epi32(key[1], w1);
                }
            }
        }
        for (h, x) in x.iter().enumerate() {
            for (word, v) in c.iter_mut().zip(x) {
                store(*v, word, h);
            }
        }
    }
}

/// Sixteen lanes in one register.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_mask_blend_epi32, _mm512_mul_epu32,
        _mm512_set1_epi32, _mm512_set1_epi64, _mm512_slli_epi64, _mm512_srli_epi64,
        _mm512_storeu_si512, _mm512_xor_si512,
    };

    use super::{LANES, M0, M1, W0, W1};

    /// `(high, low)` halves of the sixteen products `a[l] * m` (`m` in each 64-bit lane).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mulhilo(a: __m512i, m: __m512i) -> (__m512i, __m512i) {
        let even = _mm512_mul_epu32(a, m);
        let odd = _mm512_mul_epu32(_mm512_srli_epi64::<32>(a), m);
        let lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd));
        let hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<32>(even), odd);
        (hi, lo)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(a: &[u32; LANES]) -> __m512i {
        // SAFETY: `a` is 16 readable u32 (64 bytes); the load is unaligned.
        unsafe { _mm512_loadu_si512(a.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store(v: __m512i, a: &mut [u32; LANES]) {
        // SAFETY: `a` is 16 writable u32 (64 bytes); the store is unaligned.
        unsafe { _mm512_storeu_si512(a.as_mut_ptr().cast(), v) }
    }

    /// [`super::philox_lanes_portable`] in one AVX-512 register per word.
    #[target_feature(enable = "avx512f")]
    pub(super) fn philox_lanes(c: &mut [[u32; LANES]; 4], k: [[u32; LANES]; 2]) {
        let m0 = _mm512_set1_epi64(i64::from(M0));
        let m1 = _mm512_set1_epi64(i64::from(M1));
        let w0 = _mm512_set1_epi32(W0 as i32);
        let w1 = _mm512_set1_epi32(W1 as i32);
        let (mut c0, mut c1, mut c2, mut c3) = (load(&c[0]), load(&c[1]), load(&c[2]), load(&c[3]));
        let (mut k0, mut k1) = (load(&k[0]), load(&k[1]));
        for round in 0..10 {
            let (hi0, lo0) = mulhilo(c0, m0);
            let (hi1, lo1) = mulhilo(c2, m1);
            let n0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), k0);
            let n2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), k1);
            (c0, c1, c2, c3) = (n0, lo1, n2, lo0);
            if round != 9 {
                k0 = _mm512_add_epi32(k0, w0);
                k1 = _mm512_add_epi32(k1, w1);
            }
        }
        store(c0, &mut c[0]);
        store(c1, &mut c[1]);
        store(c2, &mut c[2]);
        store(c3, &mut c[3]);
    }
}

/// The portable lane loops (the reference for the vector paths).
#[inline(always)]
fn philox_lanes_portable(c: &mut [[u32; LANES]; 4], mut k: [[u32; LANES]; 2]) {
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

    /// The dispatched lanes (AVX2 here) and the portable loops give the same bits as the
    /// single-block path, on counters and keys that exercise every bit.
    #[test]
    fn every_lane_path_is_philox() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 32) as u32
        };
        for _ in 0..200 {
            let c: [[u32; LANES]; 4] = std::array::from_fn(|_| std::array::from_fn(|_| next()));
            let k: [[u32; LANES]; 2] = std::array::from_fn(|_| std::array::from_fn(|_| next()));
            let (mut fast, mut portable) = (c, c);
            philox_lanes(&mut fast, k);
            philox_lanes_portable(&mut portable, k);
            let mut paths = vec![fast, portable];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut v = c;
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { avx2::philox_lanes(&mut v, k) };
                paths.push(v);
            }
            for l in 0..LANES {
                let one = philox4x32_10([c[0][l], c[1][l], c[2][l], c[3][l]], [k[0][l], k[1][l]]);
                for p in &paths {
                    assert_eq!(one, [p[0][l], p[1][l], p[2][l], p[3][l]]);
                }
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
