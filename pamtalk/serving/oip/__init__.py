"""The Open Inference Protocol (KServe v2): wire types (wire.py) and the codec (codec.py)."""
