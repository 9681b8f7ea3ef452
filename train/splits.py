"""Which frames train and which score: combined splits and drive-held-out validation.

CamVid's val is 101 frames of drive 0016E5, the drive of 204 of the 367 training frames, so a
score on it rewards memory of one street. A frame's name says its drive (`0016E5_08010.png`,
`Seq05VD_f00930.png`): holding whole drives out of training is what scores a model on streets it
has never seen. Pure functions over file lists; no TensorFlow.
"""
from __future__ import annotations

import os
from collections import Counter

from fcnedge.runtime.errors import InputError, mention
from fcnedge.train.data import Pair, find_pairs, limit_pairs


def frame_drive(name: str) -> str:
    """The drive a frame comes from: its file name up to the first '_' (the whole stem if none).

    >>> frame_drive("0016E5_08010.png")
    '0016E5'
    """
    stem = os.path.splitext(os.path.basename(name))[0]
    return stem.split("_", 1)[0]


def parse_names(text: str | None, param: str) -> tuple[str, ...]:
    """A comma-separated value of `param` as a tuple of names, without blanks or repeats."""
    if text is None:
        return ()
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if text.strip() and not names:
        raise InputError(f"got {text!r}, expected comma-separated names", param)
    return names


def drive_counts(pairs: list[Pair]) -> dict[str, int]:
    """Frames per drive, in name order."""
    return dict(sorted(Counter(frame_drive(pair.image.name) for pair in pairs).items()))


def find_split_pairs(root: str | os.PathLike, splits: tuple[str, ...]) -> list[Pair]:
    """The pairs of one or more splits pooled, sorted by name.

    Raises:
      InputError: no split named, a split is missing or empty, or two splits hold a frame of the
        same name (a frame must not both train and score).
    """
    if not splits:
        raise InputError("no split named: expected at least one, such as train")
    pooled: dict[str, Pair] = {}
    for split in splits:
        for pair in find_pairs(root, split):
            stem = pair.image.stem
            if stem in pooled:
                raise InputError(f"{pair.image}: frame {stem} is also in {pooled[stem].image.parent}"
                                 f"; the splits {','.join(splits)} overlap")
            pooled[stem] = pair
    return [pooled[stem] for stem in sorted(pooled)]


def filter_drives(pairs: list[Pair], keep: tuple[str, ...] = (), drop: tuple[str, ...] = (),
                  param: str = "drives") -> list[Pair]:
    """The pairs whose drive is in `keep` (all when empty) and not in `drop`.

    Raises:
      InputError: a named drive has no frame here (a typo would otherwise score nothing, or
        hold out nothing); the message lists the drives there are.
    """
    present = drive_counts(pairs)
    unknown = [drive for drive in (*keep, *drop) if drive not in present]
    if unknown:
        raise InputError(f"no frame of drive {', '.join(unknown)} here; the frames' "
                         f"drives are {', '.join(f'{d} ({n})' for d, n in present.items())}",
                         param)
    return [pair for pair in pairs if (not keep or frame_drive(pair.image.name) in keep)
            and frame_drive(pair.image.name) not in drop]


def hold_out_drives(train_pool: list[Pair], val_pool: list[Pair],
                    val_drives: tuple[str, ...]) -> tuple[list[Pair], list[Pair]]:
    """Training and validation pairs with whole drives held out.

    Without `val_drives` the pools are returned as they are (the dataset's own split). With
    them, training keeps the training pool's frames of the other drives, and validation is every
    frame of the held-out drives in either pool, so no frame of a held-out drive trains.

    Raises:
      InputError: a held-out drive has no frame, or nothing would be left to train on.
    """
    if not val_drives:
        return train_pool, val_pool
    stems = {pair.image.stem for pair in train_pool}
    combined = sorted(train_pool + [p for p in val_pool if p.image.stem not in stems],
                      key=lambda pair: pair.image.stem)
    val = filter_drives(combined, keep=val_drives, param="val_drives")
    train = [pair for pair in train_pool if frame_drive(pair.image.name) not in val_drives]
    if not train:
        raise InputError.about("val_drives", ','.join(val_drives),
                               "holds out every training frame; "
                               f"the training drives are {', '.join(drive_counts(train_pool))}")
    return train, val


def run_training_pairs(root: str | os.PathLike, run_train: dict) -> list[Pair]:
    """The frames of `root` a run trained on, from its run.json's "train" entry: its training
    splits pooled, less the drives it held out. What calibrates and fine-tunes its int8 export,
    so a held-out drive stays unseen there too.
    """
    splits = tuple(run_train.get("train_splits") or ("train",))
    held_out = set(run_train.get("val_drives") or ())
    return [pair for pair in find_split_pairs(root, splits)
            if frame_drive(pair.image.name) not in held_out]


def select_train_val(config) -> tuple[list[Pair], list[Pair]]:
    """A training run's (a TrainConfig's) training and validation pairs: its splits pooled,
    its drives held out.

    Raises:
      InputError: a split or drive is missing, or validation frames also train while the run
        keeps its best epoch (a model picked by a score on its own training frames).
    """
    train_pool = find_split_pairs(config.data, config.train_splits)
    val_pool = find_split_pairs(config.data, config.val_splits)
    train_pairs, val_pairs = hold_out_drives(train_pool, val_pool, config.val_drives)
    shared = {p.image.stem for p in train_pairs} & {p.image.stem for p in val_pairs}
    if shared and config.keep == "best":
        raise InputError.about("train_splits", ','.join(config.train_splits),
                               f"{len(shared)} of the {len(val_pairs)} validation frames "
                               "also train, so the best epoch would be picked on training "
                               f"data; pass {mention('keep')} last (a fixed schedule, as a refit "
                               f"wants) or hold out drives with {mention('val_drives')}")
    return (limit_pairs(train_pairs, config.limit_train, "limit_train"),
            limit_pairs(val_pairs, config.limit_val, "limit_val"))


def drives_text(pairs: list[Pair]) -> str:
    """'0001TP 62, 0016E5 204': a log line's account of where frames come from."""
    return ", ".join(f"{drive} {count}" for drive, count in drive_counts(pairs).items())
