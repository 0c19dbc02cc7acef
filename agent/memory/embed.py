"""Optional local embeddings for retrieval: used only when sentence-transformers is installed and the model is
already on disk. Nothing is ever downloaded: the model is loaded from a local directory with the Hugging Face
libraries switched to offline mode."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from branchwise.agent.memory.retrieve import Embedder


def model_dir(name: str, env: dict[str, str] | None = None) -> Path | None:
    """A local directory holding the model: the name itself, or its snapshot in the Hugging Face cache."""
    env = dict(os.environ) if env is None else env
    direct = Path(name).expanduser()
    if direct.is_dir():
        return direct
    if "/" not in name:
        name = f"sentence-transformers/{name}"
    hub = Path(env.get("HF_HUB_CACHE") or Path(env.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub")
    snapshots = hub / f"models--{name.replace('/', '--')}" / "snapshots"
    found = sorted(p for p in snapshots.glob("*") if (p / "config.json").is_file()) if snapshots.is_dir() else []
    return found[-1] if found else None


class _SentenceTransformer:
    def __init__(self, path: Path) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        self.name = path.name
        self._model = SentenceTransformer(str(path), device="cpu")

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return [list(map(float, v)) for v in vectors]


def local_embedder(name: str) -> Embedder | None:
    """The local model, or None when the library or the model files are not here."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return None
    path = model_dir(name)
    if path is None:
        return None
    try:
        return _SentenceTransformer(path)
    except (OSError, ValueError, RuntimeError):
        return None
