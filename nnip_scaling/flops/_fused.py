"""Reference decompositions of torch's fused transformer kernels, for counting only (internal).

``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention`` take a "fast path" in inference
(eval mode, no autograd): the whole layer runs as one aten kernel,
``aten._transformer_encoder_layer_fwd`` or ``aten._native_multi_head_attention``, with no
decomposition in torch. These functions write each kernel as the aten ops that the same layer runs
on its ordinary path (linear layers as ``addmm``, attention as the fused SDPA kernel, layer norm,
residual adds, activation), so the counter (:mod:`._rules`, kind ``decomp``) charges the fused
kernel exactly what the unfused layer costs. They run on meta tensors only: shapes, no values.

Masks do not change the count (as for every attention kernel: masking is not discounted).
"""

from __future__ import annotations

from typing import Any

import torch

aten = torch.ops.aten

__all__ = ["FUSED_DECOMPOSITIONS"]


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x [T, in] @ weight.T + bias`` as ``addmm`` (``mm`` without a bias), like ``F.linear``."""
    return aten.mm(x, weight.t()) if bias is None else aten.addmm(bias, x, weight.t())


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: int, num_heads: int) -> torch.Tensor:
    """Multi-head attention of projected ``q [B·S_q, d], k, v [B·S_k, d]`` -> ``[B·S_q, d]``."""
    d = q.shape[-1]
    hd = d // num_heads

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, -1, num_heads, hd).transpose(1, 2)

    out = aten._scaled_dot_product_flash_attention_for_cpu(heads(q), heads(k), heads(v))[0]
    return out.transpose(1, 2).reshape(-1, d)


def native_multi_head_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, embed_dim: int, num_head: int,
    qkv_weight: torch.Tensor, qkv_bias: torch.Tensor, proj_weight: torch.Tensor,
    proj_bias: torch.Tensor, mask: Any = None, need_weights: bool = True,
    average_attn_weights: bool = True, mask_type: Any = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``aten._native_multi_head_attention`` (batch-first ``[B, S, d]`` inputs)."""
    batch = query.shape[0]
    wq, wk, wv = qkv_weight.split(embed_dim)
    bq, bk, bv = qkv_bias.split(embed_dim)
    q = _linear(query.reshape(-1, embed_dim), wq, bq)
    k = _linear(key.reshape(-1, embed_dim), wk, bk)
    v = _linear(value.reshape(-1, embed_dim), wv, bv)
    out = _linear(_attention(q, k, v, batch, num_head), proj_weight, proj_bias)
    return out.reshape(query.shape), None


def transformer_encoder_layer_fwd(
    src: torch.Tensor, embed_dim: int, num_heads: int, qkv_weight: torch.Tensor,
    qkv_bias: torch.Tensor, proj_weight: torch.Tensor, proj_bias: torch.Tensor, use_gelu: bool,
    norm_first: bool, eps: float, norm_weight_1: torch.Tensor, norm_bias_1: torch.Tensor,
    norm_weight_2: torch.Tensor, norm_bias_2: torch.Tensor, ffn_weight_1: torch.Tensor,
    ffn_bias_1: torch.Tensor, ffn_weight_2: torch.Tensor, ffn_bias_2: torch.Tensor,
    mask: Any = None, mask_type: Any = None,
) -> torch.Tensor:
    """``aten._transformer_encoder_layer_fwd`` (batch-first ``[B, S, d]`` input)."""
    batch = src.shape[0]

    def norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return aten.native_layer_norm(x, [embed_dim], w, b, eps)[0]

    def self_attention(x: torch.Tensor) -> torch.Tensor:
        q, k, v = _linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1)
        return _linear(_attention(q, k, v, batch, num_heads), proj_weight, proj_bias)

    def feed_forward(x: torch.Tensor) -> torch.Tensor:
        h = _linear(x, ffn_weight_1, ffn_bias_1)
        h = aten.gelu(h) if use_gelu else aten.relu(h)
        return _linear(h, ffn_weight_2, ffn_bias_2)

    x = src.reshape(-1, embed_dim)
    if norm_first:
        x = x + self_attention(norm(x, norm_weight_1, norm_bias_1))
        x = x + feed_forward(norm(x, norm_weight_2, norm_bias_2))
    else:
        x = norm(x + self_attention(x), norm_weight_1, norm_bias_1)
        x = norm(x + feed_forward(x), norm_weight_2, norm_bias_2)
    return x.reshape(src.shape)


FUSED_DECOMPOSITIONS = {
    aten._transformer_encoder_layer_fwd.default: transformer_encoder_layer_fwd,
    aten._native_multi_head_attention.default: native_multi_head_attention,
}
