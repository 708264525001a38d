"""What a model file promises about its input and output: size, normalisation, classes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """Input contract of a detector: RGB, letterboxed to width x height with `pad` grey,
    then (x / 255 - mean) / std, channels first."""

    input_width: int = 448
    input_height: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pad: int = 114
    strides: tuple[int, ...] = (8, 16, 32)
    class_names: tuple[str, ...] = ("pothole", "speed_bump")
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "ModelSpec":
        kw = dict(d)
        for k in ("mean", "std", "strides", "class_names"):
            if k in kw:
                kw[k] = tuple(kw[k])  # type: ignore[arg-type]
        return cls(**kw)  # type: ignore[arg-type]
