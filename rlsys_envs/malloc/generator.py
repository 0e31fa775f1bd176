"""Instances of the memory mapping game: generated ML training programs and MiniMalloc / idealloc CSVs.

**Generated programs** (:class:`LayeredPrograms`). One training step of a layered network (MLP,
convolutional or transformer blocks, mixed), scheduled as XLA would flatten it:
forward ops ``F_1 .. F_L``, a loss op, backward ops ``B_L .. B_1``, optimizer updates ``U_1 .. U_L``
(``T = 3L + 1`` positions). Each layer ``l`` has six buffers:

==========  ===============================  ===============================================
buffer      live range                       accesses (each moves the whole buffer once)
==========  ===============================  ===============================================
``W_l``     the whole program                read by ``F_l`` and ``B_l``, read + written by ``U_l``
``opt_l``   the whole program                optimizer state (2x ``W_l``): read + written by ``U_l``
``a_l``     ``F_l`` .. ``B_{l+1}``           activation: written by ``F_l``, read by ``F_{l+1}`` (or the
                                             loss) and ``B_{l+1}`` (or ``B_L``)
``g_l``     ``B_{l+1}`` .. ``B_l``           gradient of ``a_l``: written by ``B_{l+1}`` (or the loss), read by ``B_l``
``dW_l``    ``B_l`` .. ``U_l``               weight gradient: written by ``B_l``, read by ``U_l``
``tmp_l``   ``F_l`` only                     workspace (pre-activation, attention scores): written and read by ``F_l``
==========  ===============================  ===============================================

plus the input batch ``a_0`` (live until ``B_1``). Sizes (bf16, 2 bytes per element, aligned to 64
bytes) and flops come from the layer shapes; compute time = flops / peak. The step's token count
(log-uniform 16 .. 2048) sets the arithmetic intensity, so some ops are memory-bound on HBM, some
compute-bound, and some turn compute-bound once a few of their buffers are in fast memory. Fast
capacity = ``capacity_fraction`` x the peak live bytes.

**CSV files** (:func:`load_csv`): MiniMalloc's and idealloc's static allocation benchmarks.
"""
from __future__ import annotations

import csv
import math
import zlib
from pathlib import Path

import numpy as np

from .model import DEFAULT_PROFILE, AcceleratorProfile, Program

#: preset -> (layers low, layers high): about 50 / 300 / 2,000 buffers (6 per layer + the input)
SIZES = {"tiny": (1, 1), "small": (7, 9), "medium": (45, 55), "large": (320, 345)}
BUFFERS_PER_LAYER = 6
ALIGNMENT = 64
BYTES_PER_ELEMENT = 2
LAYER_TYPES = ("mlp", "conv", "attention")


class InstanceFormatError(ValueError):
    """A malformed instance file; the message names the file, the line and the field."""


def max_buffers(size: str) -> int:
    """The largest buffer count of a preset (the observation padding)."""
    return BUFFERS_PER_LAYER * SIZES[size][1] + 1


def _align(nbytes: float, alignment: int = ALIGNMENT) -> int:
    return int(math.ceil(max(nbytes, 1) / alignment) * alignment)


class LayeredPrograms:
    """Instance generator (``rng -> Program``) of one training step of a random layered network."""

    def __init__(self, size: str = "medium", capacity_fraction: float = 0.25,
                 profile: AcceleratorProfile = DEFAULT_PROFILE, layers: tuple[int, int] | None = None):
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
        self.size = size
        self.layers = tuple(layers) if layers is not None else SIZES[size]
        self.capacity_fraction = float(capacity_fraction)
        self.profile = profile

    def __repr__(self) -> str:
        return f"LayeredPrograms({self.size!r}, capacity_fraction={self.capacity_fraction})"

    def __call__(self, rng: np.random.Generator) -> Program:
        return generate_program(rng, int(rng.integers(self.layers[0], self.layers[1] + 1)), self.capacity_fraction,
                                self.profile, name=f"{self.size}")


def _layer_shapes(rng, kind, tokens, width):
    """(weight elements, activation elements, temp elements, forward flops) of one layer."""
    if kind == "mlp":
        d_in, d_out = width, int(width * rng.choice([0.5, 1.0, 2.0, 4.0]))
        return d_in * d_out, tokens * d_out, tokens * d_out, 2.0 * tokens * d_in * d_out
    if kind == "conv":
        k = int(rng.choice([1, 3, 3, 5]))
        c = max(16, width // 8)
        pixels = tokens * int(rng.choice([4, 16, 64]))
        return k * k * c * c, pixels * c, pixels * c * k * k // 4, 2.0 * pixels * k * k * c * c
    seq = int(rng.choice([128, 256, 512]))
    heads = max(1, width // 64)
    batch = max(1, tokens // seq)
    scores = batch * heads * seq * seq
    return 4 * width * width, tokens * width, scores + 3 * tokens * width, \
        8.0 * tokens * width * width + 4.0 * batch * seq * seq * width


def generate_program(rng: np.random.Generator, n_layers: int, capacity_fraction: float = 0.25,
                     profile: AcceleratorProfile = DEFAULT_PROFILE, name: str = "program") -> Program:
    """One generated training step with ``n_layers`` layers (see the module docstring)."""
    L = int(n_layers)
    T = 3 * L + 1
    F = lambda k: k - 1            # noqa: E731  (positions of the ops)
    LOSS = L
    B = lambda k: L + (L - k + 1)  # noqa: E731
    U = lambda k: 2 * L + k        # noqa: E731
    family = rng.choice(LAYER_TYPES)
    tokens = int(np.exp(rng.uniform(np.log(16), np.log(2048))))
    base_width = int(rng.choice([256, 512, 1024, 2048]))
    compute = np.zeros(T)
    sizes, starts, ends, names, kinds = [], [], [], [], []
    acc_op, acc_buf, acc_bytes = [], [], []

    def buffer(nm, kind, elements, lo, hi):
        sizes.append(_align(elements * BYTES_PER_ELEMENT))
        starts.append(lo)
        ends.append(hi)
        names.append(nm)
        kinds.append(kind)
        return len(sizes) - 1

    def access(op, buf, times=1):
        acc_op.append(op)
        acc_buf.append(buf)
        acc_bytes.append(times * sizes[buf])

    act_prev = buffer("a0", "input", tokens * base_width, 0, B(1) + 1)
    access(F(1), act_prev)
    access(B(1), act_prev)
    prev_width = base_width
    acts, grads = [act_prev], []
    layer_kinds = [family if rng.random() < 0.7 else rng.choice(LAYER_TYPES) for _ in range(L)]
    for k in range(1, L + 1):
        width = int(prev_width * rng.choice([0.5, 1.0, 1.0, 2.0])) if k > 1 else base_width
        width = int(np.clip(width, 128, 8192))
        w_el, a_el, t_el, flops = _layer_shapes(rng, layer_kinds[k - 1], tokens, width)
        prev_width = width
        compute[F(k)] += flops / profile.peak_flops
        compute[B(k)] += 2 * flops / profile.peak_flops
        compute[U(k)] += 10.0 * w_el / profile.peak_flops          # Adam: ~10 flops per parameter
        w = buffer(f"W{k}", "weight", w_el, 0, T)
        opt = buffer(f"opt{k}", "optimizer", 2 * w_el, 0, T)
        end_a = B(k + 1) + 1 if k < L else B(L) + 1
        a = buffer(f"a{k}", "activation", a_el, F(k), end_a)
        tmp = buffer(f"tmp{k}", "temporary", t_el, F(k), F(k) + 1)
        dw = buffer(f"dW{k}", "gradient", w_el, B(k), U(k) + 1)
        access(F(k), w)
        access(B(k), w)
        access(U(k), w, 2)
        access(U(k), opt, 2)
        access(F(k), a)
        access(F(k) + 1 if k < L else LOSS, a)
        access(B(k + 1) if k < L else B(L), a)
        access(F(k), tmp, 2)
        access(B(k), dw)
        access(U(k), dw)
        acts.append(a)
    compute[LOSS] += 4.0 * tokens * prev_width / profile.peak_flops
    # gradients of the activations: g_l written by B_{k+1} (the loss for g_L), read by B_l
    for k in range(L, 0, -1):
        lo = B(k + 1) if k < L else LOSS
        g = buffer(f"g{k}", "gradient", sizes[acts[k]] // BYTES_PER_ELEMENT, lo, B(k) + 1)
        access(lo, g)
        access(B(k), g)
        grads.append(g)
    program = Program(compute, sizes, starts, ends, acc_op, acc_buf, acc_bytes, 0, profile, name, names, kinds)
    return program.with_capacity(_align(capacity_fraction * program.peak_live_bytes()))


# ------------------------------------------------------------------------------------------ CSV
HEADERS = {("id", "lower", "upper", "size"): False, ("buffer", "start", "end", "size"): True}
ALIASES = {"buffer_id": "buffer", "begin": "start"}
IGNORED = ("offset",)


def capacity_from_name(path: Path) -> int | None:
    """The capacity in a benchmark file name ``<name>.<capacity>.csv`` (e.g. ``A.1048576.csv``)."""
    parts = path.name.split(".")
    if len(parts) >= 3 and parts[-2].isdigit():
        return int(parts[-2])
    return None


def load_csv(path, capacity: int | None = None, capacity_fraction: float = 0.25, seed: int = 0,
             profile: AcceleratorProfile = DEFAULT_PROFILE) -> Program:
    """A program from a static-allocation CSV (MiniMalloc / idealloc): one buffer per row.

    Header ``id,lower,upper,size`` (half-open live range ``[lower, upper)``), or MiniMalloc's
    legacy ``buffer,start,end,size`` whose ``end`` is inclusive (1 is added, as MiniMalloc's
    converter does); ``buffer_id`` / ``begin`` are aliases; an ``offset`` column (a solution) is
    ignored; ``lower = -1`` (idealloc: live from the start) is read as the first position.
    Capacity: ``capacity``, else the file name's (``A.1048576.csv``), else ``capacity_fraction`` x
    the peak live bytes.

    Time is compressed to the distinct end points (operation ``o`` = the interval between the
    ``o``-th and ``o+1``-th), which keeps every overlap. The files hold no accesses, so benefits come
    from a synthetic access model seeded by ``seed`` and the file name: each buffer is written by its
    first operation and read by its last (and, with probability 1/2, by one operation in between),
    moving its whole size each time, and operation ``o`` computes for ``r_o`` x its all-HBM memory
    time with ``r_o`` log-uniform in ``[0.05, 2]``.

    Raises :class:`InstanceFormatError` naming the file, line and field for a missing or unknown
    header, a non-integer value, a size <= 0, ``upper <= lower``, or a duplicate id.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InstanceFormatError(f"{path}: cannot read the file ({err})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise InstanceFormatError(f"{path}, line 1: empty file, expected a header id,lower,upper,size")
    header = [ALIASES.get(h.strip().lower(), h.strip().lower()) for h in rows[0]]
    known = None
    for cols, inclusive in HEADERS.items():
        if all(c in header for c in cols):
            known = (cols, inclusive)
    if known is None:
        raise InstanceFormatError(f"{path}, line 1: header {','.join(rows[0])!r} lacks the columns id,lower,upper,size "
                                  f"(or buffer,start,end,size)")
    cols, inclusive = known
    extra = [h for h in header if h not in cols and h not in IGNORED]
    if extra:
        raise InstanceFormatError(f"{path}, line 1: column(s) {', '.join(extra)} not supported "
                                  f"(supported: {', '.join(cols)} and {', '.join(IGNORED)})")
    idx = [header.index(c) for c in cols]
    ids, lows, highs, sizes = [], [], [], []
    seen: dict[str, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise InstanceFormatError(f"{path}, line {line_no}: {len(row)} fields, expected {len(header)}")
        bid = row[idx[0]].strip()
        values = []
        for field_name, k in zip(cols[1:], idx[1:]):
            cell = row[k].strip()
            try:
                values.append(int(cell))
            except ValueError:
                raise InstanceFormatError(f"{path}, line {line_no}, field {field_name!r}: {cell!r} is not an "
                                          f"integer") from None
        lo, hi, size = values
        if inclusive:
            hi += 1
        lo = max(lo, 0) if lo == -1 else lo
        if bid in seen:
            raise InstanceFormatError(f"{path}, line {line_no}, field {cols[0]!r}: duplicate id {bid!r} (first on "
                                      f"line {seen[bid]})")
        if size <= 0:
            raise InstanceFormatError(f"{path}, line {line_no}, field 'size': {size} is not positive")
        if lo < 0:
            raise InstanceFormatError(f"{path}, line {line_no}, field {cols[1]!r}: {lo} is negative")
        if hi <= lo:
            raise InstanceFormatError(f"{path}, line {line_no}, field {cols[2]!r}: {cols[2]} {values[1]} is not "
                                      f"after {cols[1]} {values[0]}")
        seen[bid] = line_no
        ids.append(bid)
        lows.append(lo)
        highs.append(hi)
        sizes.append(size)
    if not ids:
        raise InstanceFormatError(f"{path}: no buffers after the header")
    points = np.unique(np.concatenate([lows, highs]))
    start = np.searchsorted(points, lows)
    end = np.searchsorted(points, highs)
    T = len(points) - 1
    rng = np.random.default_rng([int(seed), zlib.crc32(path.name.encode())])
    n = len(ids)
    acc_op = [start, end - 1]
    acc_buf = [np.arange(n), np.arange(n)]
    middle = (end - start > 2) & (rng.random(n) < 0.5)
    mid_op = start + 1 + np.floor(rng.random(n) * np.maximum(end - start - 2, 1)).astype(np.int64)
    acc_op.append(mid_op[middle])
    acc_buf.append(np.flatnonzero(middle))
    acc_op, acc_buf = np.concatenate(acc_op), np.concatenate(acc_buf)
    size_arr = np.asarray(sizes, np.int64)
    acc_bytes = size_arr[acc_buf].astype(np.float64)
    memory = np.bincount(acc_op, weights=acc_bytes / profile.bw_slow, minlength=T)
    ratio = np.exp(rng.uniform(np.log(0.05), np.log(2.0), T))
    compute = ratio * memory
    program = Program(compute, size_arr, start, end, acc_op, acc_buf, acc_bytes, 0, profile, path.stem, ids,
                      ["buffer"] * n)
    if capacity is None:
        capacity = capacity_from_name(path)
    if capacity is None:
        capacity = int(capacity_fraction * program.peak_live_bytes())
    return program.with_capacity(int(capacity))
