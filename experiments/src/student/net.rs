//! The tiny decoder-only transformer: token + learned position embeddings, pre-norm blocks of
//! causal multi-head attention and a ReLU MLP, a final layer norm, and the output layer tied
//! to the token embedding (GPT-2's layout, small; ReLU instead of GELU: the tanh-GELU and
//! its gradient took 11% of a training step on the CPU, perf).

use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::StudentConfig;

/// Layer-norm epsilon.
const EPS: f32 = 1e-5;
/// Standard deviation of the initial weights (GPT-2's).
const INIT_STD: f64 = 0.02;

/// The names and shapes of every parameter, in a fixed order (the order of initialization
/// and of the optimizer's variables).
pub(crate) fn parameter_shapes(config: &StudentConfig, vocab: usize) -> Vec<(String, Vec<usize>)> {
    let (d, m) = (config.d_model, config.mlp);
    let mut out = vec![
        ("wte".to_string(), vec![vocab, d]),
        ("wpe".to_string(), vec![config.context, d]),
    ];
    for l in 0..config.layers {
        for (name, shape) in [
            ("ln1.weight", vec![d]),
            ("ln1.bias", vec![d]),
            ("attn.qkv.weight", vec![3 * d, d]),
            ("attn.qkv.bias", vec![3 * d]),
            ("attn.proj.weight", vec![d, d]),
            ("attn.proj.bias", vec![d]),
            ("ln2.weight", vec![d]),
            ("ln2.bias", vec![d]),
            ("mlp.fc.weight", vec![m, d]),
            ("mlp.fc.bias", vec![m]),
            ("mlp.proj.weight", vec![d, m]),
            ("mlp.proj.bias", vec![d]),
        ] {
            out.push((format!("h.{l}.{name}"), shape));
        }
    }
    out.push(("ln_f.weight".to_string(), vec![d]));
    out.push(("ln_f.bias".to_string(), vec![d]));
    if !config.tie_embeddings {
        out.push(("lm_head".to_string(), vec![vocab, d]));
    }
    out
}

/// Initial values, drawn from a ChaCha8 stream seeded with `seed` (candle's own CPU random
/// numbers cannot be seeded): weights normal(0, 0.02), the residual projections scaled by
/// 1/sqrt(2 layers) as in GPT-2, biases 0, layer-norm gains 1.
pub(crate) fn initial_parameters(
    config: &StudentConfig,
    vocab: usize,
    seed: u64,
) -> candle_core::Result<Vec<(String, Tensor)>> {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let residual_std = INIT_STD / ((2 * config.layers) as f64).sqrt();
    parameter_shapes(config, vocab)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("bias") {
                vec![0.0; n]
            } else if name.starts_with("ln") || name.contains(".ln") {
                vec![1.0; n]
            } else {
                let std = if name.ends_with("proj.weight") {
                    residual_std
                } else {
                    INIT_STD
                };
                (0..n).map(|_| (normal(&mut rng) * std) as f32).collect()
            };
            let t = Tensor::from_vec(values, shape, &Device::Cpu)?;
            Ok((name, t))
        })
        .collect()
}

/// A standard normal draw (Box-Muller; one of the pair is dropped, which costs nothing that
/// matters here).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // The composed layer norm: candle-nn's fused one has no backward pass.
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, EPS)
    }
}

struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// `x` of shape `(.., in)` to `(.., out)`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let out = self.weight.dim(0)?;
        let y = x
            .reshape((rows, dims[dims.len() - 1]))?
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?;
        let mut shape = dims;
        *shape.last_mut().expect("rank >= 1") = out;
        y.reshape(shape)
    }
}

struct Block {
    ln1: Norm,
    qkv: Linear,
    proj: Linear,
    ln2: Norm,
    fc: Linear,
    fc_proj: Linear,
}

/// The keys and values a block has seen so far while generating, each `(batch, heads, t, hd)`.
pub(crate) type Cache = Vec<Option<(Tensor, Tensor)>>;

/// The network, over any tensors of the right shapes: the trainer's variables (gradients
/// flow into them) or detached copies for inference.
pub(crate) struct Net {
    heads: usize,
    d_model: usize,
    context: usize,
    wte: Tensor,
    wpe: Tensor,
    /// The output layer `(vocab, d)`: `wte` itself when tied.
    head: Tensor,
    blocks: Vec<Block>,
    ln_f: Norm,
    /// `(context, context)`: 0 on and below the diagonal, -inf above.
    mask: Tensor,
}

impl Net {
    /// The network over named tensors (`get` returns the tensor of a name from
    /// [`parameter_shapes`]).
    pub(crate) fn new(
        config: &StudentConfig,
        get: &dyn Fn(&str) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Net> {
        let norm = |p: &str| {
            Ok::<_, candle_core::Error>(Norm {
                weight: get(&format!("{p}.weight"))?,
                bias: get(&format!("{p}.bias"))?,
            })
        };
        let linear = |p: &str| {
            Ok::<_, candle_core::Error>(Linear {
                weight: get(&format!("{p}.weight"))?,
                bias: get(&format!("{p}.bias"))?,
            })
        };
        let blocks = (0..config.layers)
            .map(|l| {
                Ok(Block {
                    ln1: norm(&format!("h.{l}.ln1"))?,
                    qkv: linear(&format!("h.{l}.attn.qkv"))?,
                    proj: linear(&format!("h.{l}.attn.proj"))?,
                    ln2: norm(&format!("h.{l}.ln2"))?,
                    fc: linear(&format!("h.{l}.mlp.fc"))?,
                    fc_proj: linear(&format!("h.{l}.mlp.proj"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let c = config.context;
        let mask: Vec<f32> = (0..c * c)
            .map(|i| {
                if i % c > i / c {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Net {
            heads: config.heads,
            d_model: config.d_model,
            context: c,
            wte: get("wte")?,
            wpe: get("wpe")?,
            head: get(if config.tie_embeddings {
                "wte"
            } else {
                "lm_head"
            })?,
            blocks,
            ln_f: norm("ln_f")?,
            mask: Tensor::from_vec(mask, (c, c), &Device::Cpu)?,
        })
    }

    /// Splits `(b, t, d)` into heads: `(b, heads, t, hd)`.
    fn split(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        x.reshape((b, t, self.heads, self.d_model / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// One block over `x` of shape `(b, t, d)` at positions `start..start + t`; with a cache,
    /// the keys and values of the earlier positions come from it and the new ones are added.
    fn block(
        &self,
        block: &Block,
        x: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let qkv = block.qkv.forward(&block.ln1.forward(x)?)?;
        let q = self.split(&qkv.narrow(2, 0, d)?)?;
        let mut k = self.split(&qkv.narrow(2, d, d)?)?;
        let mut v = self.split(&qkv.narrow(2, 2 * d, d)?)?;
        if let Some(cache) = cache {
            if let Some((k0, v0)) = cache.as_ref() {
                k = Tensor::cat(&[k0, &k], 2)?;
                v = Tensor::cat(&[v0, &v], 2)?;
            }
            *cache = Some((k.clone(), v.clone()));
        }
        let total = k.dim(2)?;
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        let mut att = (q.matmul(&k.t()?)? * scale)?;
        if t > 1 {
            // Queries are the last `t` of the `total` positions.
            let mask = self
                .mask
                .narrow(0, total - t, t)?
                .narrow(1, 0, total)?
                .contiguous()?;
            att = att.broadcast_add(&mask)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, d))?;
        let x = (x + block.proj.forward(&y)?)?;
        let h = block.fc.forward(&block.ln2.forward(&x)?)?.relu()?;
        x + block.fc_proj.forward(&h)?
    }

    /// Hidden states `(b, t, d)` after the final norm, for student ids `(b, t)` at positions
    /// `start..start + t` (`start` > 0 only with a cache holding the earlier positions).
    pub(crate) fn hidden(
        &self,
        ids: &Tensor,
        start: usize,
        mut cache: Option<&mut Cache>,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if start + t > self.context {
            candle_core::bail!(
                "positions up to {} for a context of {}",
                start + t,
                self.context
            );
        }
        let tok = self
            .wte
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, self.d_model))?;
        let mut x = tok.broadcast_add(&self.wpe.narrow(0, start, t)?)?;
        for (l, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c[l]);
            x = self.block(block, &x, slot)?;
        }
        self.ln_f.forward(&x)
    }

    /// Logits `(rows, vocab)` of hidden states `(rows, d)`.
    pub(crate) fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        hidden.matmul(&self.head.t()?)
    }

    /// Mean cross-entropy of predicting `targets` (`b * t`, row-major) from `inputs` `(b, t)`.
    pub(crate) fn loss(&self, inputs: &Tensor, targets: Vec<u32>) -> candle_core::Result<Tensor> {
        let h = self.hidden(inputs, 0, None)?;
        let (b, t, d) = h.dims3()?;
        let logits = self.logits(&h.reshape((b * t, d))?)?;
        super::loss::cross_entropy(&logits, targets)
    }

    /// A cache for `layers` blocks, empty.
    pub(crate) fn empty_cache(&self) -> Cache {
        vec![None; self.blocks.len()]
    }
}

/// Student ids as a `(rows, cols)` u32 tensor.
pub(crate) fn ids_tensor(ids: Vec<u32>, rows: usize, cols: usize) -> candle_core::Result<Tensor> {
    Tensor::from_vec(ids, (rows, cols), &Device::Cpu)
}

/// A scalar f32 tensor's value.
pub(crate) fn scalar(t: &Tensor) -> candle_core::Result<f32> {
    t.to_dtype(DType::F32)?.to_scalar::<f32>()
}

/// The last dimension's values, row by row, of a `(rows, n)` tensor.
pub(crate) fn rows(t: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    t.to_dtype(DType::F32)?.to_vec2::<f32>()
}
