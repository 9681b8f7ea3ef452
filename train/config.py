"""Every option of a training run, its default and its choices: the one source the command
line, the trainer and the model cards read. TensorFlow-free, so `fcnedge train --help` and
the cards need no TensorFlow.

ModelConfig defines the graph, AugmentConfig the augmentation, TrainConfig the run; the
defaults are the first stage of the bundled model's recipe (MobileNetV2-0.75 FCN-8s at 352x480,
90 epochs, batch 4, median-frequency weights to the power 0.5).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.preprocess import check_divisible
from fcnedge.runtime.validate import (BELOW_ONE, COUNT, NON_NEGATIVE, POSITIVE, UNIT,
                                      ZERO_OR_MORE, check_optional)

# Skip layers per backbone, by output stride. Names are Keras Applications' own, so they are
# deterministic and ImageNet weights load by name.
SKIP_LAYERS = {
    "vgg16": {32: "block5_pool", 16: "block4_pool", 8: "block3_pool", 4: "block2_pool",
              2: "block1_pool"},
    # The expansion outputs are wider than the block outputs, so skips carry more detail.
    "mobilenetv2": {32: "out_relu", 16: "block_13_expand_relu", 8: "block_6_expand_relu",
                    4: "block_3_expand_relu", 2: "block_1_expand_relu"},
}
# The strides each head fuses, coarse to fine; the finest one is upsampled to the input.
ARCH_STRIDES = {
    "fcn32s": (32,),
    "fcn16s": (32, 16),
    "fcn8s": (32, 16, 8),
    "fcn4s": (32, 16, 8, 4),
    "fcn2s": (32, 16, 8, 4, 2),
}
DECODERS = ("transpose", "bilinear")
# Context on the stride-32 features before scoring. 'lraspp' is MobileNetV3's Lite R-ASPP: a
# 1x1 conv branch gated per channel by the image's global average, so the whole scene steers
# each pixel's class for two 1x1 convs, one MEAN and one MUL (int8 and XNNPACK ops).
CONTEXTS = ("none", "lraspp")
MOBILENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the graph; stored in a run's `run.json` to rebuild it exactly.

    fc_units: width of the fc6/fc7 convolutions of the paper's head (VGG16: 4096; 0 scores the
      backbone output directly, the light choice for MobileNetV2).
    decoder: 'transpose' learns the 2x upsamplings as in the paper (final one fixed bilinear);
      'bilinear' resizes instead (RESIZE_BILINEAR in TFLite).
    bn_momentum: BatchNorm moving-average momentum for MobileNetV2. Keras' 0.999 leaves the
      moving statistics near their initial values after a few hundred from-scratch steps, so
      eval-mode output is garbage while training loss falls; 0.9 tracks them.
    """

    arch: str = "fcn8s"
    backbone: str = "mobilenetv2"
    num_classes: int = 11
    input_hw: tuple[int, int] = (352, 480)
    alpha: float = 0.75
    fc_units: int = 0
    decoder: str = "bilinear"
    bn_momentum: float = 0.9
    dropout: float = 0.1
    context: str = "none"
    context_units: int = 128

    def __post_init__(self):
        if self.arch not in ARCH_STRIDES:
            raise InputError(f"got {self.arch!r}, expected one of {', '.join(ARCH_STRIDES)}", "arch")
        if self.backbone not in SKIP_LAYERS:
            raise InputError(f"got {self.backbone!r}, expected one of {', '.join(SKIP_LAYERS)}",
                             "backbone")
        if self.decoder not in DECODERS:
            raise InputError(f"got {self.decoder!r}, expected one of {', '.join(DECODERS)}",
                             "decoder")
        if self.context not in CONTEXTS:
            raise InputError(f"got {self.context!r}, expected one of {', '.join(CONTEXTS)}",
                             "context")
        POSITIVE.check(self.context_units, "context_units")
        check_divisible(self.input_hw, 32, name="input_hw")
        if not (POSITIVE.contains(self.alpha) and self.alpha <= 1.4):
            raise InputError(f"got {self.alpha}, expected a width in (0, 1.4]", "alpha")
        if self.num_classes < 2:
            raise InputError(f"got {self.num_classes}, expected at least 2", "num_classes")
        BELOW_ONE.check(self.bn_momentum, "bn_momentum")
        BELOW_ONE.check(self.dropout, "dropout")
        ZERO_OR_MORE.check(self.fc_units, "fc_units")

    @property
    def name(self) -> str:
        return f"{self.arch}_{self.backbone}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["input_hw"] = list(self.input_hw)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["input_hw"] = tuple(fields.get("input_hw", (352, 480)))
        return cls(**fields)


# The input size each backbone defaults to: the paper's 224x224 for VGG16; CamVid's 360x480
# rounded to multiples of 32 for MobileNetV2.
DEFAULT_INPUT_SIZE = {"vgg16": "224x224", "mobilenetv2": "352x480"}


def default_fc_units(backbone: str) -> int:
    """The paper's 4096-wide fc6/fc7 for VGG16; none for the light backbone."""
    return 4096 if backbone == "vgg16" else 0


@dataclass(frozen=True)
class AugmentConfig:
    """Random scale range (1 = the input size), flip, and photometric jitter strengths."""

    scale_min: float = 0.75
    scale_max: float = 1.5
    flip: bool = True
    brightness: float = 0.15   # fraction of full range
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.03
    camera_jitter: float = 0.0            # other days and cameras: see camera_jitter()
    enabled: bool = True
    paste_classes: tuple[str, ...] = ()   # class names whose pixels are copy-pasted
    paste_probability: float = 0.5        # chance that an image receives a paste

    def __post_init__(self):
        # A run.json stores the tuple as a list; keep the config hashable and comparable.
        object.__setattr__(self, "paste_classes", tuple(self.paste_classes))
        UNIT.check(self.camera_jitter, "camera_jitter")
        UNIT.check(self.paste_probability, "paste_probability")
        POSITIVE.check(self.scale_min, "scale_min")
        POSITIVE.check(self.scale_max, "scale_max")

    def paste_ids(self, names: tuple[str, ...] | list[str]) -> tuple[int, ...]:
        """The label ids of `paste_classes` in a label set's `names`; unknown names are an error."""
        unknown = [name for name in self.paste_classes if name not in names]
        if unknown:
            raise InputError(f"unknown class {', '.join(unknown)}; expected names from "
                             f"{', '.join(names)}", "paste_classes")
        return tuple(names.index(name) for name in self.paste_classes)


OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "poly", "constant")
CLASS_WEIGHTINGS = ("none", "median-freq")
STRATEGIES = ("default", "mirrored", "multi-worker")
KEEP_CHOICES = ("best", "last")
LOSSES = ("ce", "ce+lovasz")



@dataclass(frozen=True)
class TrainConfig:
    """A training run. `batch_size` is per replica; the global batch scales with replicas."""

    data: str
    out: str
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 90
    batch_size: int = 4
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    class_weights: str = "median-freq"
    class_weight_power: float = 0.5
    loss: str = "ce"
    backbone_weights: str = "none"
    init_weights: str | None = None
    teacher: str | None = None            # a trained run (or weights file) to distil from
    distill_weight: float = 0.5           # the distillation term's share of the loss
    distill_temperature: float = 2.0
    strategy: str = "default"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    val_every: int = 1
    save_every: int = 0
    train_splits: tuple[str, ...] = ("train",)
    val_splits: tuple[str, ...] = ("val",)
    val_drives: tuple[str, ...] = ()
    keep: str = "best"
    limit_train: int | None = None
    limit_val: int | None = None
    threads: int | None = None

    def __post_init__(self):
        checks = ((self.optimizer, OPTIMIZERS, "optimizer"), (self.schedule, SCHEDULES, "schedule"),
                  (self.class_weights, CLASS_WEIGHTINGS, "class_weights"),
                  (self.loss, LOSSES, "loss"),
                  (self.strategy, STRATEGIES, "strategy"), (self.keep, KEEP_CHOICES, "keep"))
        for value, allowed, param in checks:
            if value not in allowed:
                raise InputError(f"got {value!r}, expected one of {', '.join(allowed)}", param)
        for value, param in ((self.epochs, "epochs"), (self.batch_size, "batch_size"),
                             (self.val_every, "val_every")):
            if value < 1:
                raise InputError(f"got {value}, expected a positive integer", param)
        if self.save_every < 0:
            raise InputError(f"got {self.save_every}, expected 0 (off) or a positive number of "
                             "epochs", "save_every")
        POSITIVE.check(self.learning_rate, "learning_rate")
        UNIT.check(self.distill_weight, "distill_weight")
        POSITIVE.check(self.distill_temperature, "distill_temperature")
        if self.teacher and self.strategy != "default":
            raise InputError(f"got {self.strategy!r} with a teacher; distillation runs in one "
                             "process, with the default strategy", "strategy")
        NON_NEGATIVE.check(self.weight_decay, "weight_decay")
        NON_NEGATIVE.check(self.warmup_epochs, "warmup_epochs")
        ZERO_OR_MORE.check(self.seed, "seed")
        for value, param in ((self.threads, "threads"), (self.limit_train, "limit_train"),
                             (self.limit_val, "limit_val")):
            check_optional(value, COUNT, param)
        if not 0 < self.class_weight_power <= 1:
            raise InputError(f"got {self.class_weight_power}, expected a number in (0, 1]",
                             "class_weight_power")
        if self.class_weights == "none":
            # Nothing to temper: recorded as untempered, so the default power (the recipe's
            # 0.5, for median-freq) does not make an unweighted config invalid.
            object.__setattr__(self, "class_weight_power", 1.0)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        data["model"] = ModelConfig.from_dict(data["model"])
        data["augment"] = AugmentConfig(**data.get("augment", {}))
        # Runs from before combined splits stored one split name each.
        for old, new in (("train_split", "train_splits"), ("val_split", "val_splits")):
            if old in data and new not in data:
                data[new] = (data.pop(old),)
        for name in ("train_splits", "val_splits", "val_drives"):
            if name in data:
                data[name] = tuple(data[name])
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# The `fcnedge train` flag that sets each config field, as (section, field, flag): the one map
# the command line's error messages, the model cards' command lines and the tests read. The
# order is the order a card's command shows them in.
TRAIN_FLAGS = (
    ("train", "data", "--data"), ("train", "out", "--out"),
    ("model", "arch", "--arch"), ("model", "backbone", "--backbone"),
    ("model", "alpha", "--alpha"), ("model", "input_hw", "--input-size"),
    ("train", "epochs", "--epochs"), ("train", "batch_size", "--batch-size"),
    ("train", "val_every", "--val-every"), ("train", "class_weights", "--class-weights"),
    ("train", "class_weight_power", "--class-weight-power"), ("train", "loss", "--loss"),
    ("train", "learning_rate", "--lr"), ("train", "warmup_epochs", "--warmup-epochs"),
    ("train", "optimizer", "--optimizer"), ("train", "weight_decay", "--weight-decay"),
    ("train", "schedule", "--schedule"), ("model", "decoder", "--decoder"),
    ("model", "context", "--context"), ("model", "context_units", "--context-units"),
    ("model", "bn_momentum", "--bn-momentum"), ("model", "dropout", "--dropout"),
    ("model", "fc_units", "--fc-units"),
    ("augment", "scale_min", "--scale-min"), ("augment", "scale_max", "--scale-max"),
    ("augment", "paste_classes", "--paste-classes"),
    ("augment", "paste_probability", "--paste-prob"),
    ("augment", "camera_jitter", "--camera-jitter"), ("augment", "enabled", "--no-augment"),
    ("train", "train_splits", "--train-splits"), ("train", "val_splits", "--val-splits"),
    ("train", "val_drives", "--val-drives"), ("train", "keep", "--keep"),
    ("train", "seed", "--seed"), ("train", "save_every", "--save-every"),
    ("train", "backbone_weights", "--backbone-weights"),
    ("train", "init_weights", "--init-weights"), ("train", "teacher", "--teacher"),
    ("train", "distill_weight", "--distill-weight"),
    ("train", "distill_temperature", "--distill-temperature"),
    ("train", "strategy", "--strategy"),
    ("train", "limit_train", "--limit-train"), ("train", "limit_val", "--limit-val"),
    ("train", "threads", "--threads"),
)


def flags_of(table) -> dict[str, str]:
    """parameter -> flag, for InputError.param (see runtime.errors.flag_message)."""
    return {field: flag for _, field, flag in table}
