"""Procedural street scenes with exact masks, for tests and the offline demo.

Each scene is a road in perspective with sky, buildings, trees, pavements, a fence, poles with
signs, cars, pedestrians and cyclists, drawn far to near so occlusion is right, with per-object
colour jitter and sensor noise so a network has to learn shapes rather than single colours.
Label ids follow CamVid (runtime.labels.CAMVID).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.fileio import write_image_atomic, write_text_atomic
from fcnedge.runtime.labels import CAMVID

# CamVid's ids by name, from its one label set, so the scenes cannot drift from it.
(SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST,
 VOID) = (CAMVID.names.index(name) for name in (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist", "Void"))


@dataclass(frozen=True)
class _Actor:
    """A moving object: label, lateral position (-1 left .. 1 right of the road), depth, speed."""

    kind: int
    lateral: float
    depth: float
    speed: float
    color: tuple[int, int, int]


class _Canvas:
    """Draws every shape into the image and the mask at once, so the mask is exact."""

    def __init__(self, height: int, width: int):
        self.image = np.zeros((height, width, 3), np.uint8)
        self.mask = np.full((height, width), VOID, np.uint8)

    def poly(self, points, color, label):
        pts = np.round(np.asarray(points)).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(self.image, [pts], color)
        cv2.fillPoly(self.mask, [pts], int(label))

    def rect(self, x0, y0, x1, y1, color, label):
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color, label)

    def circle(self, x, y, radius, color, label):
        center, radius = (int(round(x)), int(round(y))), max(1, int(round(radius)))
        cv2.circle(self.image, center, radius, color, -1)
        cv2.circle(self.mask, center, radius, int(label), -1)

    def line(self, p0, p1, thickness, color, label):
        p0 = tuple(int(round(v)) for v in p0)
        p1 = tuple(int(round(v)) for v in p1)
        thickness = max(1, int(round(thickness)))
        cv2.line(self.image, p0, p1, color, thickness)
        cv2.line(self.mask, p0, p1, int(label), thickness)


def _jitter(rng: np.random.Generator, base, spread=25):
    return tuple(int(np.clip(v + rng.integers(-spread, spread + 1), 0, 255)) for v in base)


class StreetScene:
    """One random street layout; `render(t)` draws it with the actors moved by time t."""

    def __init__(self, height: int, width: int, rng: np.random.Generator):
        self.height, self.width, self.rng = height, width, rng
        self.horizon = height * rng.uniform(0.38, 0.5)
        self.vanish_x = width * rng.uniform(0.4, 0.6)
        self.road_half = width * rng.uniform(0.3, 0.45)      # half width at the bottom edge
        self.sky = _jitter(rng, (225, 200, 170), 20)         # BGR
        self.buildings = self._buildings()
        self.trees = [(rng.uniform(-1.6, 1.6), rng.uniform(0.05, 0.6), _jitter(rng, (40, 120, 60)))
                      for _ in range(rng.integers(1, 5))]
        self.poles = [(rng.choice([-1.15, 1.15]) * rng.uniform(0.95, 1.1), rng.uniform(0.1, 0.95),
                       rng.random() < 0.6) for _ in range(rng.integers(1, 4))]
        self.fence_side = rng.choice([-1, 1, 0])
        self.clutter = [(rng.choice([-1, 1]) * rng.uniform(1.1, 1.4), rng.uniform(0.1, 0.9),
                         _jitter(rng, (60, 90, 60), 40)) for _ in range(rng.integers(0, 3))]
        self.actors = self._actors()

    def _buildings(self):
        rng, items = self.rng, []
        for side in (-1, 1):
            x = 0.0
            while x < self.width / 2:
                span = self.width * rng.uniform(0.08, 0.25)
                top = self.horizon * rng.uniform(0.05, 0.7)
                items.append((side, x, x + span, top, _jitter(rng, (90, 100, 140), 50)))
                x += span
        return items

    def _actors(self):
        rng, actors = self.rng, []
        for _ in range(rng.integers(1, 5)):
            actors.append(_Actor(CAR, rng.uniform(-0.75, 0.75), rng.uniform(0.05, 0.9),
                                 rng.uniform(0.002, 0.01), _jitter(rng, (60, 40, 150), 90)))
        for _ in range(rng.integers(1, 5)):
            actors.append(_Actor(PEDESTRIAN, rng.choice([-1, 1]) * rng.uniform(1.05, 1.35),
                                 rng.uniform(0.1, 0.95), rng.uniform(0.0, 0.004),
                                 _jitter(rng, (70, 60, 90), 70)))
        for _ in range(rng.integers(0, 3)):
            actors.append(_Actor(BICYCLIST, rng.choice([-1, 1]) * rng.uniform(0.8, 0.98),
                                 rng.uniform(0.1, 0.95), rng.uniform(0.002, 0.008),
                                 _jitter(rng, (150, 80, 40), 70)))
        return actors

    def _ground(self, lateral: float, depth: float) -> tuple[float, float, float]:
        """Image (x, y) of a ground point and the perspective scale there (1 at the bottom)."""
        depth = float(np.clip(depth, 0.0, 1.0))
        y = self.horizon + (self.height - self.horizon) * depth
        x = self.vanish_x + lateral * self.road_half * depth
        return x, y, max(depth, 0.02)

    def render(self, t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Draws the scene at time t; returns the BGR image and the label mask."""
        h, w, rng = self.height, self.width, self.rng
        canvas = _Canvas(h, w)
        canvas.rect(0, 0, w, h, self.sky, SKY)
        for side, x0, x1, top, color in self.buildings:
            xa, xb = (self.vanish_x - x1, self.vanish_x - x0) if side < 0 else (
                self.vanish_x + x0, self.vanish_x + x1)
            canvas.rect(xa, top, xb, self.horizon + 2, color, BUILDING)
            for wy in np.arange(top + 6, self.horizon - 6, 14):
                for wx in np.arange(xa + 4, xb - 6, 12):
                    canvas.image[int(wy):int(wy) + 5, int(max(wx, 0)):int(max(wx + 5, 0))] = (
                        tuple(max(0, c - 50) for c in color))
        # Pavements, then the road over them, as trapezoids to the vanishing point.
        canvas.rect(0, self.horizon, w, h, (150, 150, 160), PAVEMENT)
        canvas.poly([(self.vanish_x, self.horizon), (self.vanish_x - self.road_half, h),
                     (self.vanish_x + self.road_half, h)], (95, 90, 100), ROAD)
        for d0 in np.arange(0.1, 1.0, 0.15):  # lane dashes are road too
            (xa, ya, s), (_, yb, _) = self._ground(0, d0), self._ground(0, d0 + 0.06)
            canvas.poly([(xa - 2 * s, ya), (xa + 2 * s, ya), (xa + 4 * s, yb), (xa - 4 * s, yb)],
                        (210, 210, 210), ROAD)
        if self.fence_side:
            side = self.fence_side
            (xa, ya, sa), (xb, yb, sb) = self._ground(side * 1.5, 0.02), self._ground(side * 1.5, 1)
            canvas.poly([(xa, ya - 30 * sa), (xb, yb - 60 * sb), (xb, yb), (xa, ya)],
                        _jitter(rng, (80, 110, 120)), FENCE)
        drawables = [(depth, "tree", item) for item in self.trees for depth in [item[1]]]
        drawables += [(pole[1], "pole", pole) for pole in self.poles]
        drawables += [(clutter[1], "clutter", clutter) for clutter in self.clutter]
        for actor in self.actors:
            depth = (actor.depth + actor.speed * t) % 1.0
            drawables.append((depth, "actor", actor))
        for depth, kind, item in sorted(drawables, key=lambda d: d[0]):
            if kind == "tree":
                x, y, s = self._ground(item[0] * 1.3, depth)
                canvas.rect(x - 4 * s, y - 80 * s, x + 4 * s, y, (40, 60, 90), TREE)
                canvas.circle(x, y - 100 * s, 45 * s, item[2], TREE)
            elif kind == "pole":
                x, y, s = self._ground(item[0], depth)
                canvas.rect(x - 2.5 * s, y - 170 * s, x + 2.5 * s, y, (120, 130, 130), POLE)
                if item[2]:
                    canvas.rect(x - 14 * s, y - 170 * s, x + 14 * s, y - 140 * s,
                                (30, 30, 200) if depth > 0.5 else (200, 120, 30), SIGN)
            elif kind == "clutter":  # unlabelled street furniture, as CamVid's void pixels are
                x, y, s = self._ground(item[0], depth)
                canvas.rect(x - 12 * s, y - 30 * s, x + 12 * s, y, item[2], VOID)
            else:
                self._draw_actor(canvas, item, depth)
        noise = rng.normal(0, 6, canvas.image.shape)
        image = np.clip(canvas.image.astype(np.float32) * rng.uniform(0.8, 1.15) + noise, 0, 255)
        return image.astype(np.uint8), canvas.mask

    def _draw_actor(self, canvas: _Canvas, actor: _Actor, depth: float):
        x, y, s = self._ground(actor.lateral, depth)
        if actor.kind == CAR:
            body_w, body_h = 110 * s, 60 * s
            canvas.rect(x - body_w / 2, y - body_h, x + body_w / 2, y - 8 * s, actor.color, CAR)
            canvas.rect(x - body_w / 3, y - body_h - 25 * s, x + body_w / 3, y - body_h,
                        actor.color, CAR)
            canvas.rect(x - body_w / 3.6, y - body_h - 20 * s, x + body_w / 3.6, y - body_h,
                        (70, 50, 40), CAR)
            for dx in (-body_w / 2.8, body_w / 2.8):
                canvas.circle(x + dx, y - 8 * s, 10 * s, (20, 20, 20), CAR)
        elif actor.kind == PEDESTRIAN:
            canvas.line((x - 4 * s, y), (x, y - 35 * s), 5 * s, (50, 40, 40), PEDESTRIAN)
            canvas.line((x + 4 * s, y), (x, y - 35 * s), 5 * s, (50, 40, 40), PEDESTRIAN)
            canvas.rect(x - 7 * s, y - 70 * s, x + 7 * s, y - 33 * s, actor.color, PEDESTRIAN)
            canvas.circle(x, y - 78 * s, 7 * s, (120, 150, 200), PEDESTRIAN)
        else:  # a cyclist: CamVid labels rider and bicycle as one class
            for dx in (-20 * s, 20 * s):
                canvas.circle(x + dx, y - 13 * s, 13 * s, (30, 30, 30), BICYCLIST)
                canvas.circle(x + dx, y - 13 * s, 9 * s, (95, 90, 100), ROAD)
            canvas.line((x - 20 * s, y - 13 * s), (x + 20 * s, y - 13 * s), 4 * s, (40, 40, 180),
                        BICYCLIST)
            canvas.rect(x - 6 * s, y - 65 * s, x + 6 * s, y - 25 * s, actor.color, BICYCLIST)
            canvas.circle(x, y - 72 * s, 7 * s, (120, 150, 200), BICYCLIST)


def synth_scene(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One random street scene: (BGR uint8 image, uint8 label mask), reproducible by seed."""
    return StreetScene(height, width, np.random.default_rng(seed)).render()


def synth_clip(num_frames: int, height: int, width: int, seed: int):
    """Yields `num_frames` BGR frames of one street with moving cars, people and cyclists."""
    scene = StreetScene(height, width, np.random.default_rng(seed))
    for t in range(num_frames):
        yield scene.render(float(t))[0]


def write_synth_dataset(dest: str | os.PathLike, num_train: int, num_val: int,
                        size_hw: tuple[int, int] = (360, 480), seed: int = 0,
                        progress=None) -> Path:
    """Writes scenes in CamVid's SegNet layout (train/, trainannot/, val/, valannot/, *.txt).

    Args:
      progress: optional callable(done, total) for long runs.
    """
    if num_train <= 0 or num_val < 0:
        raise InputError(f"got {num_train} train and {num_val} val images, expected at least "
                         "one training image", "num")
    dest = Path(dest)
    total, done = num_train + num_val, 0
    for split, count, offset in (("train", num_train, 0), ("val", num_val, 1_000_000)):
        lines = []
        for index in range(count):
            image, mask = synth_scene(size_hw[0], size_hw[1], seed * 10_000_019 + offset + index)
            name = f"synth_{split}_{index:05d}.png"
            write_image_atomic(dest / split / name, image)
            write_image_atomic(dest / f"{split}annot" / name, mask)
            lines.append(f"{split}/{name} {split}annot/{name}")
            done += 1
            if progress:
                progress(done, total)
        write_text_atomic(dest / f"{split}.txt", "\n".join(lines) + ("\n" if lines else ""))
    return dest
