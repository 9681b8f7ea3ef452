"""tf.data input pipeline: in-memory decoded split, shuffle, joint augmentation, batch, prefetch.

Augmentation (random scale-crop, horizontal flip, photometric jitter) is applied to image and
mask together; the mask is resized nearest and padded with void so no label is invented.
Optionally, the pixels of rare classes are copied from one image of a batch into the next
(copy-paste), so thin and small objects are seen against more backgrounds than the few the
training split has them in.
"""
from __future__ import annotations

import numpy as np

from fcnedge.train.config import AugmentConfig
from fcnedge.train.tfcompat import tf


def _gaussian_blur(unit, sigma):
    """A 5x5 Gaussian blur of one HxWx3 image with a (tensor) sigma in pixels."""
    taps = tf.range(-2.0, 3.0)
    kernel_1d = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel_1d /= tf.reduce_sum(kernel_1d)
    kernel = tf.tile((kernel_1d[:, None] * kernel_1d[None, :])[:, :, None, None], [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(unit[tf.newaxis], kernel, [1, 1, 1, 1], "SAME")[0]


def camera_jitter(unit, strength: float):
    """What another camera or another day changes, at `strength` in (0, 1]: per-channel gains
    (white balance, up to +-15%), exposure as a gamma (up to e^+-0.4), lens or motion softness
    (a Gaussian blur of sigma 0.3-1.5 px in 30% of images) and sensor noise (std up to 3%).

    CamVid's training split is three drives of one camera; its colour cast and sharpness are
    what a model trained on it would otherwise learn as part of each class.
    """
    gains = tf.random.uniform([3], 1.0 - 0.15 * strength, 1.0 + 0.15 * strength)
    unit = tf.clip_by_value(unit * gains, 0.0, 1.0)
    unit = tf.pow(unit, tf.exp(tf.random.uniform([], -0.4 * strength, 0.4 * strength)))
    blur = tf.random.uniform([]) < 0.3 * strength
    sigma = tf.random.uniform([], 0.3, 1.5)
    unit = tf.cond(blur, lambda: _gaussian_blur(unit, sigma), lambda: unit)
    noise = tf.random.uniform([], 0.0, 0.03 * strength)
    return unit + tf.random.normal(tf.shape(unit)) * noise


def augment_pair(image, mask, input_hw: tuple[int, int], config: AugmentConfig, void_id: int):
    """Augments one (uint8 HxWx3, uint8 HxW) pair; returns (float32 0..255 image, uint8 mask)."""
    height, width = input_hw
    image = tf.cast(image, tf.float32)
    mask = mask[..., tf.newaxis]
    if config.scale_max > config.scale_min or config.scale_min != 1.0:
        scale = tf.random.uniform([], config.scale_min, config.scale_max)
        new_h = tf.cast(tf.round(height * scale), tf.int32)
        new_w = tf.cast(tf.round(width * scale), tf.int32)
        image = tf.image.resize(image, [new_h, new_w], method="bilinear")
        mask = tf.image.resize(mask, [new_h, new_w], method="nearest")
        pad_h, pad_w = tf.maximum(height - new_h, 0), tf.maximum(width - new_w, 0)
        paddings = [[0, pad_h], [0, pad_w], [0, 0]]
        image = tf.pad(image, paddings)
        mask = tf.pad(mask, paddings, constant_values=void_id)
        stacked = tf.concat([image, tf.cast(mask, tf.float32)], axis=-1)
        stacked = tf.image.random_crop(stacked, [height, width, 4])
        image, mask = stacked[..., :3], tf.cast(tf.round(stacked[..., 3:]), tf.uint8)
    if config.flip:
        flip = tf.random.uniform([]) < 0.5
        image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
        mask = tf.cond(flip, lambda: mask[:, ::-1], lambda: mask)
    unit = image / 255.0
    if config.brightness:
        unit = tf.image.random_brightness(unit, config.brightness)
    if config.contrast:
        unit = tf.image.random_contrast(unit, 1 - config.contrast, 1 + config.contrast)
    if config.saturation:
        unit = tf.image.random_saturation(unit, 1 - config.saturation, 1 + config.saturation)
    if config.hue:
        unit = tf.image.random_hue(unit, config.hue)
    if config.camera_jitter:
        unit = camera_jitter(unit, config.camera_jitter)
    image = tf.clip_by_value(unit, 0.0, 1.0) * 255.0
    image.set_shape([height, width, 3])
    mask = tf.ensure_shape(mask[..., 0], [height, width])
    return image, mask


def paste_objects(images, masks, donor_shift, receives, class_ids: tuple[int, ...]):
    """Copies the `class_ids` pixels of each batch image into the next one's (the last's into
    the first's), shifted right by `donor_shift[b]` columns (wrapping), where `receives[b]`.

    images: [B, H, W, C]; masks: [B, H, W] integer; donor_shift: [B] int32; receives: [B] bool.
    Only columns move, never rows: the camera is the same in every frame, so an object keeps
    its distance-dependent height and its place relative to the horizon. Pasted pixels cover
    what was there, as an occluder would, image and label together.
    """
    width = tf.shape(images)[2]
    donor_images = tf.roll(images, 1, axis=0)
    donor_masks = tf.roll(masks, 1, axis=0)
    columns = tf.math.floormod(tf.range(width)[tf.newaxis, :] - donor_shift[:, tf.newaxis], width)
    donor_images = tf.gather(donor_images, columns, axis=2, batch_dims=1)
    donor_masks = tf.gather(donor_masks, columns, axis=2, batch_dims=1)
    ids = tf.constant(class_ids, dtype=donor_masks.dtype)
    take = tf.reduce_any(donor_masks[..., tf.newaxis] == ids, axis=-1)
    take = tf.logical_and(take, receives[:, tf.newaxis, tf.newaxis])
    images = tf.where(take[..., tf.newaxis], donor_images, images)
    masks = tf.where(take, donor_masks, masks)
    return images, masks


def random_paste(images, masks, class_ids: tuple[int, ...], probability: float):
    """paste_objects with a uniform random shift per image and receiving chance `probability`."""
    batch, width = tf.shape(images)[0], tf.shape(images)[2]
    shift = tf.random.uniform([batch], 0, width, dtype=tf.int32)
    receives = tf.random.uniform([batch]) < probability
    return paste_objects(images, masks, shift, receives, class_ids)


def train_dataset(images: np.ndarray, masks: np.ndarray, batch_size: int,
                  augment: AugmentConfig, void_id: int, seed: int = 0,
                  paste_ids: tuple[int, ...] = ()):
    """Endless shuffled, augmented, batched, prefetched training batches.

    Callers bound an epoch with fit's steps_per_epoch. Measured with TensorFlow 2.21:
    Keras makes a new iterator each epoch of a finite dataset, and deleting the old one waits
    for tf.data's autotuning thread to wake, whose sleep grows to a minute; at 352x480 on two
    cores that added 0-40 s (15-30 s on average) to every 30-45 s epoch. One endless iterator
    per run pays that once. Batches then run across epoch boundaries, so no image is dropped.
    """
    input_hw = images.shape[1:3]
    dataset = tf.data.Dataset.from_tensor_slices((images, masks))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    if augment.enabled:
        dataset = dataset.map(lambda i, m: augment_pair(i, m, input_hw, augment, void_id),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    else:
        dataset = dataset.map(lambda i, m: (tf.cast(i, tf.float32), m),
                              num_parallel_calls=tf.data.AUTOTUNE)
    # Full batches only: static shapes, and no tiny last batch skewing BatchNorm statistics.
    dataset = dataset.batch(batch_size, drop_remainder=True)
    # Within a batch, because the batch is already a random draw: the donor is another
    # random training image at no extra decode cost.
    if augment.enabled and paste_ids and batch_size > 1:
        dataset = dataset.map(
            lambda i, m: random_paste(i, m, paste_ids, augment.paste_probability),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return dataset.prefetch(tf.data.AUTOTUNE)
