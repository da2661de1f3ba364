"""The network, its engines and devices: the only modules that import TensorFlow or OpenVINO."""
