//! timm's Vision Transformer and DeiT (`timm.models.vision_transformer`, `deit`), under its key
//! names: `patch_embed.proj`, `cls_token` (DeiT's `dist_token`), `pos_embed`, `blocks.i`
//! (`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`, optional layer scale
//! `ls1`/`ls2`), `norm`, `head` (DeiT's `head_dist`). Width, depth, patch size and grid come
//! from the weights; the number of heads from the file's metadata (`num_heads`), else timm's
//! head width of 64. At an input whose patch grid differs from the position embedding's, the
//! embedding is resampled as timm's `resample_abs_pos_embed` does: bicubic with antialiasing
//! (PyTorch's `interpolate(..., antialias=True)`, which has Pillow's taps), class tokens kept.
//! The FixRes head is the final LayerNorm on the class token(s) and the classifier.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::head::{Activation, Head, TrunkOut};
use super::layers::{Bias, Conv, LayerNorm, Linear, Padding};
use super::params::Params;
use super::weights::{WeightFile, WeightsError};
use super::{Architecture, Description, Recipe};
use crate::data::Interpolation;
use crate::data::resample::float_taps;

/// timm's ViT LayerNorms use ε = 1e-6.
const EPS: f64 = 1e-6;

#[derive(Clone, Debug)]
struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    ls1: Option<Tensor<1>>,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    ls2: Option<Tensor<1>>,
    heads: usize,
}

impl Block {
    fn attention(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let (h, hd) = (self.heads, d / self.heads);
        // timm: qkv → [B, N, 3, heads, head_dim] → [3, B, heads, N, head_dim].
        let qkv = self.qkv.forward(x).reshape([b, n, 3, h, hd]).permute([2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([b, h, n, hd]);
        let (q, k, v) = (part(0), part(1), part(2));
        super::cost::matmul_done(2 * b * h, n, hd, n); // q·kᵀ and attn·v
        let attn = softmax(q.matmul(k.swap_dims(2, 3)) * (hd as f64).powf(-0.5), 3);
        let y = attn.matmul(v).swap_dims(1, 2).reshape([b, n, d]);
        self.proj.forward(y)
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let scaled = |y: Tensor<3>, ls: &Option<Tensor<1>>| match ls {
            Some(g) => y * g.clone().unsqueeze::<3>(),
            None => y,
        };
        let x = x.clone() + scaled(self.attention(self.norm1.forward(x)), &self.ls1);
        let y = self
            .fc2
            .forward(Activation::Gelu.apply(self.fc1.forward(self.norm2.forward(x.clone()))));
        x + scaled(y, &self.ls2)
    }
}

/// A timm ViT / DeiT.
#[derive(Debug)]
pub struct VisionTransformer {
    patch: Conv,
    /// Class token, then DeiT's distillation token: `[1, tokens, D]`.
    prefix: Tensor<3>,
    /// The position embedding's values, `[(prefix +) grid², D]` row-major, for resampling.
    pos_embed: Vec<f32>,
    /// Whether the embedding covers the prefix tokens too (timm's default; `no_embed_class`
    /// models add it to the patches only).
    embeds_prefix: bool,
    grid: usize,
    width: usize,
    blocks: Vec<Block>,
    head: Head,
    device: Device,
}

/// Why a `pos_embed` length fits no grid.
fn grid_of(tokens: usize, prefix: usize) -> Option<(usize, bool)> {
    let square = |n: usize| {
        let g = (n as f64).sqrt().round() as usize;
        (g * g == n && g > 0).then_some(g)
    };
    tokens
        .checked_sub(prefix)
        .and_then(square)
        .map(|g| (g, true))
        .or_else(|| square(tokens).map(|g| (g, false)))
}

impl VisionTransformer {
    fn load(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        let mut p = Params::new(file, "timm vit", device);
        let proj_shape = p.shape("patch_embed.proj.weight", 4)?;
        let (width, patch) = (proj_shape[0], proj_shape[2]);
        let conv = Conv::load(&mut p, "patch_embed.proj", 3, patch, Padding::Zero, Bias::Yes)?;
        let distilled = p.has("dist_token");
        let prefix_n = 1 + usize::from(distilled);
        let cls = p.tensor::<3>("cls_token", [1, 1, width])?;
        let prefix = if distilled {
            Tensor::cat(vec![cls, p.tensor::<3>("dist_token", [1, 1, width])?], 1)
        } else {
            cls
        };
        let pos_shape = p.shape("pos_embed", 3)?;
        let tokens = pos_shape[1];
        let (grid, embeds_prefix) = grid_of(tokens, prefix_n).ok_or_else(|| {
            p.error(format!(
                "pos_embed: {tokens} positions are neither a square grid nor a square grid plus {prefix_n} class token(s)"
            ))
        })?;
        let pos_embed = p.values("pos_embed", &[1, tokens, width])?;
        let heads = match file.metadata.get("num_heads") {
            Some(h) => h
                .parse::<usize>()
                .ok()
                .filter(|&h| h > 0 && width % h == 0)
                .ok_or_else(|| p.error(format!("metadata num_heads: {h:?} does not divide the width {width}")))?,
            // timm's ViTs have 64-wide heads, ViT-H (1280 wide, 16 heads) aside.
            None if width == 1280 => 16,
            None if width % 64 == 0 => width / 64,
            None => {
                return Err(p.error(format!(
                    "blocks: width {width} is not a multiple of timm's head width 64; say the number of heads (metadata num_heads)"
                )));
            }
        };
        let mut blocks = Vec::new();
        while p.has(&format!("blocks.{}.attn.qkv.weight", blocks.len())) {
            let b = format!("blocks.{}", blocks.len());
            let norm1 = LayerNorm::load(&mut p, &format!("{b}.norm1"), width, EPS)?;
            let qkv = Linear::load(&mut p, &format!("{b}.attn.qkv"), width)?;
            if qkv.out() != 3 * width {
                return Err(p.error(format!(
                    "{b}.attn.qkv.weight: {} outputs, but q, k and v of width {width} need {}",
                    qkv.out(),
                    3 * width
                )));
            }
            let proj = Linear::load(&mut p, &format!("{b}.attn.proj"), width)?;
            let scale = |p: &mut Params, name: &str| -> Result<Option<Tensor<1>>, WeightsError> {
                let key = format!("{b}.{name}.gamma");
                if p.has(&key) {
                    p.tensor(&key, [width]).map(Some)
                } else {
                    Ok(None)
                }
            };
            let ls1 = scale(&mut p, "ls1")?;
            let norm2 = LayerNorm::load(&mut p, &format!("{b}.norm2"), width, EPS)?;
            let fc1 = Linear::load(&mut p, &format!("{b}.mlp.fc1"), width)?;
            let fc2 = Linear::load(&mut p, &format!("{b}.mlp.fc2"), fc1.out())?;
            if fc2.out() != width {
                return Err(p.error(format!(
                    "{b}.mlp.fc2.weight: {} outputs in a network of width {width}",
                    fc2.out()
                )));
            }
            let ls2 = scale(&mut p, "ls2")?;
            blocks.push(Block {
                norm1,
                qkv,
                proj,
                ls1,
                norm2,
                fc1,
                fc2,
                ls2,
                heads,
            });
        }
        if blocks.is_empty() {
            return Err(p.error("blocks.0.attn.qkv.weight: no transformer blocks".into()));
        }
        let norm = LayerNorm::load(&mut p, "norm", width, EPS)?;
        let fc = Linear::load(&mut p, "head", width)?;
        let dist = if distilled {
            Some(Linear::load(&mut p, "head_dist", width)?.dense("head_dist"))
        } else {
            None
        };
        if let Some(d) = &dist
            && d.weight.dims()[0] != fc.out()
        {
            return Err(p.error(format!(
                "head_dist.weight: {} classes, head.weight {}",
                d.weight.dims()[0],
                fc.out()
            )));
        }
        let classes = fc.out();
        p.finish()?;
        let head = Head {
            distilled: dist,
            ..norm.into_head("norm", fc.dense("head"))
        };
        let size = grid * patch;
        let kind = if distilled { "deit (distilled)" } else { "vit" };
        let arch = format!(
            "{kind} (width {width}, depth {}, heads {heads}, patch {patch}, {size}×{size})",
            blocks.len()
        );
        let net = Self {
            patch: conv,
            prefix,
            pos_embed,
            embeds_prefix,
            grid,
            width,
            blocks,
            head,
            device: device.clone(),
        };
        Ok((
            net,
            Description {
                arch,
                features: width,
                classes,
            },
        ))
    }

    /// The position embedding for a `gh × gw` patch grid, `[1, (prefix +) gh·gw, D]`: the stored
    /// one, or its patch part resampled as timm does.
    fn pos_embed_for(&self, gh: usize, gw: usize) -> Tensor<3> {
        let d = self.width;
        let prefix_n = if self.embeds_prefix { self.prefix.dims()[1] } else { 0 };
        let tokens = prefix_n + gh * gw;
        if gh == self.grid && gw == self.grid {
            return Tensor::from_data(
                burn::tensor::TensorData::new(self.pos_embed.clone(), [1, tokens, d]),
                &self.device,
            );
        }
        let g = self.grid;
        let (prefix, patches) = self.pos_embed.split_at(prefix_n * d);
        let filter = Interpolation::Bicubic;
        let across = float_taps(g, 0.0, g as f64, gw, filter, &(0..gw));
        let down = float_taps(g, 0.0, g as f64, gh, filter, &(0..gh));
        // Horizontal pass (g rows × gw), then vertical (gh × gw), per channel, rows of D values.
        let mut wide = vec![0f64; g * gw * d];
        for y in 0..g {
            for (x, (x0, taps)) in across.iter().enumerate() {
                let out = &mut wide[(y * gw + x) * d..(y * gw + x + 1) * d];
                for (i, w) in taps.iter().enumerate() {
                    let src = &patches[(y * g + x0 + i) * d..(y * g + x0 + i + 1) * d];
                    out.iter_mut().zip(src).for_each(|(o, s)| *o += w * f64::from(*s));
                }
            }
        }
        let mut values: Vec<f32> = prefix.to_vec();
        values.reserve(gh * gw * d);
        for (y0, taps) in &down {
            for x in 0..gw {
                let mut acc = vec![0f64; d];
                for (i, w) in taps.iter().enumerate() {
                    let src = &wide[((y0 + i) * gw + x) * d..((y0 + i) * gw + x + 1) * d];
                    acc.iter_mut().zip(src).for_each(|(a, s)| *a += w * s);
                }
                values.extend(acc.iter().map(|&v| v as f32));
            }
        }
        Tensor::from_data(burn::tensor::TensorData::new(values, [1, tokens, d]), &self.device)
    }
}

impl Architecture for VisionTransformer {
    fn family() -> &'static str {
        "a timm ViT / DeiT"
    }

    fn recognises(file: &WeightFile) -> bool {
        file.header.contains_key("patch_embed.proj.weight") && file.header.contains_key("cls_token")
    }

    fn markers() -> &'static [&'static str] {
        &[
            "patch_embed.proj.weight",
            "cls_token",
            "pos_embed",
            "blocks.0.attn.qkv.weight",
            "norm.weight",
            "head.weight",
        ]
    }

    fn from_weights(file: &WeightFile, device: &Device) -> Result<(Self, Description), WeightsError> {
        Self::load(file, device)
    }

    /// Up to the final LayerNorm, on the class token (and DeiT's distillation token):
    /// `[batch, D, 1, tokens]`.
    fn trunk(&self, x: Tensor<4>) -> TrunkOut {
        let patches = self.patch.forward(x);
        let [b, d, gh, gw] = patches.dims();
        let patches = patches.flatten::<3>(2, 3).swap_dims(1, 2);
        let prefix_n = self.prefix.dims()[1];
        let prefix = self.prefix.clone().expand([b, prefix_n, d]);
        let pos = self.pos_embed_for(gh, gw);
        let x = if self.embeds_prefix {
            Tensor::cat(vec![prefix, patches], 1) + pos
        } else {
            Tensor::cat(vec![prefix, patches + pos], 1)
        };
        let x = self.blocks.iter().fold(x, |x, blk| blk.forward(x));
        let tokens = x.narrow(1, 0, prefix_n).swap_dims(1, 2).reshape([b, d, 1, prefix_n]);
        TrunkOut {
            pre_bn: tokens,
            residual: None,
        }
    }

    fn head(&self) -> Head {
        self.head.clone()
    }

    fn library(&self) -> &'static str {
        "timm"
    }

    /// timm's ViT / DeiT recipe: bicubic, crop 0.9, ImageNet mean and std (DeiT's; the
    /// original ViTs' 0.5 mean/std come from their `config.json`).
    fn recipe(&self) -> Recipe {
        Recipe {
            interpolation: Interpolation::Bicubic,
            crop_ratio: 0.9,
            ..Recipe::default()
        }
    }
}
