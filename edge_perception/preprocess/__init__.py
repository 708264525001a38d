"""Camera frame → model input: zero-copy image views, the letterbox transform and fused
Numba preprocessing (CPU and CUDA), with the OpenCV path as a reference."""

from .errors import ImageFormatError
from .image import ENCODINGS, Encoding, decode_compressed, encoding_info, image_array
from .letterbox import Letterbox
from .preprocessor import Preprocessor, require_threadsafe_kernels

__all__ = ["ImageFormatError", "ENCODINGS", "Encoding", "decode_compressed", "encoding_info",
           "image_array", "Letterbox", "Preprocessor", "require_threadsafe_kernels"]
