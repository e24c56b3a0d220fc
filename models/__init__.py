"""The charbot model family: tokenizers, the ONNX contract and (in `charrnn`) the PyTorch modules.

Importing this package, `models.tokenizers` or `models.contract` does not import torch: the bot
needs only these torch-free parts. `models.ort` (ONNX Runtime's error types) imports onnxruntime,
and `models.charrnn` is the one module that needs torch.
"""

from pathlib import Path

#: The Shakespeare model that ships with the project (see `models/shakespeare.md`).
BUNDLED_MODEL = Path(__file__).resolve().parent / "shakespeare.onnx"
