"""Write the tiny test models committed next to this file: `python -m tests.tinymodels.make`.

Rerun it (it needs torch: the `train` extra) and commit the files whenever the ONNX contract
(models/contract.py) or the exporter's graph changes; docs/testing.md says the same. The run is
seeded, so the files change only when the training, the exporter or torch does.
"""

from __future__ import annotations

import shutil

from exporter.onnx_export import set_chat_template
from tests.tinymodels import TINY_GRU, TINY_LSTM, TINY_PLAY, TINY_WORD
from tests.tinymodels.train import export_tiny


def main() -> None:
    export_tiny(TINY_LSTM)
    export_tiny(TINY_GRU, cell="gru")
    export_tiny(TINY_WORD, level="word")
    shutil.copy(TINY_LSTM, TINY_PLAY)
    set_chat_template(TINY_PLAY, "play")
    for path in (TINY_LSTM, TINY_GRU, TINY_WORD, TINY_PLAY):
        print(f"{path.name}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
