"""Dispatch-level FLOP counter: :func:`count_flops` and its result :class:`FlopReport`.

The counter is a :class:`torch.utils._python_dispatch.TorchDispatchMode`, so it sees exactly the
aten operators that execute -- in the forward pass, in any ``torch.autograd.grad`` call made inside
it (conservative forces), and in the backward and double backward of a training step. Nothing is
traced or re-run: what is counted is what runs.

Conventions (docs/flops.md, DESIGN.md):

* one multiply-add = 2 FLOPs (matmul ``[m, k] @ [k, n]`` = ``2·m·n·k``; torch's formulas for
  matmul, convolution and attention are reused from :mod:`torch.utils.flop_counter`);
* pointwise op = 1 FLOP per output element (whatever its arithmetic: ``exp``, ``silu`` and ``add``
  all count 1);
* reduction (sum, mean, amax, norm, softmax-like, cumulative) and scatter-add (``index_add``,
  ``scatter_add``, ``scatter_reduce``, segment reductions) = 1 FLOP per input (source) element;
* gather, ``index_select``, embedding lookups, copies, ``to``/``clone``, views, factories = 0;
* ops on integer/boolean tensors only (index arithmetic, masks) = 0.

The matmul subtotal (:attr:`FlopReport.matmul`) is what torch's ``FlopCounterMode``, DeepSpeed's
profiler and the ``6·N·D`` literature count; :attr:`FlopReport.total` adds everything else.

Paper: section 4.1, "Counting FLOPs", eq. (3): ``C ≈ 3·κ·N·D``.
"""

from __future__ import annotations

import bisect
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nnip_scaling.flops import _rules

__all__ = ["FlopReport", "UncountedOpsWarning", "count_flops"]


class UncountedOpsWarning(UserWarning):
    """Floating-point ops ran that have no FLOP rule: they count 0 and the totals are lower bounds."""

ROOT = ""  # by_module key of the module passed to count_flops


def _frozen(d: Mapping[str, int], *, sort: bool) -> Mapping[str, int]:
    items = sorted(d.items(), key=lambda kv: (-kv[1], kv[0])) if sort else list(d.items())
    return MappingProxyType(dict(items))


def _si(n: float, unit: str = "") -> str:
    """Format a count with an SI prefix, 4 significant digits (``_si(1234, "FLOP")`` ->
    ``"1.234 kFLOP"``)."""
    n = float(n)
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.4g} {prefix}{unit}"
    return f"{n:.4g} {unit}".rstrip()


@dataclass(frozen=True)
class FlopReport:
    """FLOPs counted by :func:`count_flops`.

    Attributes:
        total: all FLOPs counted (``forward + backward``).
        matmul: the subtotal from matmul / convolution / attention formulas (2 FLOPs per
            multiply-add; bias adds excluded) -- comparable to torch's ``FlopCounterMode``,
            DeepSpeed and ``6·N·D``.
        forward: FLOPs of the call ``fn(*args, **kwargs)`` (including any ``autograd.grad`` made
            inside it, e.g. conservative forces) and of ``loss_fn``.
        backward: FLOPs of the backward pass (``backward=True`` only; else 0).
        by_op: aten op name (``"aten.mm"``) -> FLOPs, largest first. A fused bias add is counted
            under its matmul op (``aten.addmm``), an op counted through its decomposition under
            its own name (``aten.native_layer_norm``).
        by_module: module qualified name -> forward FLOPs, inclusive (a module's count contains
            its submodules'), for every module called, in call order (0 for a free one such as an
            embedding lookup). The module passed to :func:`count_flops` is ``""``; names are those
            of ``named_modules()``. Modules reached from a plain function are named by their
            class (``"MLP"``, ``"MLP.0"``). Ops run by autograd inside the forward (conservative
            forces) are attributed to the module whose forward created the autograd node being
            differentiated.
        by_module_backward: module qualified name -> backward FLOPs, attributed in the same
            way (the module whose forward created the node), every module called listed;
            empty unless ``backward=True``.
        uncounted: aten op name -> number of calls, for floating-point ops that ran with no
            FLOP rule and are not known to be free. They count 0 in every total above; a
            non-empty mapping means the totals are lower bounds, and :func:`count_flops` warns
            (:class:`UncountedOpsWarning`). Ops on integer/boolean tensors only are free by
            convention and never listed.
        uncounted_elements: aten op name -> floating-point output elements of those calls (the
            op's FLOPs if it cost 1 per output element, like a pointwise op): the scale of what
            is missing (:meth:`uncounted_share`).
    """

    total: int
    matmul: int
    forward: int
    backward: int
    by_op: Mapping[str, int] = field(default_factory=dict)
    by_module: Mapping[str, int] = field(default_factory=dict)
    by_module_backward: Mapping[str, int] = field(default_factory=dict)
    uncounted: Mapping[str, int] = field(default_factory=dict)
    uncounted_elements: Mapping[str, int] = field(default_factory=dict)

    def uncounted_share(self, op: str) -> float:
        """Share the uncounted ``op`` would have of the total at 1 FLOP per output element:
        ``elements / (total + all uncounted elements)``."""
        missing = sum(self.uncounted_elements.values())
        return self.uncounted_elements.get(op, 0) / max(1, self.total + missing)

    @property
    def non_matmul(self) -> int:
        """``total - matmul``: pointwise, reductions, scatters, softmax, bias adds."""
        return self.total - self.matmul

    def table(self, *, max_depth: int | None = None, max_ops: int | None = 25) -> str:
        """A readable multi-line summary: totals, FLOPs per op, per module, uncounted ops.

        Args:
            max_depth: show modules down to this nesting depth (root = 0); ``None`` for all.
            max_ops: show at most this many ops (largest first); ``None`` for all.
        """
        if max_depth is not None and (not isinstance(max_depth, int) or max_depth < 0):
            raise ValueError(f"max_depth must be a non-negative int or None, got {max_depth!r}")
        if max_ops is not None and (not isinstance(max_ops, int) or max_ops < 1):
            raise ValueError(f"max_ops must be a positive int or None, got {max_ops!r}")
        lines = [
            f"FLOPs total {_si(self.total, 'FLOP')}  (forward {_si(self.forward, 'FLOP')}, "
            f"backward {_si(self.backward, 'FLOP')})",
            f"matmul/conv/attention subtotal {_si(self.matmul, 'FLOP')} "
            f"({_pct(self.matmul, self.total)} of total)",
            "",
        ]
        ops = list(self.by_op.items())
        shown = ops if max_ops is None else ops[:max_ops]
        w = max([len("op")] + [len(k) for k, _ in shown])
        lines.append(f"{'op':<{w}}  {'FLOP':>11}  {'share':>7}")
        for k, v in shown:
            lines.append(f"{k:<{w}}  {_si(v):>11}  {_pct(v, self.total):>7}")
        if len(ops) > len(shown):
            rest = sum(v for _, v in ops[len(shown) :])
            lines.append(f"{'(' + str(len(ops) - len(shown)) + ' more)':<{w}}  {_si(rest):>11}  "
                         f"{_pct(rest, self.total):>7}")
        names = list(self.by_module) + [n for n in self.by_module_backward if n not in self.by_module]
        if names:
            rows = []
            for n in names:
                depth = 0 if n == ROOT else n.count(".") + 1
                if max_depth is not None and depth > max_depth:
                    continue
                label = "  " * depth + ("(root)" if n == ROOT else n.rsplit(".", 1)[-1])
                rows.append((label, self.by_module.get(n, 0), self.by_module_backward.get(n, 0)))
            w = max([len("module")] + [len(r[0]) for r in rows])
            lines += ["", f"{'module':<{w}}  {'forward':>11}  {'backward':>11}"]
            for label, f, b in rows:
                lines.append(f"{label:<{w}}  {_si(f):>11}  {_si(b):>11}")
        if self.uncounted:
            lines += ["", uncounted_message(self.uncounted, self.uncounted_elements, self.total)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f}%" if b else "-"


def uncounted_message(calls: Mapping[str, int], elements: Mapping[str, int], total: int) -> str:
    """One sentence naming every uncounted op, its calls and its share (see
    :meth:`FlopReport.uncounted_share`)."""
    missing = sum(elements.values())
    parts = [f"{op} (x{n} calls; {100.0 * elements.get(op, 0) / max(1, total + missing):.2g}% of the "
             "total at 1 FLOP per output element)" for op, n in calls.items()]
    return ("floating-point ops without a FLOP rule, counted as 0 (the totals are lower bounds): "
            + ", ".join(parts))


def _float_elements(out: Any) -> int:
    if isinstance(out, torch.Tensor):
        return out.numel() if (out.dtype.is_floating_point or out.dtype.is_complex) else 0
    if isinstance(out, (tuple, list)):
        return sum(_float_elements(o) for o in out)
    return 0


# ----------------------------------------------------------------------------------------------
# accumulation and module attribution


class _Tally:
    """Mutable accumulator used during one count (never escapes :func:`count_flops`)."""

    def __init__(self) -> None:
        self.matmul = 0
        self.forward = 0
        self.backward = 0
        self.in_backward = False
        self.by_op: defaultdict[str, int] = defaultdict(int)
        self.by_module: defaultdict[str, int] = defaultdict(int)
        self.by_module_backward: defaultdict[str, int] = defaultdict(int)
        self.uncounted: defaultdict[str, int] = defaultdict(int)
        self.uncounted_elements: defaultdict[str, int] = defaultdict(int)

    def note_uncounted(self, op_name: str, args: tuple, out: Any) -> None:
        """An op without a rule ran: listed if it touched floating-point data (else free)."""
        if _rules.involves_float(args, out):
            self.uncounted[op_name] += 1
            self.uncounted_elements[op_name] += _float_elements(out)

    def report(self, modules: Sequence[str] = (), *, backward: bool = False) -> FlopReport:
        """Freeze the counts; ``modules`` lists every module called, in call order (modules
        that cost nothing get 0)."""
        fwd = {n: self.by_module.get(n, 0) for n in modules}
        fwd.update((n, v) for n, v in self.by_module.items() if n not in fwd)
        bwd = {n: self.by_module_backward.get(n, 0) for n in modules} if backward else {}
        bwd.update((n, v) for n, v in self.by_module_backward.items() if n not in bwd)
        return FlopReport(
            total=self.forward + self.backward,
            matmul=self.matmul,
            forward=self.forward,
            backward=self.backward,
            by_op=_frozen(self.by_op, sort=True),
            by_module=_frozen(fwd, sort=False),
            by_module_backward=_frozen(bwd, sort=False),
            uncounted=_frozen(self.uncounted, sort=True),
            uncounted_elements=_frozen(self.uncounted_elements, sort=True),
        )


def _clean_name(name: str) -> str:
    # A torch.compile'd submodule sits under an OptimizedModule: drop the wrapper's segment.
    return ".".join(p for p in name.split(".") if p != "_orig_mod")


_get_sequence_nr: Callable[[], int] | None = getattr(torch._C._autograd, "_get_sequence_nr", None)
_current_node: Callable[[], Any] | None = getattr(torch._C, "_current_autograd_node", None)


class _ModuleTracker:
    """Module stack from global forward pre/post hooks, plus autograd sequence-number intervals.

    Each module call records the interval ``[start, end)`` of autograd sequence numbers handed
    out during its forward. An op run by the autograd engine executes some node ``n``; the
    innermost interval containing ``n._sequence_nr()`` names the module whose forward created
    ``n``. Intervals of nested calls nest (sequence numbers are monotonic per thread), so the
    innermost containing interval is found by a binary search followed by a walk up the parents.
    Unlike torch's ModuleTracker this installs no autograd hooks on module inputs/outputs, so
    ``torch.autograd.grad`` inside a forward is unaffected (pytorch issue 131753).
    """

    def __init__(self, names: Mapping[int, str]) -> None:
        self._names = names
        self._stack: list[int] = []
        self._stack_modules: list[torch.nn.Module] = []
        self.current: tuple[str, ...] = ()
        self._starts: list[int] = []
        self._ends: list[int | None] = []
        self._parents: list[int] = []
        self._chains: list[tuple[str, ...]] = []
        self.called: dict[str, None] = {}  # module names in first-call order
        self._seq_ok = _get_sequence_nr is not None and _current_node is not None

    def _name_of(self, module: torch.nn.Module) -> str:
        known = self._names.get(id(module))
        if known is not None:
            return known
        if self._stack:
            parent_chain = self._chains[self._stack[-1]]
            parent_name = parent_chain[-1] if parent_chain else ""
            parent = self._stack_modules[-1]
            child = type(module).__name__
            for key, m in parent._modules.items():
                if m is module:
                    child = key
                    break
            return _clean_name(f"{parent_name}.{child}" if parent_name else child)
        return type(module).__name__

    def pre(self, module: torch.nn.Module, args: Any) -> None:
        name = self._name_of(module)
        self.called.setdefault(name, None)
        idx = len(self._starts)
        self._starts.append(_get_sequence_nr() if self._seq_ok else 0)
        self._ends.append(None)
        self._parents.append(self._stack[-1] if self._stack else -1)
        chain = self.current if name in self.current else self.current + (name,)
        self._chains.append(chain)
        self._stack.append(idx)
        self._stack_modules.append(module)
        self.current = chain

    def post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if not self._stack:
            return
        idx = self._stack.pop()
        self._stack_modules.pop()
        self._ends[idx] = _get_sequence_nr() if self._seq_ok else 0
        self.current = self._chains[self._stack[-1]] if self._stack else ()

    def _chain_of_node(self, seq: int) -> tuple[str, ...]:
        i = bisect.bisect_right(self._starts, seq) - 1
        while i >= 0:
            end = self._ends[i]
            if end is None or seq < end:
                return self._chains[i]
            i = self._parents[i]
        return ()

    def attribution(self) -> tuple[str, ...]:
        """Module names (outermost first) that the op now being dispatched belongs to."""
        if self._seq_ok:
            node = _current_node()
            if node is not None:
                chain = self._chain_of_node(node._sequence_nr())
                if chain:
                    return chain
        return self.current


class _CountingMode(TorchDispatchMode):
    """Counts FLOPs of every aten op dispatched while active (see :mod:`._rules`)."""

    def __init__(self, tally: _Tally, tracker: _ModuleTracker | None, decomp_cache: dict) -> None:
        super().__init__()
        self.tally = tally
        self.tracker = tracker
        self.decomp_cache = decomp_cache

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs if kwargs else {}
        if not isinstance(func, torch._ops.OpOverload):
            return NotImplemented
        kind, op_name, rule = _rules.classify(func)
        if kind == _rules.COMPOSITE:
            with self:
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
            kind = _rules.UNKNOWN
        out = func(*args, **kwargs)
        if kind == _rules.ZERO:
            return out
        if kind == _rules.UNKNOWN:
            self.tally.note_uncounted(op_name, args, out)
            return out
        if kind == _rules.DECOMP:
            cost = self._decomposed_cost(func, args, kwargs)
            if cost is None:
                self.tally.note_uncounted(op_name, args, out)
                return out
            mm, other = cost
        else:
            mm, other = rule(func, args, kwargs, out)
        self._add(op_name, mm, mm + other)
        return out

    def _add(self, op_name: str, mm: int, flops: int) -> None:
        if not flops:
            return
        t = self.tally
        t.matmul += mm
        t.by_op[op_name] += flops
        if t.in_backward:
            t.backward += flops
        else:
            t.forward += flops
        if self.tracker is not None:
            target = t.by_module_backward if t.in_backward else t.by_module
            for name in self.tracker.attribution():
                target[name] += flops

    def _decomposed_cost(self, func: Any, args: tuple, kwargs: dict) -> tuple[int, int] | None:
        """FLOPs of ``func`` as its reference decomposition, run once on meta tensors."""
        key = _rules.signature(func, args, kwargs)
        if key not in self.decomp_cache:
            sub = _Tally()
            try:
                margs, mkwargs = _rules.meta_inputs(args, kwargs)
                with _CountingMode(sub, None, self.decomp_cache):
                    _rules._decomposition(func)(*margs, **mkwargs)
                self.decomp_cache[key] = (sub.matmul, sub.forward - sub.matmul, dict(sub.uncounted),
                                          dict(sub.uncounted_elements))
            except Exception:  # a decomposition that cannot run on meta tensors
                self.decomp_cache[key] = None
        hit = self.decomp_cache[key]
        if hit is None:
            return None
        mm, other, inner_calls, inner_elements = hit
        for k, v in inner_calls.items():
            self.tally.uncounted[k] += v
            self.tally.uncounted_elements[k] += inner_elements.get(k, 0)
        return mm, other


# ----------------------------------------------------------------------------------------------
# public entry point


def _strip_compile(module: torch.nn.Module) -> torch.nn.Module:
    orig = getattr(module, "_orig_mod", None)
    while isinstance(orig, torch.nn.Module):
        module = orig
        orig = getattr(module, "_orig_mod", None)
    return module


def _unwrap(
    fn_or_module: Callable[..., Any],
) -> tuple[Callable[..., Any], torch.nn.Module | None, bool]:
    """``(callable to run, root module for names, whether the root must be pushed by hand)``.

    A torch.compile'd module is replaced by the module it wraps (``_orig_mod``), so its eager
    ops are counted under the original names. A bound method of a module (``model.energy``)
    names modules from its owner, which is put on the module stack for the duration of the
    call (its forward hooks do not fire for a method call).
    """
    if isinstance(fn_or_module, torch.nn.Module):
        root = _strip_compile(fn_or_module)
        return root, root, False
    owner = getattr(fn_or_module, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        return fn_or_module, _strip_compile(owner), True
    return fn_or_module, None, False


def _grad_leaves(loss: torch.Tensor) -> list[torch.Tensor]:
    """Leaf tensors requiring grad that ``loss`` depends on (the ``AccumulateGrad`` nodes)."""
    leaves: list[torch.Tensor] = []
    seen: set[int] = set()
    stack = [loss.grad_fn]
    keep = []  # hold node wrappers so that ids stay unique during the walk
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        keep.append(node)
        var = getattr(node, "variable", None)
        if isinstance(var, torch.Tensor):
            leaves.append(var)
        stack.extend(nxt for nxt, _ in node.next_functions)
    return leaves


def _check_loss(loss: Any, *, from_loss_fn: bool) -> torch.Tensor:
    where = "loss_fn(output)" if from_loss_fn else "the function's output"
    hint = "" if from_loss_fn else "; pass loss_fn=... to reduce the output to a scalar loss"
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"backward=True needs a scalar loss tensor, but {where} is a "
                        f"{type(loss).__name__}{hint}")
    if loss.numel() != 1:
        raise ValueError(f"backward=True needs a scalar loss, but {where} has shape "
                         f"{tuple(loss.shape)}{hint}")
    if not (loss.dtype.is_floating_point or loss.dtype.is_complex):
        raise ValueError(f"backward=True needs a floating-point loss, got dtype {loss.dtype}")
    if loss.grad_fn is None:
        raise ValueError(f"backward=True: {where} does not require grad (no trainable "
                         "parameters or inputs in its graph, or it was computed under no_grad)")
    return loss


def count_flops(
    fn_or_module: Callable[..., Any],
    /,
    *args: Any,
    backward: bool = False,
    loss_fn: Callable[[Any], torch.Tensor] | None = None,
    **kwargs: Any,
) -> FlopReport:
    """Count the FLOPs of ``fn_or_module(*args, **kwargs)`` (and of its backward pass).

    Every aten op that runs is counted by the conventions of the module docstring: the forward
    call, any ``torch.autograd.grad`` made inside it (conservative forces,
    ``F = -∂E/∂x``), and -- with ``backward=True`` -- the backward pass of a scalar loss
    (a double backward when the forward itself differentiated with ``create_graph=True``).

    What runs is what is counted: a model that builds its neighbour list inside ``forward``
    has that counted too. Build edges beforehand (``graph.with_edges(...)``) to exclude graph
    construction.

    ``torch.compile``: a compiled module is counted through the module it wraps, and compiled
    code runs eagerly during the count (``torch.compiler.set_stance("force_eager")``), so the
    eager aten ops are counted -- the FLOPs of the model, not of inductor's fused kernels.

    Backward: the loss is ``loss_fn(output)`` if given, else the output itself, which must then
    be a scalar tensor (nothing is summed implicitly). Gradients are computed with
    ``torch.autograd.grad`` with respect to every leaf tensor requiring grad in the loss's graph
    (what ``loss.backward()`` would do); ``.grad`` attributes are not touched, so the count has
    no side effects on the model (the accumulation into an existing ``.grad`` -- one add per
    parameter -- is not counted).

    Args:
        fn_or_module: an ``nn.Module`` (possibly ``torch.compile``'d) or any callable.
        *args, **kwargs: passed to ``fn_or_module``. The keywords ``backward`` and ``loss_fn``
            are consumed by ``count_flops``.
        backward: also run and count the backward pass.
        loss_fn: ``output -> scalar loss``; only with ``backward=True``.

    Returns:
        A :class:`FlopReport`.

    Warns:
        UncountedOpsWarning: floating-point ops without a FLOP rule ran (named, with their calls
            and their share of the total at 1 FLOP per output element); they count 0.

    Raises:
        TypeError: ``fn_or_module`` or ``loss_fn`` not callable; ``backward`` not a bool; the
            loss not a tensor.
        ValueError: ``loss_fn`` without ``backward=True``; a non-scalar loss or one without a
            graph.

    Shapes:
        Any; counts depend on the shapes that flow through the call, not on values (except
        data-dependent shapes such as boolean-mask indexing, counted as they occur).

    Example:
        >>> lin = torch.nn.Linear(4, 3)
        >>> count_flops(lin, torch.randn(10, 4)).total   # 2·10·4·3 + 10·3 (bias)
        270
    """
    if not callable(fn_or_module):
        raise TypeError(f"fn_or_module must be an nn.Module or a callable, got "
                        f"{type(fn_or_module).__name__}")
    if not isinstance(backward, bool):
        raise TypeError(f"backward must be a bool, got {type(backward).__name__}")
    if loss_fn is not None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        if not backward:
            raise ValueError("loss_fn is only used with backward=True")
    report = count_quietly(fn_or_module, args, kwargs, backward=backward, loss_fn=loss_fn)
    if report.uncounted:
        warnings.warn(uncounted_message(report.uncounted, report.uncounted_elements, report.total),
                      UncountedOpsWarning, stacklevel=2)
    return report


def count_quietly(
    fn_or_module: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    *,
    backward: bool = False,
    loss_fn: Callable[[Any], torch.Tensor] | None = None,
) -> FlopReport:
    """:func:`count_flops` on validated arguments, without the :class:`UncountedOpsWarning`
    (for callers that count many times and warn once, e.g. ``estimate_kappa``)."""
    fn, root, push_root = _unwrap(fn_or_module)
    names: dict[int, str] = {}
    if root is not None:
        for name, m in root.named_modules(remove_duplicate=False):
            names.setdefault(id(m), _clean_name(name))
    tally = _Tally()
    tracker = _ModuleTracker(names)
    mode = _CountingMode(tally, tracker, {})
    hooks = torch.nn.modules.module
    handles = [
        hooks.register_module_forward_pre_hook(tracker.pre),
        hooks.register_module_forward_hook(tracker.post, always_call=True),
    ]
    stance = _eager_stance()
    try:
        with stance, mode, warnings.catch_warnings():
            # Global module hooks also fire for the OptimizedModule wrapper of a compiled
            # submodule; its name collapses onto the wrapped module's (see _clean_name).
            warnings.filterwarnings(
                "ignore", message=r"Using `torch.compile\(module\)` when there are global hooks"
            )
            if push_root:
                tracker.pre(root, args)
                try:
                    out = fn(*args, **kwargs)
                finally:
                    tracker.post(root, args, None)
            else:
                out = fn(*args, **kwargs)
            if backward:
                loss = _check_loss(loss_fn(out) if loss_fn is not None else out,
                                   from_loss_fn=loss_fn is not None)
                leaves = _grad_leaves(loss)
                if not leaves:  # pragma: no cover - a graph always ends in leaves
                    raise ValueError("backward=True: the loss depends on no leaf tensor requiring grad")
                tally.in_backward = True
                torch.autograd.grad(loss, leaves, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return tally.report(list(tracker.called), backward=backward)


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _eager_stance() -> Any:
    """``torch.compiler.set_stance("force_eager")`` when dynamo is loaded (if it is not, nothing
    can have been compiled, and importing it would cost a second)."""
    if "torch._dynamo" in sys.modules and hasattr(torch.compiler, "set_stance"):
        return torch.compiler.set_stance("force_eager")
    return _NullContext()
