"""Model-free click refinement: geodesic competition on an intensity- and edge-weighted speed map.

Why this algorithm (measured against GrowCut, random walker and plain region growing in
``benchmarks/bench_clicks.py``; numbers in the issue note): on non-contrast CT the organs share
10-45 HU with their neighbours, so intensity alone cannot separate them; what separates them is a
thin fat plane or a faint edge. A geodesic distance whose local cost rises with the gradient and
with the distance from the intensity of the clicked tissue crosses homogeneous organ cheaply and
edges expensively, so

* a **positive click** adds the voxels geodesically within ``reach_mm`` of it and closer to it than
  to any negative click (connected to the click);
* a **negative click** removes the voxels of the mask geodesically closer to it than to any
  positive click (within ``reach_mm``, connected to the click).

The tissue model is a kernel density of the intensities inside the current mask and of a small
full-resolution ball around each positive click, each click weighing at least 3 % of the mask
(the statistics of the clicked structure, not a fixed HU range; a click on a calcified wall or on
the other lumen of a dissection widens the model), so multi-modal tissue is handled; the edge
scale grows with the tissue's spread for the same reason. A click close to the current mask's edge
(a thin missed rim, a thin false layer) reaches only ``local_reach`` times its distance from that
edge, so fixing a rim does not leak into the neighbour.

Leaks into touching structures of the same intensity (a branch into the aortic arch, a vein into
the liver) are stopped twice: the front is cut where its swept volume, after edges had held it,
suddenly grows faster (``leak_burst``), and a correction click adds at most ``grow_cap`` times the
structure's volume so far, geodesically nearest voxels first.

**Intent is kept by construction**: a positive click only adds voxels (its own voxel always, never
the voxel of an earlier negative click); a negative click only removes (its own voxel always, never
the voxel of an earlier positive click). Dice can still fall after a click that adds look-alike
tissue, but never because a click undid what the user said.

On CT finer than the work grid, the voxels within ``fine_band`` work voxels of the coarse boundary
are decided at full resolution from the local mean intensities on either side
(:func:`~ctseg_gui.interactive._boundary.place_boundary`): an enhanced vessel's boundary then sits
on its own contrast instead of on 3 mm blocks (aorta of the 1 mm contrast series: 0.76 -> 0.86).

The work happens in a box of ``2 * reach_mm`` around the click on a grid of about ``working_mm``
voxels (block means of the CT), so a click costs well under 300 ms on a 3 mm abdomen or a
1 mm series and stays bounded on sub-millimetre CT. Fast marching (SimpleITK) computes the geodesic distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ctseg_gui.core.history import Region
from ctseg_gui.core.volume import Volume
from ctseg_gui.interactive._boundary import Density, place_boundary, weighted_quantile
from ctseg_gui.interactive.clicks import Click


@dataclass(frozen=True)
class GeodesicParams:
    """Tuning of :class:`GeodesicRefiner` (defaults chosen on the abdomen CT, see module doc)."""

    reach_mm: float = 60.0
    """Largest geodesic distance one click reaches (mm at full speed)."""
    edge_hu_per_mm: float = 10.0
    """Gradient (HU/mm) at which the speed halves."""
    edge_per_spread: float = 0.67
    """Heterogeneous tissue (bone, bowel) has strong inner edges: the edge scale is at least this
    many HU/mm per HU of the tissue's spread."""
    sigma_floor_hu: float = 15.0
    """Smallest spread of the tissue intensity model (CT noise plus partial volume)."""
    free_z: float = 1.0
    """Intensities within this many spreads of the tissue median travel at full speed."""
    smooth_mm: float = 1.5
    """Gaussian smoothing of intensities before the tissue model."""
    gradient_mm: float = 2.1
    """Gaussian scale of the gradient."""
    working_mm: float = 3.0
    """Fine voxels are block-averaged (integer factors) to about this size before the work."""
    min_speed: float = 1e-3
    local_reach: float = 10.0
    """When > 0, a click next to the existing mask reaches only this many times its distance from
    the mask edge (a click in a thin missed rim fixes the rim and does not leak)."""
    min_reach_mm: float = 6.0
    local_reach_negative: float = 2.0
    """``local_reach`` for a negative click in a thin false rim (closer than ``thin_mm`` to the
    mask's outside); one deeper inside a false blob uses ``local_reach``."""
    thin_mm: float = 8.0
    model_from_core: bool = True
    """Learn the tissue model from the mask's core (eroded by one voxel), not its rim."""
    negative_model: bool = False
    """Negative clicks spread with an intensity model of the clicked (false) tissue."""
    histogram_model: bool = True
    """Use a kernel density of the tissue's intensities (multi-modal tissue such as bone or bowel)
    instead of one robust Gaussian."""
    kde_hu: float = 10.0
    leak_burst: float = 3.0
    """A front growing this many times faster than its slowest so far has leaked (0: off)."""
    leak_steps: int = 30
    """Arrival-time steps of the volume curve that :attr:`leak_burst` watches."""
    leak_start_mm: float = 6.0
    """The front is not judged before this arrival time (a few voxels are all noise)."""
    leak_min_voxels: int = 3
    """Work voxels the front must have swept before its growth is judged."""
    grow_cap: float = 0.5
    """A positive click on an existing mask adds at most this many times its volume (0: off)."""
    click_mm: float = 2.5
    """Radius of the full-resolution ball whose intensities a positive click adds to the model."""
    click_weight: float = 0.03
    """Each positive click's samples weigh at least this share of the mask's in the model."""
    fine_smooth_mm: float = 0.7
    """Gaussian smoothing of the full-resolution intensities that place the boundary."""
    fine_band: int = 2
    """Work voxels on either side of the coarse boundary that the full-resolution step decides."""
    fine_mean_mm: float = 4.0
    """Gaussian scale of the local mean intensities on either side of the boundary."""
    fine_contrast: float = 2.0
    """Sides closer than this many noise spreads are look-alikes: the coarse boundary stays."""


class GeodesicRefiner:
    """Updates a structure's mask from clicks without any model.

    Parameters
    ----------
    image
        The CT (HU).
    params
        Tuning; the defaults suit CT at any resolution.
    """

    def __init__(self, image: Volume, params: GeodesicParams | None = None) -> None:
        self.image = image
        self.params = params or GeodesicParams()
        spacing_kji = np.asarray(image.spacing, dtype=float)[::-1]
        self.factors = np.maximum(1, np.rint(self.params.working_mm / spacing_kji)).astype(int)
        self.work_spacing = spacing_kji * self.factors

    # ---- public ----------------------------------------------------------------------------
    def refine(self, mask: np.ndarray, clicks: list[Click]) -> tuple[Region, np.ndarray]:
        """Mask after the last click (see :class:`~ctseg_gui.interactive.clicks.Refiner`).

        The intent of every click holds by construction: a positive click only adds (its own voxel
        always, never the voxel of an earlier negative click), a negative click only removes (its
        own voxel always, never the voxel of an earlier positive click).
        """
        if not clicks:
            raise ValueError("refine needs at least one click")
        last = clicks[-1]
        region = self._region(last.kji)
        mask_roi = mask[region].astype(bool)
        origin = np.array([s.start for s in region])
        full_img = self.image.array[region].astype(np.float32)
        work_img = self._block_mean(full_img)
        work_mask = self._block_mean(mask_roi.astype(np.float32)) > 0.5

        def local(click: Click) -> tuple[int, ...] | None:
            p = np.asarray(click.kji) - origin
            if np.any(p < 0) or np.any(p >= full_img.shape):
                return None
            return tuple(int(x) for x in p)

        def to_work(p: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(int(x) for x in np.asarray(p) // self.factors)

        inside = [(c.positive, p) for c in clicks if (p := local(c)) is not None]
        seed = to_work(local(last))  # the last click is the region's centre: always inside
        positives = [to_work(p) for positive, p in inside if positive]
        negatives = [to_work(p) for positive, p in inside if not positive]
        smooth = ndi.gaussian_filter(work_img, self.params.smooth_mm / self.work_spacing)
        clicked = [self._click_samples(full_img, p) for positive, p in inside if positive]
        model = self._tissue_model(smooth, work_mask, clicked)
        if model is None:  # a negative click with nothing to remove and no clicked tissue
            return region, mask_roi
        speed = self._speed(work_img, smooth, *model)
        reach = self._reach(work_mask, seed, last.positive)
        if last.positive:
            near = self._distance(speed, [seed], reach)
            other = self._distance(speed, negatives, reach)
            change = self._component((near < reach) & (near < other), seed)
            change = self._stop_leak(change, near)
            change = self._cap(change, near, int(np.count_nonzero(mask)))
        else:
            removal = speed
            if self.params.negative_model:
                # The removal front travels through tissue like the clicked (false) tissue, so a
                # click in a false rim around an organ does not eat into the organ.
                clicked_here = [self._click_samples(full_img, local(last))]
                local_model = self._tissue_model(smooth, np.zeros_like(work_mask), clicked_here)
                if local_model is not None:
                    removal = self._speed(work_img, smooth, *local_model)
            near = self._distance(removal, [seed], reach)
            other = self._distance(speed, positives, reach)
            change = self._component(work_mask & (near < reach) & (near < other), seed)
            change = self._stop_leak(change, near)
        full = place_boundary(self, change, full_img, smooth, work_mask, last.positive)
        if last.positive:  # the boundary step may widen the change: the cap holds at full size
            full = self._cap_full(full & ~mask_roi, near, int(np.count_nonzero(mask)))
        # Intent: the clicked voxels decide themselves, whatever the tissue model says.
        for positive, p in inside:
            full[p] = positive == last.positive
        values = mask_roi | full if last.positive else mask_roi & ~full
        return region, values

    def _reach(self, work_mask: np.ndarray, seed: tuple[int, ...], positive: bool) -> float:
        p = self.params
        if p.local_reach <= 0 or not work_mask.any() or work_mask.all():
            return p.reach_mm
        # Distance from the click to the mask edge: outside for a positive click, inside for a
        # negative one; only a box around the click matters.
        r = np.ceil(p.reach_mm / p.local_reach / self.work_spacing).astype(int) + 1
        box = tuple(slice(max(0, x - h), x + h + 1) for x, h in zip(seed, r, strict=True))
        local = work_mask[box] if positive else ~work_mask[box]
        if not local.any():
            return p.reach_mm
        depth = ndi.distance_transform_edt(~local, sampling=self.work_spacing)
        at = tuple(x - b.start for x, b in zip(seed, box, strict=True))
        thin = depth[at] < p.thin_mm  # a rim, not a blob: stay close to the click
        factor = p.local_reach if positive or not thin else p.local_reach_negative
        return float(min(p.reach_mm, max(p.min_reach_mm, factor * depth[at])))

    # ---- steps -----------------------------------------------------------------------------
    def _region(self, kji: tuple[int, int, int]) -> Region:
        # Twice the reach: a negative seed farther than that cannot beat the clicked one anywhere
        # the click reaches, so dropping it changes nothing.
        half = np.ceil(2 * self.params.reach_mm / self.work_spacing).astype(int) * self.factors
        shape = self.image.array.shape
        region = []
        for axis in range(3):
            lo = max(0, kji[axis] - half[axis])
            lo -= lo % self.factors[axis]  # keep blocks aligned with the image grid
            hi = min(shape[axis], kji[axis] + half[axis] + 1)
            region.append(slice(int(lo), int(hi)))
        return tuple(region)  # type: ignore[return-value]

    def _block_mean(self, array: np.ndarray) -> np.ndarray:
        if np.all(self.factors == 1):
            return array
        f = self.factors
        pad = [(0, (-n) % fa) for n, fa in zip(array.shape, f, strict=True)]
        padded = np.pad(array, pad, mode="edge")
        k, j, i = (n // fa for n, fa in zip(padded.shape, f, strict=True))
        return padded.reshape(k, f[0], j, f[1], i, f[2]).mean(axis=(1, 3, 5))

    def _upsample(self, work: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        out = work
        for axis, f in enumerate(self.factors):
            if f > 1:
                out = np.repeat(out, f, axis=axis)
        return out[: shape[0], : shape[1], : shape[2]]

    def _tissue_model(
        self, smooth: np.ndarray, mask: np.ndarray, clicked: list[np.ndarray]
    ) -> tuple[float, float, np.ndarray, np.ndarray] | None:
        """Robust centre and spread (HU) of the structure's tissue, its samples and their weights.

        The samples are the current mask's core (work grid) and the tissue around each positive
        click (full resolution); each click weighs at least ``click_weight`` of the mask, so a
        click on a part that looks different (a calcified wall, the other lumen of a dissection)
        widens the model instead of drowning in the mask's voxels.
        """
        if self.params.model_from_core:
            # The mask's rim mixes in the neighbours (partial volume, or a previous result's
            # over-segmentation); its core says what the structure looks like.
            core = ndi.binary_erosion(mask)
            if np.count_nonzero(core) >= 50:
                mask = core
        samples = [smooth[mask]] if mask.any() else []
        weights = [np.ones(len(samples[0]))] if samples else []
        base = len(samples[0]) if samples else 0
        for values in clicked:
            share = max(1.0, self.params.click_weight * base / len(values))
            samples.append(values)
            weights.append(np.full(len(values), share))
        if not samples:
            return None
        values, w = np.concatenate(samples), np.concatenate(weights)
        centre = weighted_quantile(values, w, 0.5)
        spread = 1.4826 * weighted_quantile(np.abs(values - centre), w, 0.5)
        return centre, max(spread, self.params.sigma_floor_hu), values, w

    def _click_samples(self, full_img: np.ndarray, p: tuple[int, ...]) -> np.ndarray:
        """Lightly smoothed full-resolution intensities in a small ball around a click."""
        spacing = np.asarray(self.image.spacing, dtype=float)[::-1]
        # At least the 18-neighbourhood on coarse CT, so the model never rests on a few voxels.
        radius = max(self.params.click_mm, 1.5 * float(spacing.max()))
        pad = np.ceil(radius / spacing).astype(int) + 2
        box = tuple(
            slice(max(0, x - h), min(n, x + h + 1))
            for x, h, n in zip(p, pad, full_img.shape, strict=True)
        )
        patch = ndi.gaussian_filter(full_img[box], self.params.fine_smooth_mm / spacing)
        grids = np.ogrid[tuple(slice(b.start - x, b.stop - x) for b, x in zip(box, p, strict=True))]
        dist2 = sum((g * s) ** 2 for g, s in zip(grids, spacing, strict=True))
        return patch[dist2 <= radius**2]

    def _speed(
        self,
        raw: np.ndarray,
        smooth: np.ndarray,
        centre: float,
        spread: float,
        samples: np.ndarray,
        weights: np.ndarray,
    ) -> np.ndarray:
        p = self.params
        excess = np.maximum(np.abs(smooth - centre) / spread - p.free_z, 0.0)
        likelihood = np.exp(-0.5 * excess * excess)
        if p.histogram_model:
            likelihood = self._density_speed(smooth, samples, weights)
        sigma = p.gradient_mm / self.work_spacing
        grad2 = np.zeros(raw.shape, dtype=np.float32)
        for axis in range(3):
            order = [0, 0, 0]
            order[axis] = 1
            g = ndi.gaussian_filter(raw, sigma, order=order) / self.work_spacing[axis]
            grad2 += g * g
        edge = max(p.edge_hu_per_mm, p.edge_per_spread * spread)
        speed = likelihood / (1.0 + grad2 / edge**2)
        return np.maximum(speed, p.min_speed).astype(np.float32)

    def _density_speed(self, smooth: np.ndarray, samples: np.ndarray, weights: np.ndarray):
        """Speed from a kernel density of the tissue samples, 1 for common intensities."""
        density = Density(samples, weights, self.params.kde_hu, smooth)
        at_samples = density(samples)
        ref = max(weighted_quantile(at_samples, weights, 0.3), 1e-12)
        return np.sqrt(np.minimum(density(smooth) / ref, 1.0))

    def _stop_leak(self, change: np.ndarray, near: np.ndarray) -> np.ndarray:
        """``change`` cut where its front, having been held by edges, bursts into new space.

        The volume ``V(t)`` the front has swept by arrival time ``t`` grows like its surface,
        ``V^(2/3)``, in open tissue, slower once edges hold it (an organ filled, a vessel followed
        along its lumen) and suddenly faster when it squeezes through a gap into a touching
        structure of the same intensity (a branch into the aortic arch, a vein into the liver).
        The first such burst, ``leak_burst`` times the slowest growth seen before, ends the change.
        """
        p = self.params
        if p.leak_burst <= 0 or not change.any():
            return change
        times = near[change]
        top = float(times.max())
        if not np.isfinite(top) or top <= 0:
            return change
        edges = np.linspace(0.0, top, p.leak_steps + 1)[1:]
        volume = np.searchsorted(np.sort(times), edges, side="right").astype(float)
        start = max(p.leak_start_mm, 2.0 * float(self.work_spacing.max()))
        slowest = np.inf
        window = 3  # steps: a single step of a small front is mostly discretisation noise
        for i in range(len(edges) - window):
            if edges[i] < start or volume[i] < self.params.leak_min_voxels:
                continue
            growth = (volume[i + window] - volume[i]) / volume[i] ** (2.0 / 3.0)
            if growth > p.leak_burst * max(slowest, 0.05 * window):
                return change & (near <= edges[i + 1])
            slowest = min(slowest, growth)
        return change

    def _cap(self, change: np.ndarray, near: np.ndarray, mask_voxels: int) -> np.ndarray:
        """A correction adds at most ``grow_cap`` times the structure's volume so far, the voxels
        geodesically nearest the click first: a click never swamps what the earlier ones built."""
        if self.params.grow_cap <= 0 or mask_voxels == 0:
            return change
        limit = self.params.grow_cap * mask_voxels / float(np.prod(self.factors))
        times = near[change]
        if len(times) <= limit:
            return change
        cut = np.partition(times, int(limit))[int(limit)]
        return change & (near < cut)

    def _cap_full(self, added: np.ndarray, near: np.ndarray, mask_voxels: int) -> np.ndarray:
        """:meth:`_cap` on the full-resolution voxels a positive click adds."""
        limit = int(self.params.grow_cap * mask_voxels)
        if self.params.grow_cap <= 0 or mask_voxels == 0 or np.count_nonzero(added) <= limit:
            return added
        times = self._upsample(near, added.shape)[added]
        finite = np.isfinite(times)
        # Voxels the boundary step added beyond the front rank after everything the front reached.
        times[~finite] = (times[finite].max() if finite.any() else 0.0) + 1.0
        cut = np.partition(times, limit)[limit]
        out = np.zeros_like(added)
        out[added] = times < cut
        return out

    def _distance(self, speed: np.ndarray, seeds: list[tuple[int, ...]], stop: float):
        """Geodesic arrival time (mm at unit speed) from ``seeds``; ``inf`` beyond ``stop``."""
        if not seeds:
            return np.full(speed.shape, np.inf, dtype=np.float32)
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(speed)
        image.SetSpacing(tuple(float(s) for s in self.work_spacing[::-1]))
        marcher = sitk.FastMarchingImageFilter()
        marcher.SetTrialPoints([[int(x) for x in s[::-1]] for s in seeds])
        marcher.SetStoppingValue(float(stop) * 1.01)
        arrival = sitk.GetArrayFromImage(marcher.Execute(image))
        arrival[arrival > stop] = np.inf
        return arrival

    @staticmethod
    def _component(region: np.ndarray, seed: tuple[int, ...]) -> np.ndarray:
        if not region[seed]:
            return np.zeros_like(region)
        labels, _ = ndi.label(region)
        return labels == labels[seed]
