"""Converts a Hugging Face model folder (a ``make finetune`` output) to a GGUF file.

The converter is llama.cpp's own ``convert_hf_to_gguf.py``, vendored in the
llama-cpp-python source distribution the project builds its backend from
(``make install`` keeps it in ``.cache/wheels``): this module extracts the
script and its ``gguf-py`` package once into ``.cache/llama-convert`` and runs
it in a child process with the project's Python.

The script imports ``mistral_common`` at its top for Mistral models only (that
package needs pydantic 2, which Rasa's pin excludes), and ``sentencepiece``
before it looks for a ``tokenizer.model`` file; the child process gets
stand-in modules for those names. A model that really needs them (a
SentencePiece or Mistral tokenizer) fails with a message that says so; the
project's models use a ``tokenizer.json`` (BPE), which needs neither.

Usage: python -m finetune.gguf MODEL_DIR [--out FILE] [--outtype q8_0|f16|f32] [--vocab-from BASE.gguf]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".cache" / "wheels"
CONVERTER_DIR = ROOT / ".cache" / "llama-convert"
SDIST = "llama_cpp_python-0.3.16.tar.gz"
INSIDE = "llama_cpp_python-0.3.16/vendor/llama.cpp/"
OUTTYPES = ("q8_0", "f16", "bf16", "f32")

# Runs the converter with stand-ins for the Mistral-only imports at its top, and,
# given VOCAB_FROM, with the tokenizer copied from that GGUF file.
RUNNER = textwrap.dedent(
    """
    import importlib.util, os, sys, types
    from transformers import AutoConfig, AutoTokenizer  # noqa: F401 - imported before the stand-ins exist
    names = ["mistral_common", "mistral_common.tokens", "mistral_common.tokens.tokenizers",
             "mistral_common.tokens.tokenizers.base", "mistral_common.tokens.tokenizers.multimodal",
             "mistral_common.tokens.tokenizers.tekken", "mistral_common.tokens.tokenizers.sentencepiece",
             "mistral_common.tokens.tokenizers.mistral", "mistral_common.tokens.tokenizers.utils"]
    try:
        import sentencepiece  # noqa: F401
    except ImportError:  # only models with a tokenizer.model file need it
        names.append("sentencepiece")
    class _Missing:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("this model's tokenizer needs mistral_common or sentencepiece; neither is installed")
    for name in names:
        module = types.ModuleType(name)
        module.__getattr__ = lambda attr: _Missing
        sys.modules[name] = module
    script, sys.argv = sys.argv[1], sys.argv[1:]
    spec = importlib.util.spec_from_file_location("convert_hf_to_gguf", script)
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    vocab_from = os.environ.get("VOCAB_FROM")
    if vocab_from:
        import gguf
        def set_vocab(self):
            reader = gguf.GGUFReader(vocab_from)
            for key, field in reader.fields.items():
                if key.startswith("tokenizer."):
                    sub = field.types[1] if len(field.types) > 1 else None
                    self.gguf_writer.add_key_value(key, field.contents(), field.types[0], sub)
        for cls in vars(convert).values():
            if isinstance(cls, type) and issubclass(cls, convert.TextModel):
                cls.set_vocab = set_vocab
    convert.main()
    """
)


class ConversionError(RuntimeError):
    """The GGUF conversion could not run or failed."""


def converter(cache: Path = CONVERTER_DIR, wheels: Path = WHEELS) -> Path:
    """``convert_hf_to_gguf.py`` extracted from the cached source distribution (once)."""
    script = cache / "convert_hf_to_gguf.py"
    if script.exists():
        return script
    sdist = wheels / SDIST
    if not sdist.exists():
        raise ConversionError(f"{sdist} is missing: run `make install` (it keeps llama-cpp-python's sources there).")
    partial = cache.with_name(cache.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if not member.name.startswith(INSIDE) or not member.isfile():
                continue
            relative = member.name[len(INSIDE):]
            if relative == "convert_hf_to_gguf.py" or relative.startswith("gguf-py/gguf/"):
                target = partial / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
    if not (partial / "convert_hf_to_gguf.py").exists():
        raise ConversionError(f"{sdist} has no {INSIDE}convert_hf_to_gguf.py")
    partial.rename(cache)
    return script


def convert(model_dir: Path, out: Optional[Path] = None, outtype: str = "q8_0",
            vocab_from: Optional[Path] = None) -> Path:
    """Writes ``model_dir`` as a GGUF file (default: ``<model_dir>/model.<outtype>.gguf``) and returns it.

    ``vocab_from``: a GGUF file whose tokenizer is copied instead of converting
    ``model_dir``'s. A model fine-tuned from a GGUF base needs it: the tokenizer
    files transformers rebuilt from that GGUF describe the same vocabulary in a
    form the converter misreads (it took SmolLM2's byte-level BPE for a
    SentencePiece vocabulary, and llama.cpp then failed on it).
    """
    if outtype not in OUTTYPES:
        raise ConversionError(f"outtype must be one of {list(OUTTYPES)}, got {outtype!r}")
    if not (model_dir / "config.json").exists():
        raise ConversionError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
    out = out or model_dir / f"model.{outtype}.gguf"
    partial = out.with_name(out.name + ".partial")
    command = [sys.executable, "-c", RUNNER, str(converter()), str(model_dir), "--outfile", str(partial),
               "--outtype", outtype]
    env = {**os.environ, "VOCAB_FROM": str(vocab_from.resolve())} if vocab_from else None
    if vocab_from and not vocab_from.is_file():
        raise ConversionError(f"vocab_from: no GGUF file {vocab_from}")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0 or not partial.exists():
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        partial.unlink(missing_ok=True)
        raise ConversionError(f"GGUF conversion of {model_dir} failed:\n{tail}")
    partial.rename(out)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m finetune.gguf", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--outtype", default="q8_0", choices=OUTTYPES)
    parser.add_argument("--vocab-from", type=Path, help="a GGUF file whose tokenizer to copy (a GGUF base model)")
    args = parser.parse_args(argv)
    try:
        path = convert(args.model_dir, args.out, args.outtype, args.vocab_from)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
