"""The offline exporter: train a char-RNN on a corpus, export it to a contract ONNX file, verify it.

`python -m exporter train|export|verify|sample` (see `exporter.cli`).
"""
