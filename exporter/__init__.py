"""The offline exporter: train a char-RNN on text files or Discord exports, watch the run, export
it to a contract ONNX file (fp32 or int8) with its model card, verify it.

`python -m exporter train|export|verify|sample|card|report` (see `exporter.cli`).
"""
