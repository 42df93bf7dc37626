"""Per-operator FLOP rules for the dispatch-level counter (internal).

Every aten operator that reaches the counter is classified once (the result is memoised per
``OpOverload``) into one of these kinds:

``zero``       data movement and bookkeeping: views, copies, factories, gathers, concatenation,
               sorting, random numbers. 0 FLOPs by convention.
``matmul``     matmul / convolution / attention kernels. The multiply-add part comes from torch's
               own formula registry (:data:`torch.utils.flop_counter.flop_registry`, 2 FLOPs per
               multiply-add) or from the formulas here for kernels torch does not cover (``mv``,
               ``dot``, ``addmv``, ``addr``, ``addbmm``, ``_addmm_activation`` and CPU attention).
               That part is the *matmul subtotal*. A fused bias add (``addmm`` with ``beta != 0``,
               a convolution bias, ...) is counted too, 1 FLOP per output element, outside the
               subtotal.
``special``    ops with an explicit rule: softmax-like ops and cumulative reductions (1 FLOP per
               input element), scatter-add family (1 FLOP per source element), ``cdist``.
``reduction``  ops tagged ``torch.Tag.reduction`` (sum, mean, amax, norm, var, ...): 1 FLOP per
               input element.
``pointwise``  ops tagged ``torch.Tag.pointwise``, and ``X_backward`` where ``X`` is pointwise:
               1 FLOP per output element.
``composite``  ops with a CompositeImplicitAutograd kernel that still reach the counter (e.g.
               ``aten.linear`` under ``torch.inference_mode``): they are decomposed and their
               parts counted.
``decomp``     ops with a reference decomposition in ``torch._decomp`` (layer norm, batch norm,
               losses, ...): counted as their decomposition would be, by running it once on meta
               tensors per input signature (memoised).
``unknown``    anything else: on floating-point data, reported in :attr:`FlopReport.uncounted`
               with its call count and a warning; on integer/boolean data only, free.

Pointwise, reduction, scatter and softmax rules count only when a floating-point (or complex)
tensor is involved: integer index arithmetic and boolean masks are bookkeeping, not FLOPs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.utils.flop_counter as _tfc
from torch.utils._pytree import tree_flatten, tree_map

aten = torch.ops.aten

# ``(matmul_flops, other_flops)`` for one call.
Cost = tuple[int, int]
Rule = Callable[[Any, tuple, dict, Any], Cost]

ZERO = "zero"
MATMUL = "matmul"
SPECIAL = "special"
REDUCTION = "reduction"
POINTWISE = "pointwise"
COMPOSITE = "composite"
DECOMP = "decomp"
UNKNOWN = "unknown"

# Data movement, bookkeeping and random numbers: 0 FLOPs (convention: gathers, copies, views = 0).
ZERO_OPS = frozenset(
    """
    detach alias lift_fresh lift_fresh_copy clone copy copy_ _to_copy _copy_from
    _copy_from_and_resize contiguous positive resolve_conj resolve_neg _conj _neg_view
    empty empty_like empty_strided new_empty new_empty_strided empty_permuted
    zeros zeros_like new_zeros ones ones_like new_ones full full_like new_full fill fill_ zero_
    scalar_tensor arange linspace logspace eye
    rand rand_like randn randn_like randint randint_like randperm normal normal_ uniform uniform_
    bernoulli bernoulli_ exponential_ random_ multinomial
    gather index_select index _unsafe_index embedding take take_along_dim
    cat stack hstack vstack block_diag diag_embed
    index_copy index_copy_ index_fill index_fill_ masked_scatter masked_scatter_ masked_select
    nonzero nonzero_static argwhere
    repeat repeat_interleave tile flip roll rot90 tril triu tril_ triu_
    constant_pad_nd reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d
    replication_pad2d replication_pad3d im2col col2im
    select_backward slice_backward diagonal_backward as_strided_scatter slice_scatter
    select_scatter diagonal_scatter
    _local_scalar_dense item sort argsort topk kthvalue msort unique _unique _unique2
    unique_consecutive unique_dim searchsorted bucketize one_hot bincount histc
    resize_ resize_as_ set_ _reshape_copy _pin_memory pin_memory
    _assert_async _assert_scalar _functional_assert_async _functional_assert_scalar
    sym_constrain_range sym_constrain_range_for_size record_stream is_same_size
    _has_same_storage_numel equal isin triu_indices tril_indices
    _make_dep_token _linalg_check_errors
    """.split()
)

# Scatter-family reductions: 1 FLOP per source element. Value: positional index of the source
# argument (the numel of which is counted).
_SCATTER_SOURCE_ARG = {
    "index_add": 3,
    "index_add_": 3,
    "scatter_add": 3,
    "scatter_add_": 3,
    "scatter_reduce": 3,
    "scatter_reduce_": 3,
    "index_reduce": 3,
    "index_reduce_": 3,
    "segment_reduce": 0,
    "_segment_reduce_backward": 2,
    "embedding_dense_backward": 0,
}

# Softmax-like and cumulative reductions: 1 FLOP per element of the given argument.
_PER_ELEMENT_OF_ARG = {
    "_softmax": 0,
    "_log_softmax": 0,
    "_safe_softmax": 0,
    "_softmax_backward_data": 0,
    "_log_softmax_backward_data": 0,
    "cumsum": 0,
    "cumsum_": 0,
    "cumprod": 0,
    "cumprod_": 0,
    "logcumsumexp": 0,
    "cummax": 0,
    "cummin": 0,
    "_cummax_helper": 0,
    "_cummin_helper": 0,
}


def _is_float(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and (t.dtype.is_floating_point or t.dtype.is_complex)


def _first_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)):
        for y in x:
            if isinstance(y, torch.Tensor):
                return y
    return None


def involves_float(args: tuple, out: Any) -> bool:
    """Whether the output or a (top-level or listed) argument is a floating/complex tensor."""
    t = _first_tensor(out)
    if _is_float(t):
        return True
    for a in args:
        if _is_float(a):
            return True
        if isinstance(a, (tuple, list)) and any(_is_float(b) for b in a):
            return True
    return False


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _beta_nonzero(args: tuple, kwargs: dict, i: int) -> bool:
    beta = _arg(args, kwargs, i, "beta", 1)
    return not (isinstance(beta, (int, float)) and beta == 0)


# ----------------------------------------------------------------------------------------------
# rules


def _pointwise(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    t = _first_tensor(out)
    if t is None or not involves_float(args, out):
        return 0, 0
    return 0, t.numel()


def _reduction(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    x = _first_tensor(args[0]) if args else None
    if x is None or not (_is_float(x) or involves_float(args, out)):
        return 0, 0
    return 0, x.numel()


def _per_element_rule(arg_index: int) -> Rule:
    def rule(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
        x = args[arg_index] if len(args) > arg_index else None
        if not _is_float(x):
            return 0, 0
        return 0, x.numel()

    return rule


def _scatter_rule(src_index: int) -> Rule:
    def rule(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
        src = args[src_index] if len(args) > src_index else None
        if not _is_float(src):
            return 0, 0
        return 0, src.numel()

    return rule


def _scatter_overloaded(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    """``scatter``/``scatter_``: a plain scatter is a copy (0); ``reduce=`` makes it a
    scatter-reduction (1 FLOP per source element; per index element for a scalar value)."""
    if kwargs.get("reduce") is None:
        return 0, 0
    src = args[3] if len(args) > 3 else None
    if isinstance(src, torch.Tensor):
        return (0, src.numel()) if _is_float(src) else (0, 0)
    self_ = args[0]
    return (0, args[2].numel()) if _is_float(self_) else (0, 0)


def _index_put(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    """``index_put(self, indices, values, accumulate)``: a copy unless ``accumulate=True``, then a
    scatter-add of 1 FLOP per written element."""
    if not _arg(args, kwargs, 3, "accumulate", False):
        return 0, 0
    self_, indices, values = args[0], args[1], args[2]
    if not _is_float(self_):
        return 0, 0
    if values.dim() > 0 and values.numel() > 1:
        return 0, values.numel()
    # Broadcast (scalar) values: count the indexed elements.
    shapes = []
    n_indexed_dims = 0
    for idx in indices:
        if idx is None:
            continue
        if idx.dtype == torch.bool:
            shapes.append((int(idx.sum()),))
            n_indexed_dims += idx.dim()
        else:
            shapes.append(tuple(idx.shape))
            n_indexed_dims += 1
    n_idx = math.prod(torch.broadcast_shapes(*shapes)) if shapes else 1
    rest = self_.numel() // max(1, math.prod(self_.shape[:n_indexed_dims]))
    return 0, n_idx * rest


def _cdist(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    """``_cdist_forward(x1 [.., n, d], x2 [.., m, d])``: difference, square and sum per pair and
    coordinate (3 FLOPs) and one root per pair; the backward is counted the same way."""
    if str(func.overloadpacket) == "aten._cdist_backward":
        x1, x2 = args[1], args[2]
    else:
        x1, x2 = args[0], args[1]
    *batch, n, d = x1.shape
    m = x2.shape[-2]
    pairs = math.prod(batch) * n * m
    return 0, 3 * pairs * d + pairs


# --- matmul family -----------------------------------------------------------------------------


def _shapes(x: Any) -> Any:
    """Tensors -> shapes, through tuples/lists (a fast stand-in for torch's pytree mapping)."""
    if isinstance(x, torch.Tensor):
        return x.shape
    if isinstance(x, (tuple, list)):
        return type(x)(_shapes(y) for y in x)
    return x


def _torch_formula(packet: Any) -> Rule:
    """torch's registered formula for ``packet``. Shape-based formulas are called on shapes
    directly (their ``__wrapped__``), skipping torch's pytree-based wrapper, which costs more than
    the op it counts for small matmuls; raw formulas get the tensors."""
    formula = _tfc.flop_registry[packet]
    raw = getattr(formula, "__wrapped__", None)
    if raw is not None and getattr(formula, "__name__", "") == getattr(raw, "__name__", None):

        def rule(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
            shaped = {k: _shapes(v) for k, v in kwargs.items()} if kwargs else {}
            return int(raw(*_shapes(args), **shaped, out_shape=_shapes(out))), 0

        return rule

    def rule_raw(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
        return int(formula(*args, **kwargs, out_val=out)), 0

    return rule_raw


# mm / addmm / bmm / baddbmm: the same formula as torch's registry (2·m·n·k per matrix product),
# inlined because torch's registered functions map their arguments through pytree, which costs
# more than a small matmul. tests/flops check equality with torch's FlopCounterMode.


def _mm(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    (m, k), n = args[0].shape, args[1].shape[1]
    return 2 * m * n * k, 0


def _addmm(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    """``beta·self + mat1 @ mat2``: the product, plus 1 FLOP per output element for the bias
    add (outside the matmul subtotal) when ``beta != 0``."""
    (m, k), n = args[1].shape, args[2].shape[1]
    return 2 * m * n * k, (m * n if _beta_nonzero(args, kwargs, 3) else 0)


def _bmm(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    (b, m, k), n = args[0].shape, args[1].shape[2]
    return 2 * b * m * n * k, 0


def _baddbmm(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    (b, m, k), n = args[1].shape, args[2].shape[2]
    return 2 * b * m * n * k, (b * m * n if _beta_nonzero(args, kwargs, 3) else 0)


def _conv_rule(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    mm, _ = _torch_formula(func.overloadpacket)(func, args, kwargs, out)
    bias = args[2] if len(args) > 2 else None
    extra = _first_tensor(out).numel() if isinstance(bias, torch.Tensor) else 0
    return mm, extra


def _conv_backward_rule(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    mm, _ = _torch_formula(aten.convolution_backward)(func, args, kwargs, out)
    output_mask = args[-1] if args else None
    extra = 0
    if isinstance(output_mask, (list, tuple)) and len(output_mask) == 3 and output_mask[2]:
        extra = args[0].numel()  # grad_bias = sum of grad_output
    return mm, extra


def _mv(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    a = args[0]
    return 2 * a.shape[0] * a.shape[1], 0


def _dot(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    return 2 * args[0].numel(), 0


def _addmv(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    a = args[1]
    bias = a.shape[0] if _beta_nonzero(args, kwargs, 3) else 0
    return 2 * a.shape[0] * a.shape[1], bias


def _addr(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    m, n = args[1].numel(), args[2].numel()
    bias = m * n if _beta_nonzero(args, kwargs, 3) else 0
    return 2 * m * n, bias


def _addbmm(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    b, m, k = args[1].shape
    n = args[2].shape[2]
    bias = m * n if _beta_nonzero(args, kwargs, 3) else 0
    return 2 * b * m * n * k, bias


def _addmm_activation(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
    m, k = args[1].shape
    n = args[2].shape[1]
    bias = m * n if _beta_nonzero(args, kwargs, 3) else 0
    return 2 * m * n * k, bias + m * n


# --- attention kernels ---------------------------------------------------------------------------
# Every fused attention kernel -- CPU flash, CUDA flash / memory-efficient / cuDNN, the
# overrideable (XPU/PrivateUse1) one and the lower-level ``_flash_attention_*`` /
# ``_efficient_attention_*`` -- gets one rule: torch's matmul formula (2 products forward, 5
# backward: flash kernels recompute the scores) plus 1 FLOP per attention score for the softmax
# (forward) or its backward. So one model counts the same on every device.
# name -> (index of the query argument, is backward); key and value follow the query.
_ATTENTION = {
    "_scaled_dot_product_flash_attention_for_cpu": (0, False),
    "_scaled_dot_product_fused_attention_overrideable": (0, False),
    "_scaled_dot_product_flash_attention": (0, False),
    "_scaled_dot_product_efficient_attention": (0, False),
    "_scaled_dot_product_cudnn_attention": (0, False),
    "_flash_attention_forward": (0, False),
    "_efficient_attention_forward": (0, False),
    "_scaled_dot_product_flash_attention_for_cpu_backward": (1, True),
    "_scaled_dot_product_fused_attention_overrideable_backward": (1, True),
    "_scaled_dot_product_flash_attention_backward": (1, True),
    "_scaled_dot_product_efficient_attention_backward": (1, True),
    "_scaled_dot_product_cudnn_attention_backward": (1, True),
    "_flash_attention_backward": (1, True),
    "_efficient_attention_backward": (1, True),
}


def _attention_rule(name: str, packet: Any) -> Rule:
    """The common rule of :data:`_ATTENTION` for one kernel.

    The matmul part is torch's registered formula where torch has one (it knows each kernel's
    layout, ``[B, H, S, D]`` or ``[B, S, H, D]``, and variable-length batches), else torch's
    ``[B, H, S, D]`` formula on the query/key/value shapes (the CPU and overrideable kernels).
    The number of scores follows from the matmul count: forward ``2·S_q·S_k·(d_q + d_v)`` per
    batch and head, backward ``2·S_q·S_k·(3 d_q + 2 d_v)`` (torch's formulas), so it is right
    in every layout.
    """
    q_index, backward = _ATTENTION[name]
    registered = _torch_formula(packet) if packet in _tfc.flop_registry else None

    def rule(func: Any, args: tuple, kwargs: dict, out: Any) -> Cost:
        q, k, v = args[q_index], args[q_index + 1], args[q_index + 2]
        if registered is not None:
            mm, _ = registered(func, args, kwargs, out)
        elif backward:
            mm = int(_tfc.sdpa_backward_flop_count(args[0].shape, q.shape, k.shape, v.shape))
        else:
            mm = int(_tfc.sdpa_flop_count(q.shape, k.shape, v.shape))
        d_q, d_v = q.shape[-1], v.shape[-1]
        per_score = 2 * (3 * d_q + 2 * d_v) if backward else 2 * (d_q + d_v)
        return mm, mm // per_score

    return rule


_EXTRA_MATMUL: dict[str, Rule] = {
    "mm": _mm,
    "addmm": _addmm,
    "addmm_": _addmm,
    "bmm": _bmm,
    "baddbmm": _baddbmm,
    "baddbmm_": _baddbmm,
    "mv": _mv,
    "dot": _dot,
    "vdot": _dot,
    "addmv": _addmv,
    "addmv_": _addmv,
    "addr": _addr,
    "addr_": _addr,
    "addbmm": _addbmm,
    "addbmm_": _addbmm,
    "_addmm_activation": _addmm_activation,
}

_CONV_PACKETS = {"convolution", "_convolution", "cudnn_convolution", "convolution_overrideable"}


def _matmul_rule(name: str, packet: Any) -> Rule | None:
    if name in _EXTRA_MATMUL:
        return _EXTRA_MATMUL[name]
    if name in _ATTENTION:
        return _attention_rule(name, packet)
    if packet not in _tfc.flop_registry:
        return None
    if name in _CONV_PACKETS:
        return _conv_rule
    if name == "convolution_backward":
        return _conv_backward_rule
    return _torch_formula(packet)


# ----------------------------------------------------------------------------------------------
# classification


def _is_view(func: Any) -> bool:
    for r in func._schema.returns:
        ai = r.alias_info
        if ai is not None and not ai.is_write:
            return True
    return False


def _has_pointwise_forward(name: str) -> bool:
    """``X_backward`` (e.g. ``elu_backward``) counts as pointwise when ``X`` is tagged pointwise."""
    if not name.endswith("_backward"):
        return False
    fwd = getattr(aten, name[: -len("_backward")], None)
    if not isinstance(fwd, torch._ops.OpOverloadPacket):
        return False
    return any(torch.Tag.pointwise in getattr(fwd, ov).tags for ov in fwd.overloads())


def _has_composite_implicit(func: Any) -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd")
    except Exception:  # pragma: no cover - defensive: non-aten ops without a schema name
        return False


def _decomposition(func: Any) -> Callable[..., Any] | None:
    """torch's reference decomposition of ``func``, or ours for a fused kernel (:mod:`._fused`)."""
    from torch._decomp import decomposition_table

    from nnip_scaling.flops._fused import FUSED_DECOMPOSITIONS

    return FUSED_DECOMPOSITIONS.get(func) or decomposition_table.get(func)


@functools.lru_cache(maxsize=None)
def classify(func: Any) -> tuple[str, str, Rule | None]:
    """``(kind, op_name, rule)`` for one ``OpOverload``; memoised (a pure function of the op)."""
    packet = func.overloadpacket
    name = packet.__name__
    op_name = str(packet)
    if not op_name.startswith("aten."):
        # torch-scatter's kernels (optional backend of nnip_scaling.ops): scatter/segment
        # reductions, 1 FLOP per source element (the source is their first argument).
        if op_name.startswith("torch_scatter.") and name.startswith(("scatter_", "segment_")):
            return SPECIAL, op_name, _scatter_rule(0)
        # Other custom ops: decompose when they can, else report them.
        if _has_composite_implicit(func):
            return COMPOSITE, op_name, None
        return UNKNOWN, op_name, None
    if name in ZERO_OPS or torch.Tag.view_copy in func.tags or _is_view(func):
        return ZERO, op_name, None
    mm = _matmul_rule(name, packet)
    if mm is not None:
        return MATMUL, op_name, mm
    if name in _SCATTER_SOURCE_ARG:
        return SPECIAL, op_name, _scatter_rule(_SCATTER_SOURCE_ARG[name])
    if name in ("scatter", "scatter_"):
        return SPECIAL, op_name, _scatter_overloaded
    if name in ("index_put", "index_put_", "_index_put_impl_", "_index_put_impl", "_unsafe_index_put"):
        return SPECIAL, op_name, _index_put
    if name in _PER_ELEMENT_OF_ARG:
        return SPECIAL, op_name, _per_element_rule(_PER_ELEMENT_OF_ARG[name])
    if name in ("_cdist_forward", "_cdist_backward"):
        return SPECIAL, op_name, _cdist
    if torch.Tag.reduction in func.tags:
        return REDUCTION, op_name, _reduction
    if torch.Tag.pointwise in func.tags or _has_pointwise_forward(name):
        return POINTWISE, op_name, _pointwise
    if _has_composite_implicit(func):
        return COMPOSITE, op_name, None
    if _decomposition(func) is not None:
        return DECOMP, op_name, None
    return UNKNOWN, op_name, None


# ----------------------------------------------------------------------------------------------
# decomposition on meta tensors


def _to_meta(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return torch.empty_strided(tuple(x.shape), tuple(x.stride()), dtype=x.dtype, device="meta")
    return x


def _signature_leaf(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return ("T", tuple(x.shape), tuple(x.stride()), x.dtype)
    if isinstance(x, (int, float, bool, str, type(None), torch.dtype, torch.memory_format, torch.layout)):
        return x
    if isinstance(x, torch.device):
        return ("device",)  # the count does not depend on the device
    return repr(x)


def signature(func: Any, args: tuple, kwargs: dict) -> tuple:
    """A hashable key for ``(func, shapes, dtypes, non-tensor arguments)``."""
    leaves, spec = tree_flatten((args, kwargs))
    return (func, str(spec), tuple(_signature_leaf(x) for x in leaves))


def meta_inputs(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return tree_map(_to_meta, (args, kwargs))
