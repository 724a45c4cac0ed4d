"""Using a trained model on new images: predict, and the ONNX export."""
