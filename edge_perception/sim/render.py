"""Synthetic road frames with known geometry: a flat textured road seen by a known camera,
with potholes and speed bumps at known positions, and their ground truth.

Every pixel's ray is cast to the ground once per camera (vectorised); a frame then only shifts
texture lookups by the vehicle's travel and paints the hazards inside their own boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge_perception.geometry import CameraIntrinsics, CameraMount, GroundProjector
from edge_perception.sim.hazards import Hazard, HazardTruth, hazard_truth, pothole_radius
from edge_perception.sim.texture import N_LEVELS, TEXEL_M, TILE, asphalt_levels, verge_levels

__all__ = ["RenderedFrame", "RoadLayout", "RoadRenderer"]

_SKY_TOP = np.array([200.0, 150.0, 110.0])  # BGR
_SKY_HORIZON = np.array([235.0, 215.0, 200.0])
_HAZE = np.array([200.0, 190.0, 180.0])
_PAINT_WHITE = np.array([225.0, 228.0, 230.0])
_YELLOW = np.array([20.0, 190.0, 235.0])
_BLACK = np.array([28.0, 28.0, 30.0])
_BUMP_GREY = np.array([70.0, 70.0, 72.0])


@dataclass(frozen=True)
class RoadLayout:
    """Two lanes: the ego lane centred on y = 0, the other to its left (driving on the right)."""

    lane_width_m: float = 3.5
    line_width_m: float = 0.15
    dash_m: float = 3.0
    gap_m: float = 6.0
    shoulder_m: float = 0.4
    far_m: float = 250.0
    fog_m: float = 220.0


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    truths: tuple[HazardTruth, ...]  # in front of the camera and in the image, nearest first
    vehicle_x: float


class RoadRenderer:
    """Draws frames for one camera (intrinsics, mount on the vehicle); `render(hazards, x)`."""

    def __init__(
        self,
        intrinsics: CameraIntrinsics,
        mount: CameraMount,
        *,
        layout: RoadLayout | None = None,
        seed: int = 0,
        noise: bool = True,
    ) -> None:
        self.intrinsics = intrinsics
        self.mount = mount
        self.layout = layout or RoadLayout()
        self.projector = GroundProjector(intrinsics, mount, max_range_m=self.layout.far_m)
        self._noise = noise
        w, h = intrinsics.width, intrinsics.height
        jj, ii = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        corner_px = np.stack([jj.ravel() + 0.5, ii.ravel() + 0.5], axis=1)
        rays = self.projector.rays(corner_px)
        down = rays[:, 2] / np.linalg.norm(rays, axis=1) < -1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(down, self.projector.height_m / -rays[:, 2], np.nan)
        pts = self.projector.translation + s[:, None] * rays
        ground = down & (np.hypot(pts[:, 0], pts[:, 1]) <= self.layout.far_m)
        self._rays = rays.reshape(h, w, 3).astype(np.float32)
        self._x0 = np.where(ground, pts[:, 0], np.nan).reshape(h, w).astype(np.float32)
        self._y0 = np.where(ground, pts[:, 1], np.nan).reshape(h, w).astype(np.float32)
        self._ground_idx = np.flatnonzero(ground)
        gx, gy = pts[ground, 0], pts[ground, 1]
        self._gx = gx.astype(np.float32)
        self._static(ground, gx, gy, ii.ravel(), rays, seed)

    # -- set-up -----------------------------------------------------------------------------
    def _static(self, ground: np.ndarray, gx: np.ndarray, gy: np.ndarray, rows: np.ndarray,
                rays: np.ndarray, seed: int) -> None:
        lay, h_cam = self.layout, self.projector.height_m
        w, h = self.intrinsics.width, self.intrinsics.height
        # sky: gradient by elevation of the ray
        elev = rays[:, 2] / np.linalg.norm(rays, axis=1)
        t = np.clip(elev / 0.5, 0.0, 1.0)[:, None] ** 0.6
        sky = (1 - t) * _SKY_HORIZON + t * _SKY_TOP
        self._base = np.clip(sky, 0, 255).astype(np.uint8).reshape(h, w, 3)
        # texture level from the ground footprint of one pixel
        dcam = np.hypot(gx - self.mount.x, gy - self.mount.y)
        foot = (h_cam * h_cam + dcam * dcam) / (h_cam * self.intrinsics.fy) / TEXEL_M
        level = np.searchsorted(np.array([2.5, 8.0, 24.0]), foot)
        half = 0.5 * lay.lane_width_m
        road_lo, road_hi = -half - lay.shoulder_m, 3 * half + lay.shoulder_m
        verge = (gy < road_lo) | (gy > road_hi)
        tex = np.concatenate([asphalt_levels(seed), verge_levels(seed + 1)]).reshape(-1, 3)
        # one uint32 (BGRA) table: textures, then the sky's pixels; every pixel indexes it
        table = np.concatenate([tex, self._base.reshape(-1, 3)])
        bgra = np.concatenate([table, np.full((len(table), 1), 255, np.uint8)], axis=1)
        self._table = np.ascontiguousarray(bgra).view(np.uint32).ravel()
        n_tex = len(tex)
        base = n_tex + np.arange(w * h, dtype=np.int64)  # sky: its own entry
        iy = (np.floor(gy / TEXEL_M).astype(np.int64) & (TILE - 1)) * TILE
        base[ground] = (verge * N_LEVELS + level) * TILE * TILE + iy
        ix = np.zeros(w * h, np.int64)
        ix[ground] = np.floor(gx / TEXEL_M).astype(np.int64) & (TILE - 1)
        wrap = np.where(ground, TILE - 1, 0)
        self._pix_base = base.astype(np.int32)
        self._pix_ix = ix.astype(np.int32)
        self._pix_wrap = wrap.astype(np.int32)
        # lane paint: solid edge lines, dashed centre line (indices into all pixels)
        lw = 0.5 * lay.line_width_m
        edge = (np.abs(gy - (-half + lw)) < lw) | (np.abs(gy - (3 * half - lw)) < lw)
        centre = np.abs(gy - half) < lw
        gidx = np.flatnonzero(ground)
        self._edge_sel = gidx[edge]
        self._centre_sel = gidx[centre]
        self._centre_x = gx[centre].astype(np.float32)
        # haze with distance: out = img * keep / 255 + haze
        fog = np.zeros(w * h)
        fog[ground] = 1.0 - np.exp(-dcam / lay.fog_m)
        self._fog_keep = np.repeat(np.round(255 * (1 - fog))[:, None], 3, 1).astype(
            np.uint8).reshape(h, w, 3)
        self._fog_add = np.round(fog[:, None] * _HAZE).astype(np.uint8).reshape(h, w, 3)
        # sensor noise bank (cycled): added and subtracted with saturation
        rng = np.random.default_rng(seed + 7)
        self._noise_bank = [rng.integers(0, 7, (2, h, w, 3), dtype=np.uint8) for _ in range(2)]
        self._frame_no = 0

    # -- per frame ----------------------------------------------------------------------------
    def render(self, hazards: tuple[Hazard, ...] | list[Hazard],
               vehicle_x: float) -> RenderedFrame:
        """The frame seen from road x = `vehicle_x`, and the truth of hazards in front."""
        w, h = self.intrinsics.width, self.intrinsics.height
        shift = int(math.floor(vehicle_x / TEXEL_M))
        idx = self._pix_base + ((self._pix_ix + shift) & self._pix_wrap)
        img4 = self._table[idx].view(np.uint8).reshape(h, w, 4)
        img = cv2.cvtColor(img4, cv2.COLOR_BGRA2BGR)
        flat = img.reshape(-1, 3)
        flat[self._edge_sel] = self._paint(flat[self._edge_sel])
        period = self.layout.dash_m + self.layout.gap_m
        dash = np.mod(self._centre_x + vehicle_x, period) < self.layout.dash_m
        sel = self._centre_sel[dash]
        flat[sel] = self._paint(flat[sel])

        truths = []
        for hz in hazards:
            tr = hazard_truth(hz, self.projector, vehicle_x)
            if tr is None or tr.box[2] <= tr.box[0] or tr.box[3] <= tr.box[1]:
                continue
            truths.append(tr)
        for tr in sorted(truths, key=lambda t: -t.range_m):  # far first, near paints over
            self._draw(img, tr, vehicle_x)
        img = cv2.add(cv2.multiply(img, self._fog_keep, scale=1.0 / 255.0), self._fog_add)
        img = cv2.GaussianBlur(img, (3, 3), 0.6)
        if self._noise:
            plus, minus = self._noise_bank[self._frame_no % len(self._noise_bank)]
            img = cv2.subtract(cv2.add(img, plus), minus)
            self._frame_no += 1
        truths.sort(key=lambda t: t.range_m)
        return RenderedFrame(image=img, truths=tuple(truths), vehicle_x=float(vehicle_x))

    @staticmethod
    def _paint(under: np.ndarray) -> np.ndarray:
        return (0.2 * under + 0.8 * _PAINT_WHITE).astype(np.uint8)

    def _draw(self, img: np.ndarray, tr: HazardTruth, vehicle_x: float) -> None:
        x1, y1, x2, y2 = tr.box
        c0, r0 = max(int(math.floor(x1)) - 1, 0), max(int(math.floor(y1)) - 1, 0)
        c1 = min(int(math.ceil(x2)) + 1, self.intrinsics.width)
        r1 = min(int(math.ceil(y2)) + 1, self.intrinsics.height)
        if c1 <= c0 or r1 <= r0:
            return
        region = img[r0:r1, c0:c1]
        hz = tr.hazard
        if hz.kind == "pothole":
            lx = self._x0[r0:r1, c0:c1] + (vehicle_x - hz.x)
            ly = self._y0[r0:r1, c0:c1] - hz.y
            _draw_pothole(region, lx, ly, hz)
        else:
            _draw_bump(region, self._rays[r0:r1, c0:c1], self.projector.translation,
                       vehicle_x, hz)


def _draw_pothole(region: np.ndarray, lx: np.ndarray, ly: np.ndarray, hz: Hazard) -> None:
    a, b = 0.5 * hz.length_m, 0.5 * hz.width_m
    with np.errstate(invalid="ignore"):
        u, v = lx / a, ly / b
        rho = np.hypot(u, v)
        th = np.arctan2(v, u)
        q = rho / pothole_radius(th, hz.harmonics())  # < 1 inside the outline
        edge = 0.86 + 0.04 * np.cos(13.0 * th)  # broken rim between edge and the outline
        inside = q < edge
        rim = (q >= edge) & (q < 1.0)
    if not (inside.any() or rim.any()):
        return
    # inside: dark, the far wall (facing the camera, theta ~ 0) lit, the near wall in shadow
    facing = 0.5 + 0.5 * np.cos(th)
    qc = np.clip(q / edge, 0, 1)
    shade = 0.42 + 0.1 * np.cos(5.0 * lx + 7.0 * ly) + 0.45 * qc ** 4 * facing
    shade = np.where((qc > 0.6) & (facing < 0.35), shade * (1.0 - 0.5 * (qc - 0.6)), shade)
    grit = 0.85 + 0.3 * (np.sin(61.0 * lx + 3.0 * np.sin(47.0 * ly)) * np.cos(53.0 * ly)) ** 2
    crumble = 1.2 + 0.2 * np.cos(31.0 * th) * np.cos(17.0 * th + 2.0)
    f = np.where(inside, shade * grit, np.where(rim, crumble, 1.0))
    f = np.nan_to_num(f, nan=1.0).astype(np.float32)
    tint = np.where(inside[..., None], np.array([0.8, 0.92, 1.05], np.float32), 1.0)
    out = region.astype(np.float32) * f[..., None] * tint
    region[...] = np.clip(out, 0, 255).astype(np.uint8)


def _draw_bump(region: np.ndarray, rays: np.ndarray, cam: np.ndarray, vehicle_x: float,
               hz: Hazard) -> None:
    """A block `height_m` high: its top face where the ray crosses z = height inside the
    footprint, its front face where the ray passes under the near top edge."""
    hx, hy = 0.5 * hz.length_m, 0.5 * hz.width_m
    dz = rays[..., 2]
    down = dz < -1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        s_top = np.where(down, (cam[2] - hz.height_m) / -dz, np.nan)
        s_gnd = np.where(down, cam[2] / -dz, np.nan)
    def local(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (cam[0] + s * rays[..., 0] + vehicle_x - hz.x,
                cam[1] + s * rays[..., 1] - hz.y)
    tx, ty = local(s_top)
    gx, gy = local(s_gnd)
    with np.errstate(invalid="ignore"):
        top = (np.abs(tx) <= hx) & (np.abs(ty) <= hy)
        front = ~top & (tx < -hx) & (gx >= -hx) & (np.abs(gy) <= hy)
    if not (top.any() or front.any()):
        return
    ly = np.where(top, ty, gy)
    lx = np.where(top, tx, -hx)
    if hz.style == "yellow_black":
        stripe = (np.floor((ly + hy) / 0.35).astype(np.int64) % 2) == 0
        paint = np.where(stripe[..., None], _YELLOW, _BLACK)
    else:
        chevron = np.mod(np.abs(ly) * 0.8 - lx, 0.9) < 0.3
        paint = np.where(chevron[..., None], _PAINT_WHITE, _BUMP_GREY)
    ridge = 0.75 + 0.35 * np.cos(np.clip(lx / hx, -1, 1) * math.pi / 2)
    light = np.where(top, ridge, 0.55)
    under = region.astype(np.float32)
    col = paint * light[..., None] * (0.8 + 0.4 * under / 255.0)
    mask = (top | front)[..., None]
    region[...] = np.where(mask, np.clip(col, 0, 255), under).astype(np.uint8)
