"""Every option of `fcnedge convert`, its default and its choices: the formats, the integer
I/O types, the QAT fine-tuning and the conversion itself. TensorFlow-free, so the command line
reads its defaults and choices here and bad input is refused before TensorFlow loads.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from fcnedge.runtime.errors import InputError


class Format(str, enum.Enum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"        # int8 weights, float activations
    INT8_PTQ = "int8-ptq"      # full integer, calibrated on training images
    INT8_QAT = "int8-qat"      # full integer, ranges learned by quantization-aware training


INTEGER_FORMATS = (Format.INT8_PTQ, Format.INT8_QAT)
IO_TYPES = ("int8", "uint8")
# Where the exported logits are: upsampled to the input size as trained ("input"), or at the
# head's finest stride, before the fixed final upsampling ("head": FCN-2s at half the input
# size), leaving the runtime to bring the labels, not 11 logit planes, to the frame's size.
OUTPUT_SIZES = ("input", "head")


def parse_formats(text: str) -> list[Format]:
    """'float32,int8-ptq' -> [Format.FLOAT32, Format.INT8_PTQ]; InputError on unknown names."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = [f.value for f in Format]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise InputError(f"got {text!r}, expected a comma-separated list of "
                         f"{', '.join(known)}", "formats")
    return [Format(name) for name in dict.fromkeys(names)]


@dataclass(frozen=True)
class QatConfig:
    """Quantization-aware fine-tuning (convert.qat.fine_tune)."""

    epochs: int = 3
    learning_rate: float = 2e-5
    batch_size: int = 8
    freeze_bn: bool = True
    seed: int = 0
    keep_best: bool = True     # return the best-val epoch (else the last one)
    per_tensor: bool = False   # one weight scale per kernel; BatchNorm folded before QAT

    def __post_init__(self):
        # Checked where the config is made, as every config here is: bad input, exit 2.
        if self.epochs < 1:
            raise InputError(f"got {self.epochs}, expected at least 1", "qat_epochs")
        if not self.learning_rate > 0:
            raise InputError(f"got {self.learning_rate}, expected a positive number",
                             "qat_learning_rate")


@dataclass(frozen=True)
class ConvertOptions:
    model: str
    data: str
    out: str
    formats: tuple[Format, ...] = tuple(Format)
    calib_samples: int = 64
    io_type: str = "int8"
    verify: bool = True
    val_split: str = "val"
    limit_val: int | None = None
    max_drop: float | None = None
    overwrite: bool = False
    edgetpu: bool = False
    seed: int = 0
    qat: QatConfig = field(default_factory=QatConfig)
    limit_train: int | None = None
    input_hw: tuple[int, int] | None = None     # None: the size the model was trained at
    per_tensor: bool = False    # int8 formats: one weight scale per tensor, not per channel
    classes: str | None = None  # the data's classes file (default: DATA/classes.json if any)
    output_size: str = "input"  # see OUTPUT_SIZES

    def __post_init__(self):
        if self.output_size not in OUTPUT_SIZES:
            raise InputError(f"got {self.output_size!r}, expected one of "
                             f"{', '.join(OUTPUT_SIZES)}", "output_size")
        # QAT fine-tunes the model this converts: its weight scales and seed are the conversion's.
        object.__setattr__(self, "qat", replace(self.qat, per_tensor=self.per_tensor,
                                                seed=self.seed))
        if self.io_type not in IO_TYPES:
            raise InputError(f"got {self.io_type!r}, expected one of {', '.join(IO_TYPES)}",
                             "io_type")
        if self.io_type != "int8" and not any(fmt in INTEGER_FORMATS for fmt in self.formats):
            raise InputError(f"got {self.io_type}: it sets the input/output type of the "
                             f"integer formats (int8-ptq, int8-qat), and the formats have none "
                             f"({', '.join(fmt.value for fmt in self.formats)})", "io_type")
        if self.per_tensor and not self.qat.freeze_bn and Format.INT8_QAT in self.formats:
            raise InputError("per-tensor int8-qat folds BatchNorm into the convolutions "
                             "before fine-tuning, so there is none left to train; train "
                             "BatchNorm or convert per tensor, not both", "qat_train_bn")
        if self.calib_samples < 1:
            raise InputError(f"got {self.calib_samples}, expected at least 1", "calib_samples")
        if self.max_drop is not None and self.max_drop < 0:
            raise InputError(f"got {self.max_drop}, expected points >= 0", "max_drop")


# The `fcnedge convert` flags of the parameters not named after them (the rest are:
# calib_samples, --calib-samples), for error messages (runtime.errors.flag_message).
CONVERT_FLAGS = {"io_type": "--io", "qat_learning_rate": "--qat-lr", "input_hw": "--input-size"}
