"""Using a trained model: classify image files, export to ONNX/TorchScript/safetensors."""
