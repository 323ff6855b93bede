//! Property tests of the patched CPU kernels (engine/patches/, docs/engine-notes.md): the
//! tiled quantized matmul and the causal attention give every row the same bits whatever
//! the batch, the tiling and the thread count, and agree with reference arithmetic.

use candle_core::quantized::k_quants::{
    matmul_legacy, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ6K, BlockQ8_0,
    GgmlType,
};
use candle_core::quantized::tiled::{self, Isa};
use candle_core::{Device, Tensor};
use mistralrs::core::gatehouse::causal_attention;
use proptest::prelude::*;

/// Deterministic values in [-1, 1) from a seed (xorshift).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn quantize<T: GgmlType>(w: &[f32], k: usize) -> Vec<T> {
    let blocks = k / T::BLCK_SIZE;
    let mut q = vec![T::zeros(); w.len() / T::BLCK_SIZE];
    for (row, out) in w.chunks(k).zip(q.chunks_mut(blocks)) {
        T::from_float(row, out);
    }
    q
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

const MAX_M: usize = 17;

/// For one format: rows of matmul(m) equal matmul(1) bitwise for m in 1..=17 and 1 or 2
/// threads, for every instruction set the CPU has; AVX2 and AVX-512 VNNI agree bitwise;
/// both agree with the scalar reference within 1e-5 of sum |w x| per output.
fn check_format<T: GgmlType>(k: usize, n: usize, seed: u64) {
    let w_f32 = values(n * k, seed);
    let w = quantize::<T>(&w_f32, k);
    let mut w_deq = vec![0f32; n * k];
    T::to_float(&w, &mut w_deq);
    let x = values(MAX_M * k, seed ^ 0xABCD);
    let isas: Vec<Isa> = [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni]
        .into_iter()
        .filter(|&i| tiled::supported(i))
        .collect();
    let mut singles: Vec<Vec<f32>> = Vec::new();
    for &isa in &isas {
        let mut single = vec![0f32; MAX_M * n];
        for i in 0..MAX_M {
            tiled::matmul(
                isa,
                (1, k, n),
                &x[i * k..][..k],
                &w,
                &mut single[i * n..][..n],
            )
            .expect("matmul");
        }
        for m in 1..=MAX_M {
            for threads in [1, 2] {
                let mut out = vec![0f32; m * n];
                pool(threads).install(|| {
                    tiled::matmul(isa, (m, k, n), &x[..m * k], &w, &mut out).expect("matmul")
                });
                for (i, (a, b)) in out.iter().zip(&single).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{:?} {isa:?}: m={m} threads={threads} row {} col {}: {a} vs {b}",
                        T::DTYPE,
                        i / n,
                        i % n
                    );
                }
            }
        }
        singles.push(single);
    }
    let reference = &singles[0];
    for (isa, got) in isas.iter().zip(&singles).skip(1) {
        for (idx, (a, b)) in got.iter().zip(reference).enumerate() {
            let (r, c) = (idx / n, idx % n);
            let scale: f32 = (0..k)
                .map(|j| (w_deq[c * k + j] * x[r * k + j]).abs())
                .sum();
            assert!(
                (a - b).abs() <= 1e-5 * scale.max(1.0),
                "{:?} {isa:?} vs scalar at ({r}, {c}): {a} vs {b}",
                T::DTYPE
            );
        }
    }
    if isas.contains(&Isa::Avx2) && isas.contains(&Isa::Avx512Vnni) {
        assert_eq!(
            singles[1],
            singles[2],
            "{:?}: AVX2 and VNNI differ",
            T::DTYPE
        );
    }
    // The tiled matmul computes what candle's original row loop computes.
    let mut legacy = vec![0f32; MAX_M * n];
    matmul_legacy((MAX_M, k, n), &x, &w, &mut legacy).expect("legacy matmul");
    for (idx, (a, b)) in singles.last().unwrap().iter().zip(&legacy).enumerate() {
        let (r, c) = (idx / n, idx % n);
        let scale: f32 = (0..k)
            .map(|j| (w_deq[c * k + j] * x[r * k + j]).abs())
            .sum();
        assert!(
            (a - b).abs() <= 1e-5 * scale.max(1.0),
            "{:?} tiled vs legacy at ({r}, {c}): {a} vs {b}",
            T::DTYPE
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn qmatmul_rows_are_batch_invariant(kb in 1usize..=3, n in 1usize..=40, seed in any::<u64>()) {
        let k = 256 * kb;
        check_format::<BlockQ4_0>(k, n, seed);
        check_format::<BlockQ4_1>(k, n, seed);
        check_format::<BlockQ5_0>(k, n, seed);
        check_format::<BlockQ8_0>(k, n, seed);
        check_format::<BlockQ4K>(k, n, seed);
        check_format::<BlockQ5K>(k, n, seed);
        check_format::<BlockQ6K>(k, n, seed);
    }
}

/// Softmax attention of one query row over the first `end` key/value rows, in f64.
fn attention_reference(q: &[f32], k: &[f32], v: &[f32], d: usize, end: usize) -> Vec<f32> {
    let scale = 1.0 / (d as f64).sqrt();
    let s: Vec<f64> = (0..end)
        .map(|j| {
            let dot: f64 = (0..d).map(|c| q[c] as f64 * k[j * d + c] as f64).sum();
            dot * scale
        })
        .collect();
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    (0..d)
        .map(|c| ((0..end).map(|j| e[j] * v[j * d + c] as f64).sum::<f64>() / z) as f32)
        .collect()
}

fn rows(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("tensor data")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// A prompt of `l` rows after `past` cached positions gives each row the bits that
    /// decoding it alone gives, matching f64 softmax attention; sequences of different
    /// lengths batched together get their own rows.
    #[test]
    fn causal_attention_rows_are_batch_invariant(
        past in 0usize..150,
        l in 1usize..80,
        group in 1usize..4,
        seed in any::<u64>(),
    ) {
        let (kh, d) = (2, 64);
        let h = kh * group;
        let kv_len = past + l;
        let cap = kv_len + 7;
        let dev = Device::Cpu;
        let q = Tensor::from_vec(values(h * l * d, seed), (1, h, l, d), &dev).unwrap();
        // Laid out like the KV cache: [1, kv_heads, capacity, d], narrowed to the length.
        let kc = Tensor::from_vec(values(kh * cap * d, seed + 1), (1, kh, cap, d), &dev).unwrap();
        let vc = Tensor::from_vec(values(kh * cap * d, seed + 2), (1, kh, cap, d), &dev).unwrap();
        let scale = 1.0 / (d as f32).sqrt();
        let k = kc.narrow(2, 0, kv_len).unwrap();
        let v = vc.narrow(2, 0, kv_len).unwrap();
        let all = rows(&causal_attention(&q, &k, &v, &[past], scale, None).unwrap());
        let kr = rows(&kc);
        let vr = rows(&vc);
        for i in (0..l).step_by(7).chain([l - 1]) {
            let end = past + i + 1;
            let qi = q.narrow(2, i, 1).unwrap().contiguous().unwrap();
            let one = rows(&causal_attention(
                &qi,
                &kc.narrow(2, 0, end).unwrap(),
                &vc.narrow(2, 0, end).unwrap(),
                &[past + i],
                scale,
                None,
            ).unwrap());
            for hi in 0..h {
                let row = &all[(hi * l + i) * d..][..d];
                prop_assert_eq!(row, &one[hi * d..][..d], "row {} head {}", i, hi);
                let kvh = hi / group;
                let want = attention_reference(
                    &rows(&qi)[hi * d..][..d],
                    &kr[kvh * cap * d..],
                    &vr[kvh * cap * d..],
                    d,
                    end,
                );
                for (a, b) in row.iter().zip(&want) {
                    prop_assert!((a - b).abs() < 1e-5, "row {} head {}: {} vs {}", i, hi, a, b);
                }
            }
        }
        // Three sequences of different lengths in one decode batch.
        let offsets = [past, past + l / 2, past + l - 1];
        let b = offsets.len();
        let qb = Tensor::from_vec(values(b * h * d, seed + 3), (b, h, 1, d), &dev).unwrap();
        let kb = Tensor::from_vec(values(b * kh * cap * d, seed + 4), (b, kh, cap, d), &dev).unwrap();
        let vb = Tensor::from_vec(values(b * kh * cap * d, seed + 5), (b, kh, cap, d), &dev).unwrap();
        let batch = causal_attention(&qb, &kb, &vb, &offsets, scale, None).unwrap();
        for (i, &o) in offsets.iter().enumerate() {
            let alone = causal_attention(
                &qb.narrow(0, i, 1).unwrap(),
                &kb.narrow(0, i, 1).unwrap().narrow(2, 0, o + 1).unwrap(),
                &vb.narrow(0, i, 1).unwrap().narrow(2, 0, o + 1).unwrap(),
                &[o],
                scale,
                None,
            ).unwrap();
            prop_assert_eq!(rows(&batch.narrow(0, i, 1).unwrap()), rows(&alone), "sequence {}", i);
        }
    }
}
