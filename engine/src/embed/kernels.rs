//! The encoder's row-wise arithmetic, written so that the compiler vectorizes it (the crate
//! is built for x86-64-v3: AVX2 and FMA): sums in eight lanes, and `exp` and `erf` as
//! polynomials instead of calls into libm, which run one value at a time.

/// Lanes of the vectorized loops: one AVX2 register of `f32`.
const LANES: usize = 8;

/// `a · b`.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (a8, b8) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `scores[c] = q · key c`, with the keys stored transposed (`keys_t[d·n + c]`, `n` keys):
/// eight keys at a time in one register, so no sum crosses lanes.
pub(super) fn scores(q: &[f32], keys_t: &[f32], scores: &mut [f32]) {
    let n = scores.len();
    let full = n - n % LANES;
    for (c, out) in (0..full).step_by(LANES).zip(scores.chunks_exact_mut(LANES)) {
        let mut acc = [0f32; LANES];
        for (d, &qd) in q.iter().enumerate() {
            let k = &keys_t[d * n + c..d * n + c + LANES];
            for l in 0..LANES {
                acc[l] = qd.mul_add(k[l], acc[l]);
            }
        }
        out.copy_from_slice(&acc);
    }
    for (c, out) in scores.iter_mut().enumerate().skip(full) {
        *out = q
            .iter()
            .enumerate()
            .map(|(d, &qd)| qd * keys_t[d * n + c])
            .sum();
    }
}

/// `out += Σ_c weights[c] · row c of values` (`values` row-major, `out.len()` wide).
pub(super) fn weighted_sum(weights: &[f32], values: &[f32], out: &mut [f32]) {
    for (&w, v) in weights.iter().zip(values.chunks_exact(out.len())) {
        for (o, v) in out.iter_mut().zip(v) {
            *o = w.mul_add(*v, *o);
        }
    }
}

/// The sum of `a`.
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let a8 = a.chunks_exact(LANES);
    let tail: f32 = a8.remainder().iter().sum();
    for x in a8 {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `e^x` to within a few units in the last place, for `x` ≤ 88 (softmax only passes
/// `x` ≤ 0). Cephes' `expf`: `x = n·ln 2 + r` with |r| ≤ ln 2 / 2, a degree-6 polynomial
/// for `e^r`, and `2^n` built in the exponent bits. Below -87 it returns about `e^-87`
/// (1.6e-38) instead of a subnormal: the same as zero next to the softmax maximum's 1.
pub(super) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 in two parts, so that n·ln 2 is exact in the first.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_6e-1,
        5e-1,
    ] {
        p = p.mul_add(r, c);
    }
    let e = p.mul_add(r * r, r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The error function to within a few units in the last place: a rational minimax
/// approximation on [-4, 4] (Eigen's `erf` for `float`; past 4 it is ±1 in `f32`).
pub(super) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_4e-10_f32;
    for c in [
        2.770_681_5e-8,
        -2.101_024e-6,
        -5.692_506_2e-5,
        -7.349_906_4e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ] {
        p = p.mul_add(x2, c);
    }
    let mut q = -1.456_607_15e-5_f32;
    for c in [
        -2.133_740_5e-4,
        -1.682_827e-3,
        -7.373_329_3e-3,
        -1.426_473_9e-2,
    ] {
        q = q.mul_add(x2, c);
    }
    x * p / q
}

/// BERT's GELU, the erf form, in place.
pub(super) fn gelu(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// `xs` scaled by `scale`, turned into probabilities, in place.
pub(super) fn softmax(xs: &mut [f32], scale: f32) {
    let max = xs.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for x in xs.iter_mut() {
        *x = exp((*x - max) * scale);
    }
    let inv = 1.0 / sum(xs);
    for x in xs.iter_mut() {
        *x *= inv;
    }
}

/// LayerNorm of one row in place: zero mean, unit variance, then `gamma` and `beta`.
pub(super) fn layer_norm(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    for x in row.iter_mut() {
        *x -= mean;
    }
    let var = dot(row, row) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = (*x * inv).mul_add(*g, *b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(got: f32, want: f64, ulps: f64) -> bool {
        let tolerance = ulps * f64::from(f32::EPSILON) * want.abs().max(f64::MIN_POSITIVE);
        (f64::from(got) - want).abs() <= tolerance
    }

    proptest! {
        #[test]
        fn exp_is_within_a_few_ulps(x in -87.0f32..88.0) {
            let want = f64::from(x).exp();
            prop_assert!(close(exp(x), want, 4.0), "exp({x}) = {} want {want}", exp(x));
        }

        #[test]
        fn erf_is_within_a_few_ulps_of_the_f64_erf(x in -6.0f32..6.0) {
            let want = candle_core::cpu::erf::erf_f64(f64::from(x));
            // Near zero erf is about 1.13·x: judge the error against that scale there.
            let got = f64::from(erf(x));
            let tolerance = 4.0 * f64::from(f32::EPSILON) * want.abs().max(1e-30);
            prop_assert!((got - want).abs() <= tolerance.max(1e-12), "erf({x}) = {got} want {want}");
        }

        #[test]
        fn dot_and_sum_match_sequential_ones(v in prop::collection::vec(-10.0f32..10.0, 0..70)) {
            let seq_dot: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let seq_sum: f64 = v.iter().map(|&x| f64::from(x)).sum();
            let scale: f64 = v.iter().map(|&x| f64::from(x.abs())).sum::<f64>().max(1.0);
            prop_assert!((f64::from(dot(&v, &v)) - seq_dot).abs() <= 1e-5 * scale * 10.0);
            prop_assert!((f64::from(sum(&v)) - seq_sum).abs() <= 1e-5 * scale);
        }
    }

    #[test]
    fn attention_products_match_the_naive_ones() {
        // 11 keys: one full group of eight and a tail of three.
        let (n, hd) = (11, 5);
        let q: Vec<f32> = (0..hd).map(|d| d as f32 - 1.5).collect();
        let keys: Vec<Vec<f32>> = (0..n)
            .map(|c| {
                (0..hd)
                    .map(|d| ((c * 7 + d * 3) % 5) as f32 - 2.0)
                    .collect()
            })
            .collect();
        let keys_t: Vec<f32> = (0..hd)
            .flat_map(|d| keys.iter().map(move |k| k[d]))
            .collect();
        let mut s = vec![0.0; n];
        scores(&q, &keys_t, &mut s);
        for (c, k) in keys.iter().enumerate() {
            assert_eq!(s[c], k.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>());
        }
        let values = keys.concat();
        let mut out = vec![1.0; hd];
        weighted_sum(&s, &values, &mut out);
        for (d, o) in out.iter().enumerate() {
            let want = 1.0 + (0..n).map(|c| s[c] * keys[c][d]).sum::<f32>();
            assert!((o - want).abs() < 1e-4, "{out:?}");
        }
    }

    #[test]
    fn softmax_and_layer_norm_give_the_textbook_values() {
        let mut p = vec![1.0, 2.0, 3.0, -1e30];
        softmax(&mut p, 0.5);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|x| (x * 0.5).exp()).collect();
        let total: f64 = e.iter().sum();
        for (got, want) in p.iter().zip(&e) {
            assert!(close(*got, want / total, 8.0), "{p:?}");
        }
        assert!(p[3] < 1e-30, "{p:?}");

        let mut row = vec![1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut row, &[2.0; 4], &[1.0; 4], 0.0);
        let sd = 1.25f32.sqrt();
        for (got, x) in row.iter().zip([1.0f32, 2.0, 3.0, 4.0]) {
            assert!((got - ((x - 2.5) / sd * 2.0 + 1.0)).abs() < 1e-6, "{row:?}");
        }

        let mut g = vec![-3.0, 0.0, 1.0];
        gelu(&mut g);
        assert!((g[0] - -0.004_049_7).abs() < 1e-6 && g[1] == 0.0, "{g:?}");
        assert!((g[2] - 0.841_344_7).abs() < 1e-6, "{g:?}");
    }
}
