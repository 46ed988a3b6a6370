"""vbench-predict's work: image files through a run's preprocessing and model, in batches.

The preprocessing is the run's, read from its checkpoint: grey or RGB as the run's input,
centre-cropped and resized to the run's size by the imagefolder reader's own decoder
(data/imagefolder.load_image), normalized with the run's mean/std. A file that does not
decode is a row with an error.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import VBenchError
from ..data.imagefolder import UNREADABLE, load_image
from ..training.checkpoint import RunModel


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class name, probability), most probable first
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.path}  error: {self.error}"
        return f"{self.path}  " + "  ".join(f"{name} {p:.4f}" for name, p in self.top)

    def as_dict(self) -> dict:
        return {"path": self.path, "error": self.error,
                "top": [{"class": name, "probability": p} for name, p in self.top]}


def image_files(paths: list[str]) -> list[Path]:
    """Files as given, and the files inside folders (recursively, sorted, hidden ones left out)."""
    found = []
    for given in map(Path, paths):
        if given.is_dir():
            found += sorted(p for p in given.rglob("*") if p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(given).parts))
        elif given.exists():
            found.append(given)
        else:
            raise VBenchError(f"{given}: no such file or folder")
    return found


def predict_files(run: RunModel, files: list[Path], top_k: int, batch_size: int,
                  device: torch.device) -> Iterator[Prediction]:
    """One Prediction per file, in order; decoding runs in threads (PIL releases the GIL)."""
    model = run.model.to(device).eval()
    mean = torch.tensor(run.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(run.std, device=device).view(1, -1, 1, 1)
    k = min(top_k, len(run.classes))

    def decode(path: Path):
        try:
            return load_image(path, run.size, run.channels).transpose(2, 0, 1)  # (C, H, W)
        except UNREADABLE as e:
            return f"not an image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"

    with ThreadPoolExecutor() as pool:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            decoded = list(pool.map(decode, chunk))
            good = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
            top = {}
            if good:
                x = torch.from_numpy(np.stack([decoded[i] for i in good])).to(device)
                with torch.no_grad():
                    probs = model((x.float() / 255 - mean) / std).float().softmax(1)
                values, indices = probs.topk(k, dim=1)
                for row, i in enumerate(good):
                    top[i] = [(run.classes[c], float(p))
                              for p, c in zip(values[row].tolist(), indices[row].tolist())]
            for i, path in enumerate(chunk):
                if i in top:
                    yield Prediction(str(path), top[i])
                else:
                    yield Prediction(str(path), [], decoded[i])
