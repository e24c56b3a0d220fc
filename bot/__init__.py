"""charbot's runtime: ONNX Runtime generation, per-channel settings, the Discord app, the console.

It never imports torch: a deployment needs onnxruntime (or onnxruntime-gpu) and discord.py.
"""
